"""Running a whole search: the workers (in this process or in N worker processes), then the outputs."""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import inspect
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from zoo.arguments import refuse_command_options
from zoo.console import check_log, to_stdout
from zoo.device import keeps_callers_random_state
from zoo.arguments import home
from zoo.errors import ConfigError, Interrupted, RunError
from zoo.runs.command_folders import STUDY_SPACE
from zoo.runs import checkpoint as ckpt
from zoo.search.objective import check_metric
from zoo.search.outputs import write_outputs
from zoo.search.resume import (check_grid_resume, check_same_study, fingerprint, record, recorded, reusable,
                               reusable_options, study_record)
from zoo.search.settings import Settings, merged_keys, prepare
from zoo.search.space import load_space
from zoo.search import storage_errors
from zoo.search.study import describe_pruner, journal_path, keeps_optuna_settings, open_study, redact
from zoo.search.tracking import log_search, search_loggers
from zoo.search.worker import Worker

SETTINGS_ENV = "ZOO_SEARCH_SETTINGS"
PARENT_ENV = "ZOO_SEARCH_PARENT"  # the pid of the search that started a worker, known before the worker starts


@keeps_callers_random_state
@keeps_optuna_settings
def run_search(model: str, space: str | Path | None = None, *, log: Callable[[str], None] = to_stdout,
               **options) -> dict[str, Any]:
    """Run (or resume) a study; write its outputs; return the summary (see `write_outputs`). `options` are
    `zoo search`'s (out, study, trials, strategy, pruner, cv, seed: the search's own, workers, ...); any other
    keyword is a config key every trial shares, as `zoo.train` takes them (dataset="mnist", epochs=5: `--set`)."""
    check_log(log)
    space = home(space)  # ~/space.toml and out="~/st": the user's home, as everywhere (zoo.arguments.home)
    options = {k: home(v) if k == "out" else v for k, v in options.items()}
    settable = set(inspect.signature(prepare).parameters) - {"model", "space", "started_with"}
    refuse_command_options("run_search", [k for k in options if k not in settable])
    for k in options:  # a search option misspelt is said as one, not as an unknown config key
        close = difflib.get_close_matches(k, sorted(settable), n=1, cutoff=0.8)
        if k not in settable and close:
            raise ConfigError(f"run_search has no option '{k}'", f"Did you mean {close[0]}=?")
    keys = {k: options.pop(k) for k in list(options) if k not in settable}
    options["overrides"] = merged_keys(keys, options.get("overrides"))  # epochs=2 beside {"epochs": 1}: refused
    settings, sp = prepare(model, space, **options)
    # A resumed study must be the same search: checked from what the study recorded, before anything
    # (the space's copy, the study, the outputs) is written.
    meta = recorded(settings)
    reused = reusable(meta, settings, sp) if meta else {}
    again = {"overrides": {**reused, **settings.overrides}, "started_with": tuple(reused)} if reused else {}
    # --cv, --trials, --strategy left out on resume, as --dataset may be: the study's folds, budget and strategy
    own = reusable_options(meta, options, settings) if meta else {}
    again, reused = {**again, **own}, {**reused, **own}
    if again:
        settings, sp = prepare(model, space, **{**options, **again})
    data_cache: dict = {}  # a folder is read once: for the study's record of its images, then for the trials
    current = {**fingerprint(settings, sp, data_cache), "budget": settings.trials, "strategy": settings.strategy}
    if meta is not None:
        check_same_study(meta, current, settings)
        check_grid_resume(settings, meta)
    if reused:
        log("note: resuming with the study's " + ", ".join(f"{k} = {v}" for k, v in reused.items()))
    check_metric(settings, sp, data_cache)  # loads the data set: a missing one fails here, once
    loggers = search_loggers(settings, sp, log)  # --log: refused here when unknown or not installed
    study_dir = Path(settings.study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    study, _, _ = open_study(settings, sp, create=True)
    with storage_errors.said(settings):  # a damaged database may open, and fail on the first read of its trials
        meta = study_record(study.user_attrs)
        if meta is not None:  # also a study another process began meanwhile
            check_same_study(meta, current, settings)
        done = len(study.get_trials(deepcopy=False))  # read first: a damaged storage is refused before any write
        record(study, meta, current)
    # the space's copy, once the study is known to be this search (a search refused above never replaces it)
    copy_path = study_dir / STUDY_SPACE
    if not copy_path.is_file() or copy_path.read_text() != sp.text:
        if copy_path.is_file():
            log(f"note: the space file differs from the one this study began with (not in what it measures); "
                f"{copy_path} now holds the new one")
        ckpt.atomic_write(copy_path, sp.text)
    if settings.workers > 1 and (settings.storage or "").startswith("sqlite"):
        log("note: several workers writing one SQLite file may wait on its lock (and SQLite on a network disk "
            "is unsafe); the default journal file suits workers that share a disk")
    log(f"study {settings.study}: {model}, {settings.strategy} strategy, {describe_pruner(settings, sp)}, "
        f"{settings.trials} trials{f', {settings.cv}-fold CV' if settings.cv else ''}, "
        f"{settings.workers} worker(s); "
        f"storage {redact(settings.storage) if settings.storage else journal_path(settings)}"
        + (f"; resuming with {done} trials stored" if done else ""))
    for note in settings.notes:
        log(f"note: {note}")
    interrupted: Interrupted | None = None
    started = time.time()
    try:
        logged = lambda: log_search(loggers, settings, sp)  # noqa: E731  (the trials finished so far)
        if settings.workers == 1:
            Worker(settings, sp, log=log, data_cache=data_cache, after_trial=logged).run()
        else:
            _run_workers(settings, log, every_while=logged)
    except Interrupted as e:
        interrupted = e
    try:
        with storage_errors.said(settings):
            summary = write_outputs(settings, sp, log=log, seconds=time.time() - started)
    except KeyboardInterrupt:
        raise Interrupted("search interrupted while writing its outputs: the trials are stored, and the study "
                          "folder's outputs are still those of the search before (all from one set of trials). "
                          "Resume with the same command to update them.") from None

    log_search(loggers, settings, sp, finished=True, interrupted=interrupted is not None)  # a --timeout one too
    if interrupted is not None:
        raise interrupted
    done = summary["states"]["complete"] + summary["states"]["pruned"]
    if done < settings.trials and settings.timeout is None:
        raise RunError(f"the workers ended with {done} of {settings.trials} trials done (see their messages above)",
                       "The trials done are stored: resume with the same command.")
    return summary


LOG_EVERY = 10.0  # seconds between loggings of the trials worker processes finished


def _run_workers(settings: Settings, log: Callable[[str], None], every_while: Callable[[], None] | None = None) -> None:
    """Start the worker processes and wait for them; `every_while()` is called every LOG_EVERY seconds. The
    workers' lines (a trial's score, a timeout) reach `log`, as a single worker's do, from this thread."""
    env = {**os.environ, SETTINGS_ENV: json.dumps(dataclasses.asdict(settings)), PARENT_ENV: str(os.getpid()),
           "PYTHONUNBUFFERED": "1"}
    if "OMP_NUM_THREADS" not in os.environ:  # share the cores instead of oversubscribing them
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // settings.workers))
    procs, lines, readers = [], queue.SimpleQueue(), []
    for k in range(settings.workers):
        # In a session of their own, the workers are stopped by this process alone, whatever stopped it: a
        # terminal's Ctrl-C, or a SIGTERM or SIGHUP sent to this process only (`kill PID`, a scheduler, a
        # container runtime), which before left them running every trial of the budget.
        procs.append(subprocess.Popen([sys.executable, "-m", "zoo", "search-worker", "--label", f"worker {k + 1}"],
                                      env=env, start_new_session=True, stdout=subprocess.PIPE, text=True,
                                      errors="replace"))
        readers.append(threading.Thread(target=_relay, args=(procs[-1].stdout, lines), daemon=True))
        readers[-1].start()
    try:
        pending = dict(enumerate(procs))
        last = time.monotonic()
        while pending:
            if every_while is not None and time.monotonic() - last > LOG_EVERY:
                every_while()
                last = time.monotonic()
            _said(lines, log)
            for k, p in list(pending.items()):
                rc = p.poll()  # also reaps a killed worker, so the others see it is gone
                if rc is None:
                    continue
                del pending[k]
                if rc not in (0, 130):
                    how = f"signal {-rc}" if rc < 0 else f"exit code {rc}"
                    log(f"worker {k + 1} (pid {p.pid}) ended with {how}; the others carry on, and its trial, "
                        "if any, is failed and queued again")
            time.sleep(0.2)
    except BaseException as e:  # Ctrl-C; or this process's output gone (`| head -1`): the workers stop with it
        for p in procs:  # each stops as Ctrl-C stops it: its trial failed and queued again
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGINT)
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=30)
            if p.poll() is None:
                p.terminate()
        if not isinstance(e, KeyboardInterrupt):
            raise
        _said(lines, log, readers)
        raise Interrupted("search interrupted; the trials done are stored. Resume with the same command.") from None
    _said(lines, log, readers)


