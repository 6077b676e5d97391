"""A new run folder: one writer at a time, and a run only once it is complete (a failed start leaves
nothing behind for `--resume` to trip over; `--overwrite` replaces only a run)."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
from pathlib import Path

from zoo.caches import is_managed
from zoo.console import to_stderr
from zoo.errors import RunError, storage_error
from zoo.runs import checkpoint as ckpt
from zoo.runs.command_folders import OTHER_COMMANDS
from zoo.runs.eval_images import IMAGES_FILE
from zoo.runs.files import PUSHED_MANIFEST
from zoo.runs.loading import read_run
from zoo.runs.lock import lock_run, writer_of
from zoo.tracking import logger_run_files

# What a new run writes into its folder: a folder already holding any of these is not trained into.
RUN_OUTPUTS = (ckpt.WEIGHTS, ckpt.CHECKPOINT, ckpt.METRICS, ckpt.CARD, ckpt.EVAL, IMAGES_FILE, "loss.png",
               "reconstructions.png", "samples.png")
EVALUATED = (ckpt.EVAL, IMAGES_FILE)  # what `zoo eval` wrote: a resumed training reads eval.json, writes neither
START_MARK = ".zoo-starting"  # present while a run is being started: a kill leaves it with zoo's own files


def refuse_existing_run(run_dir: Path, overwrite: bool = False) -> None:
    if (run_dir / ckpt.CONFIG).exists() and not overwrite:
        raise RunError(f"{run_dir} already holds a run",
                       f"Continue it with `zoo train --resume {shlex.quote(str(run_dir))}`, replace it with "
                       "--overwrite, or choose another --out (from Python: zoo.train(resume=...), overwrite=True, "
                       "out=...).")


def remove_old_run(run_dir: Path, log) -> None:
    """--overwrite: remove what a training wrote into `run_dir` (config.json first, so that from the
    first deletion on the folder is no longer a run), its fitted samplers, evaluations' progress and
    progress grids, and what the installed loggers wrote there (RUN/tensorboard, RUN/mlflow.json: the new
    run must not show or continue the old one's logs). Other files are kept and named."""
    read_run(run_dir)  # a zoo run, readable: --overwrite replaces runs, not whatever holds a config.json
    (run_dir / ckpt.CONFIG).unlink()
    for path in [*(run_dir / n for n in RUN_OUTPUTS), *run_dir.glob("sampler-*.safetensors"),
                 *run_dir.glob("eval-progress*.safetensors")]:
        path.unlink(missing_ok=True)
    shutil.rmtree(run_dir / "progress", ignore_errors=True)
    for path in (run_dir / n for n in logger_run_files()):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)  # what is left is named below, as kept
        else:
            path.unlink(missing_ok=True)
    kept = sorted(p.name for p in run_dir.iterdir() if not p.name.startswith("."))
    more = f" and {len(kept) - 12} more" if len(kept) > 12 else ""
    log(f"--overwrite: removed the run in {run_dir}" + (
        f"; kept {', '.join(kept[:12])}{more}: files zoo did not train, but the results of commands run on the "
        "old weights among them (a noise sweep, pictures) are not of the new ones; delete them or make them again"
        if kept else ""))


@contextlib.contextmanager
def new_run_folder(run_dir: Path, *, overwrite: bool = False, log=to_stderr, made: bool = False):
    """Hold `run_dir`'s writer lock while a new run is made in it. Until the caller says the run has
    started (config.json written), a failure removes what this start wrote (and the folder, if made
    here): no half-made run is left behind for `--resume` to trip over. `overwrite`: a run already in
    the folder is removed first (under the lock), never any other folder's files. `made`: the caller made the
    (empty) folder for this run, which a failure removes too."""
    try:
        _check_new(run_dir, overwrite)
    except BaseException:
        if made:
            remove_empty(run_dir)
        raise
    made = made or not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = lock_run(run_dir)
    except OSError as e:
        if made:
            remove_empty(run_dir)
        raise storage_error(e, "cannot write the run folder", path=run_dir) from None
    state = {"started": False}
    mark = run_dir / START_MARK

    def started() -> None:
        state["started"] = True
        mark.unlink(missing_ok=True)

    try:
        with lock:
            refuse_existing_run(run_dir, overwrite)  # a writer that finished while this one waited
            refuse_other_command(run_dir)  # a search or cross-validation that began meanwhile
            replacing = overwrite and (run_dir / ckpt.CONFIG).exists()
            clash = [n for n in RUN_OUTPUTS if (run_dir / n).exists()]
            if clash and not mark.exists() and not replacing:  # the mark: a killed start's files, zoo's own
                raise RunError(f"{run_dir} holds files a new run would replace ({', '.join(clash[:4])})",
                               "Choose another --out, or move those files away first.")
            ckpt.remove_stale_temporaries(run_dir)
            ckpt.atomic_write(mark, f"{os.getpid()}\n")
            if replacing:
                remove_old_run(run_dir, log)
            try:
                yield started
            except BaseException:
                if not state["started"]:
                    for name in (*RUN_OUTPUTS, START_MARK):
                        with contextlib.suppress(OSError):
                            (run_dir / name).unlink(missing_ok=True)
                raise
    finally:
        if made and not state["started"]:
            remove_empty(run_dir)


def _check_new(run_dir: Path, overwrite: bool) -> None:
    """Refuse a folder another process writes, one holding a run (unless `overwrite`) or one zoo manages."""
    writer = writer_of(run_dir) if run_dir.is_dir() else None  # a training now: "--resume it" would be refused too
    if writer is not None:
        raise RunError(f"{run_dir} is being written by another zoo process{f' (pid {writer})' if writer else ''}",
                       "A run folder has one writer: wait for it to finish, or train into another --out.")
    refuse_existing_run(run_dir, overwrite)  # before anything is written, even a lock file
    refuse_other_command(run_dir)
    entry = next((p for p in (run_dir.absolute(), *run_dir.absolute().parents) if (p / PUSHED_MANIFEST).is_file()),
                 None)
    if entry is not None:  # a run there would be files no push wrote: every later push to the entry refused
        raise RunError(f"{run_dir} is inside the folder hub's entry {entry}: only zoo push writes there",
                       "Train into a folder of your own (outside the hub).")
    if is_managed(run_dir):  # a pulled copy, the HF cache or the bundled weights: verified files, not a workplace
        raise RunError(f"{run_dir} is in a folder zoo or the Hugging Face Hub manages"
                       + ("; --overwrite is refused" if overwrite else ": no run is trained there"),
                       "Train into a folder of your own.")


def refuse_other_command(run_dir: Path) -> None:
    """Refuse a folder that `zoo search` or `zoo cv` writes (with --overwrite too): each refuses a run folder, so
    a run there would leave the study unresumable, or the cross-validation's table hidden and not redone."""
    held = [n for n in OTHER_COMMANDS if (run_dir / n).exists()]
    if held:
        raise RunError(f"{run_dir} is {OTHER_COMMANDS[held[0]]} ({', '.join(held)}): a run goes into a folder of "
                       "its own", "Choose another --out.")


def remove_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()  # only if nothing else is in it