def _relay(stream, lines: queue.SimpleQueue) -> None:
    """Each line a worker prints, into `lines`, until the worker ends (its end of the pipe closes)."""
    with stream:
        for line in stream:
            lines.put(line.rstrip("\n"))


def _said(lines: queue.SimpleQueue, log: Callable[[str], None], readers: list[threading.Thread] = ()) -> None:
    """Hand the workers' lines so far to `log`; with `readers`, once every worker's last line is read."""
    for reader in readers:
        reader.join(timeout=5)
    while True:
        try:
            log(lines.get_nowait())
        except queue.Empty:
            return


def worker_main(label: str = "") -> int:
    """A worker process started by `zoo search --workers N` (settings in the environment)."""
    raw = os.environ.get(SETTINGS_ENV)
    if not raw:
        raise ConfigError(f"search-worker is started by `zoo search --workers N` (no {SETTINGS_ENV})")
    settings = Settings(**json.loads(raw))
    space = load_space(settings.space)
    parent = int(os.environ[PARENT_ENV]) if os.environ.get(PARENT_ENV, "").isdigit() else os.getppid()
    Worker(settings, space, log=_to_the_search, label=label, parent=parent).run()
    return 0


_SEARCH_GONE: list[bool] = []  # set once the search reading a worker's output is gone


def _to_the_search(line: str) -> None:
    """A worker's line, to the `zoo search` that reads its output (and hands it to its log); once that one is
    gone (killed), this and every later line to stderr, where the worker's warnings go."""
    if not _SEARCH_GONE:
        try:
            print(line, flush=True)
            return
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
            _SEARCH_GONE.append(True)
    print(line, file=sys.stderr, flush=True)
