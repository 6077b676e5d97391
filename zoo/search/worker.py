"""Running trials: a `Worker` asks the study for trials, trains them (one by one, or same-shape
ones together in one vectorised step, different shapes concurrently) and tells the outcomes; heartbeats
let a dead worker's trial be retried."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import os
import statistics
import threading
import time
from typing import Any, Callable

from zoo.runs.config import resolve_config
from zoo.console import to_stdout
from zoo.errors import ConfigError, RunError, ZooError
from zoo.search.data import load_data
from zoo.search.settings import Interrupted, Settings
from zoo.search.study import HOST, open_study, optuna_module, retry_callback
from zoo.search.space import Space

DRAW_WAIT = 5.0  # seconds a trial waits for earlier trials to finish drawing before comparing with them


class Duplicate(Exception):
    """A trial drew the configuration of an earlier trial still queued or running: failed, not run."""


def _jsonable(v: Any) -> Any:
    return json.loads(json.dumps(v, default=str))


def _alive(pid: int | None) -> bool:
    if not pid:
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child not yet reaped is a zombie: dead
        with open(f"/proc/{int(pid)}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


class _Report:
    """Reports every epoch's objective metric to the trial and prunes when the pruner says so, but never
    at the trial's last epoch (`last`, over all folds): it has trained to the end, and keeps its score."""

    def __init__(self, trial, metric: str, offset: int, last: int, pruner: str):
        from zoo.training.engine import Callback

        self.trial, self.metric, self.offset, self.last, self.pruner = trial, metric, offset, last, pruner
        outer = self

        class Report(Callback):
            def on_epoch_end(self, trainer, epoch, record):
                outer.report(epoch, record)

        self.callback = Report()

    def report(self, epoch: int, record: dict[str, Any]) -> None:
        optuna = optuna_module()
        v = record.get(self.metric)
        if v is None or not math.isfinite(v):
            return
        step = self.offset + epoch
        self.trial.report(float(v), step)
        if step < self.last and self.trial.should_prune():
            reason = f"pruned by the {self.pruner} pruner after epoch {epoch}"
            self.trial.set_user_attr("pruned_reason", reason)
            raise optuna.TrialPruned(reason)


class _Heartbeat(threading.Thread):
    """Heartbeats for the trials a worker runs at once: Optuna's own on a database storage, a
    `heartbeat` user attribute on the journal file."""

    def __init__(self, storage, trial_ids: list[int], interval: int, native: bool):
        super().__init__(daemon=True)
        self.storage, self.trial_ids, self.interval, self.native = storage, list(trial_ids), interval, native
        self.stopped = threading.Event()

    def beat(self) -> None:
        for tid in self.trial_ids:
            with contextlib.suppress(Exception):  # a trial that finished meanwhile
                if self.native:
                    self.storage.record_heartbeat(tid)
                else:
                    self.storage.set_trial_user_attr(tid, "heartbeat", time.time())

    def run(self) -> None:
        self.beat()
        while not self.stopped.wait(self.interval):
            self.beat()

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=5)


class _JournalHeartbeat(threading.Thread):
    def __init__(self, storage, trial_id: int, interval: int):
        super().__init__(daemon=True)
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.storage.set_trial_user_attr(self.trial_id, "heartbeat", time.time())
            except Exception:  # noqa: BLE001 - the trial finished meanwhile
                return

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=5)


class Worker:
    """Runs trials of one study until the study's budget is spent."""

    def __init__(self, settings: Settings, space: Space, log: Callable[[str], None] = to_stdout, label: str = "",
                 data_cache: dict | None = None):
        self.settings, self.space, self.log = settings, space, log
        self.prefix = f"[{label}] " if label else ""
        self.study, self.storage, self.native = open_study(settings, space)
        self.retry = retry_callback()
        self.data_cache: dict[tuple, Any] = {} if data_cache is None else data_cache
        self.current = None
        self.duplicates = 0  # draws in a row that were an earlier trial's (this worker then backs off)

    # ------------------------------------------------------------------ stale trials
    def fail_stale(self) -> None:
        """Fail the trials of dead workers and queue them again."""
        optuna = optuna_module()
        if self.native:
            optuna.storages.fail_stale_trials(self.study)
            return
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        now = time.time()
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            w = t.user_attrs.get("worker") or {}
            own = w.get("trial") == t.number  # attributes copied into a retry belong to the old trial
            if own and w.get("host") == HOST and w.get("pid") == os.getpid():
                continue
            beat = t.user_attrs.get("heartbeat") if own else None
            started = t.datetime_start.timestamp() if t.datetime_start else now
            dead = (own and w.get("host") == HOST and not _alive(w.get("pid"))) or \
                now - max(beat or 0.0, started) > self.settings.grace
            if not dead:
                continue
            try:
                failed = self.storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            except UpdateFinishedTrialError:
                continue
            if failed:
                self.log(f"{self.prefix}trial {t.number} lost its worker: failed, queued again")
                self.retry(self.study, copy.deepcopy(self.storage.get_trial(t._trial_id)))

    # ------------------------------------------------------------------ the loop
    def counts(self) -> tuple[int, int, int]:
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False)
        done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
        running = sum(t.state == TrialState.RUNNING for t in trials)
        waiting = sum(t.state == TrialState.WAITING for t in trials)
        return done, running, waiting

    def run(self) -> int:
        """Trials until the study holds `trials` complete or pruned ones (or the timeout); returns how
        many this worker ran."""
        optuna = optuna_module()
        start = time.time()
        ran = 0
        poll = min(1.0, self.settings.heartbeat / 2)
        try:
            while True:
                self.fail_stale()
                done, running, waiting = self.counts()
                if done >= self.settings.trials:
                    break
                if self.settings.timeout and time.time() - start > self.settings.timeout:
                    self.log(f"{self.prefix}timeout: no new trials after {self.settings.timeout:g} s")
                    break
                if not waiting and done + running >= self.settings.trials:
                    time.sleep(poll)  # the rest of the budget is in flight; take over a trial whose worker dies
                    continue
                if self.settings.vectorize > 1:
                    size = max(1, min(self.settings.vectorize, self.settings.trials - done - running))
                    self.run_group(max(size, min(waiting, self.settings.vectorize)))
                    ran += size
                else:
                    self.study.optimize(self.objective, n_trials=1, catch=(Duplicate,), gc_after_trial=False,
                                        show_progress_bar=False)
                    ran += 1
                if self.duplicates:  # the space offers little else while those trials run: wait a little
                    time.sleep(min(poll * 2 ** (self.duplicates - 1), 30.0))
        except (KeyboardInterrupt, ZooError) as e:
            if isinstance(e, ZooError) and e.exit_code != 130:  # not Ctrl-C inside a trial's training
                raise
            self._requeue_current()
            raise Interrupted(f"search interrupted; {self.counts()[0]} trials are done and stored. Resume with the "
                              "same command (and --study NAME).") from e
        except optuna.exceptions.StorageInternalError as e:
            raise RunError(f"the study's storage failed: {e}") from None
        finally:
            self.current = None
        return ran

    def _requeue_current(self) -> None:
        """A trial interrupted by Ctrl-C is failed (by Optuna); queue it again for the resumed study."""
        if self.current is None:
            return
        with contextlib.suppress(Exception):
            frozen = self.storage.get_trial(self.current._trial_id)
            from optuna.trial import TrialState

            if frozen.state == TrialState.FAIL:
                self.retry(self.study, copy.deepcopy(frozen))

    # ------------------------------------------------------------------ one trial
    def _data(self, train_cfg):
        return load_data(train_cfg, self.data_cache)

    def objective(self, trial) -> float:
        self.current = trial
        trial.set_user_attr("worker", {"host": HOST, "pid": os.getpid(), "trial": trial.number})
        beat = None
        if not self.native:
            trial.set_user_attr("heartbeat", time.time())
            beat = _JournalHeartbeat(self.storage, trial._trial_id, self.settings.heartbeat)
            beat.start()
        try:
            return self._objective(trial)
        finally:
            if beat is not None:
                beat.stop()

    def _prune(self, trial, reason: str):
        optuna = optuna_module()
        trial.set_user_attr("pruned_reason", reason)
        self.log(f"{self.prefix}trial {trial.number}  pruned: {reason}")
        raise optuna.TrialPruned(reason)

    def _configure(self, trial):
        """Sample the trial's keys and build its config: (values, cls, model_cfg, train_cfg); prunes an
        invalid configuration with its reason."""

        s = self.settings
        try:
            values, helpers = self.space.sample(trial, grid=s.sampler == "grid")
        except ConfigError as e:
            self._prune(trial, f"invalid configuration: {e.message}")
        if helpers:
            trial.set_user_attr("helpers", _jsonable(helpers))
        trial.set_user_attr("values", _jsonable(values))  # last: it marks the trial's draw as complete
        self._refuse_duplicate(trial)
        try:
            cls, model_cfg, train_cfg = resolve_config(s.model, preset=s.preset,
                                                       config={**self.space.fixed, **s.overrides}, overrides=values)
        except ConfigError as e:
            self._prune(trial, f"invalid configuration: {e.message}")
        full = {**dataclasses.asdict(model_cfg), **dataclasses.asdict(train_cfg)}
        trial.set_user_attr("config", _jsonable(full))
        return values, cls, model_cfg, train_cfg

    def _refuse_duplicate(self, trial) -> None:
        """Fail a trial that drew the configuration of an earlier trial still queued or running (in any
        worker): running it again would add nothing. Of two such twins the later one always yields,
        because it compares only after every earlier trial has finished drawing."""
        twin = self._earlier_twin(trial)
        if twin is None:
            self.duplicates = 0
            return
        self.duplicates += 1
        note = f"drew the configuration of trial {twin}, which is queued or running: not run"
        trial.set_user_attr("note", note)
        self.log(f"{self.prefix}trial {trial.number}  {note}")
        self.current = None  # failed on purpose: Ctrl-C must not queue it again
        raise Duplicate(note)

    def _earlier_twin(self, trial) -> int | None:
        """The number of an earlier trial, queued or running, with `trial`'s params; None if none."""
        from optuna.trial import TrialState

        params = trial.params
        deadline = time.time() + DRAW_WAIT
        while True:
            earlier = [t for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
                       if t.number < trial.number]
            for t in earlier:
                if "values" in t.user_attrs and t.params == params:
                    return t.number
            drawing = any(t.state == TrialState.RUNNING and "values" not in t.user_attrs for t in earlier)
            if not drawing or time.time() > deadline:  # (a worker killed while drawing never finishes)
                return None
            time.sleep(0.05)

    def _parts(self, train_cfg):
        from zoo.search import cv as cvmod

        data = self._data(train_cfg)
        return list(cvmod.folds(data, self.settings.cv, train_cfg.seed)) if self.settings.cv else [data]

    def _objective(self, trial) -> float:
        values, cls, model_cfg, train_cfg = self._configure(trial)
        return self._score(trial, values, cls, model_cfg, train_cfg)

    def _score(self, trial, values, cls, model_cfg, train_cfg) -> float:
        import torch

        from zoo.search import cv as cvmod
        from zoo.errors import TrainingDiverged

        optuna = optuna_module()
        s = self.settings
        parts = self._parts(train_cfg)
        losses, seconds, epochs = [], 0.0, 0
        for i, part in enumerate(parts):
            report = _Report(trial, s.metric, i * train_cfg.epochs, len(parts) * train_cfg.epochs, _pruner_name(s))
            try:
                r = cvmod.fit(cls, model_cfg, train_cfg, part, callbacks=[report.callback], metric=s.metric,
                              reduce=s.reduce)
            except ConfigError as e:
                self._prune(trial, f"invalid configuration: {e.message}")
            except TrainingDiverged as e:
                self._prune(trial, f"diverged: {e.message.split('. ')[0]}")
            except torch.OutOfMemoryError:
                self._prune(trial, "out of memory")
            except optuna.TrialPruned as e:
                self.log(f"{self.prefix}trial {trial.number}  {e}")
                raise
            if not math.isfinite(r.value):
                self._prune(trial, f"the {s.metric} is not finite")
            losses.append(r.value)
            seconds += r.seconds
            epochs += r.epochs
        return self._finish(trial, values, model_cfg, losses, seconds, epochs)

    def _finish(self, trial, values, model_cfg, losses, seconds, epochs, note: str = "") -> float:
        s = self.settings
        loss = statistics.fmean(losses)
        minutes = seconds / 60.0 / len(losses)
        latent = getattr(model_cfg, s.latent_key, None)
        penalty = s.time_penalty * minutes + (s.latent_penalty * latent if s.latent_penalty and latent else 0.0)
        value = loss + penalty
        attrs = {"loss": loss, "minutes": minutes, "epochs": epochs, "penalty": penalty}
        if latent is not None:
            attrs["latent"] = latent
        if len(losses) > 1:
            attrs["fold_losses"] = losses
            attrs["loss_std"] = statistics.stdev(losses)
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
        shown = ", ".join(f"{k}={_short(v)}" for k, v in values.items())
        extra = f" + penalties {penalty:.4g}" if penalty else ""
        cvtxt = f" (mean of {len(losses)} folds)" if len(losses) > 1 else ""
        self.log(f"{self.prefix}trial {trial.number}  {value:.5g}  ({s.metric} {loss:.5g}{cvtxt}{extra}; "
                 f"{seconds:.1f} s{note})  {shown}")
        return value

    # ------------------------------------------------------------------ several trials in one vectorised step
    def run_group(self, size: int) -> None:
        """Ask `size` trials at once; those with the same tensor shapes that differ only in lr, weight
        decay, momentum, seed, patience and the model's vectorised keys (dropout p, noise level, β)
        train together in one vmapped step (zoo.training.multitrial); the rest one by one. Each is told its own
        result."""
        optuna = optuna_module()
        from optuna.trial import TrialState

        from zoo.training import multitrial

        trials = [self.study.ask() for _ in range(size)]
        told: set[int] = set()
        lock = threading.Lock()

        def tell(trial, value=None, state=None):
            with lock:  # groups may finish at once, in their own threads
                if trial.number in told:
                    return
                self.study.tell(trial, value, state=state)
                told.add(trial.number)

        beat = _Heartbeat(self.storage, [t._trial_id for t in trials], self.settings.heartbeat, self.native)
        for t in trials:
            t.set_user_attr("worker", {"host": HOST, "pid": os.getpid(), "trial": t.number})
        beat.start()
        try:
            ready = []
            for t in trials:
                try:
                    ready.append((t, *self._configure(t)))
                except optuna.TrialPruned:
                    tell(t, state=TrialState.PRUNED)
                except Duplicate:
                    tell(t, state=TrialState.FAIL)
            groups: dict[str, list] = {}
            for item in ready:
                t, values, cls, model_cfg, train_cfg = item
                data = self._data(train_cfg)
                key = multitrial.group_key(cls, model_cfg, train_cfg, data.shape, data.num_classes)
                groups.setdefault(key, []).append(item)
            if len(groups) > 1 and self._concurrent(next(iter(groups.values()))[0][4]):
                self._run_concurrently(list(groups.values()), tell)
            else:
                for members in groups.values():
                    self._run_members(members, tell)
        except BaseException:
            for t in trials:
                if t.number not in told:
                    with contextlib.suppress(Exception):
                        tell(t, state=TrialState.FAIL)
                        self.retry(self.study, copy.deepcopy(self.storage.get_trial(t._trial_id)))
            raise
        finally:
            beat.stop()

    def _concurrent(self, train_cfg) -> bool:
        if self.settings.concurrent is not None:
            return self.settings.concurrent
        return self._data(train_cfg).train_x.device.type == "cuda"

    def _run_concurrently(self, groups: list[list], tell) -> None:
        """Train groups of different shapes at once, each in a thread with its own CUDA stream: small
        models leave most of a GPU idle, and kernels from different streams run side by side. (With
        cuda_graph each step is one launch, so the threads hardly contend for Python.)"""
        import torch

        errors: list[BaseException] = []
        sizes = "+".join(str(len(m)) for m in groups)
        self.log(f"{self.prefix}{len(groups)} groups of different shapes ({sizes} trials) train concurrently")

        def run(members):
            try:
                device = self._data(members[0][4]).train_x.device
                stream = torch.cuda.stream(torch.cuda.Stream(device)) if device.type == "cuda" else \
                    contextlib.nullcontext()
                with stream:
                    self._run_members(members, tell)
                if device.type == "cuda":
                    torch.cuda.current_stream(device).synchronize()  # this thread's work only
            except BaseException as e:  # re-raised in the searching thread
                errors.append(e)

        # daemon threads: after Ctrl-C the process exits without waiting for their trials (which are
        # failed and queued again by run_group, like any interrupted trial)
        threads = [threading.Thread(target=run, args=(m,), name=f"zoo-group-{i}", daemon=True)
                   for i, m in enumerate(groups)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def _run_members(self, members: list, tell) -> None:
        optuna = optuna_module()
        from optuna.trial import TrialState

        from zoo.training import multitrial

        cls = members[0][2]
        stackable = len(members) > 1
        if stackable:
            data = self._data(members[0][4])
            try:
                multitrial.check_stackable(cls, [m[3] for m in members], [m[4] for m in members], data.shape,
                                           data.num_classes)
            except ConfigError:
                stackable = False
        if not stackable:
            for t, values, cls_, mc, tc in members:
                try:
                    tell(t, self._score(t, values, cls_, mc, tc))
                except optuna.TrialPruned:
                    tell(t, state=TrialState.PRUNED)
            return
        s = self.settings
        alive = list(members)
        losses: dict[int, list[float]] = {m[0].number: [] for m in members}
        seconds, epochs = 0.0, {m[0].number: 0 for m in members}
        parts = self._parts(members[0][4])
        last = len(parts) * members[0][4].epochs
        for i, part in enumerate(parts):
            pruned: set[int] = set()

            def report(k, epoch, record, alive=alive, offset=i * members[0][4].epochs, pruned=pruned):
                t = alive[k][0]
                v = record.get(s.metric)
                if v is None or not math.isfinite(v):
                    return True
                t.report(float(v), offset + epoch)
                if offset + epoch < last and t.should_prune():  # never at the last epoch (see _Report)
                    pruned.add(k)
                    reason = f"pruned by the {_pruner_name(s)} pruner after epoch {epoch}"
                    t.set_user_attr("pruned_reason", reason)
                    self.log(f"{self.prefix}trial {t.number}  {reason}")
                    return False
                return True

            results = multitrial.train_together(cls, [m[3] for m in alive], [m[4] for m in alive], part,
                                                report=report, metric=s.metric, reduce=s.reduce, log=self.log)
            seconds += sum(r.seconds for r in results)
            survivors = []
            for k, (m, r) in enumerate(zip(alive, results)):
                if k in pruned:
                    tell(m[0], state=TrialState.PRUNED)
                elif r.stopped == "diverged" or not math.isfinite(r.value):
                    m[0].set_user_attr("pruned_reason", "diverged")
                    self.log(f"{self.prefix}trial {m[0].number}  pruned: diverged")
                    tell(m[0], state=TrialState.PRUNED)
                else:
                    losses[m[0].number].append(r.value)
                    epochs[m[0].number] += r.epochs
                    survivors.append(m)
            alive = survivors
        for t, values, _, mc, _ in alive:
            tell(t, self._finish(t, values, mc, losses[t.number], seconds / len(members), epochs[t.number],
                                 note=f", {len(members)} trials vectorised"))


def _pruner_name(settings: Settings) -> str:
    """The pruner that prunes: `auto` prunes with the median pruner (zoo.search.study.auto_pruning)."""
    return "median" if settings.pruner == "auto" else settings.pruner


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, list):
        return "[" + ",".join(_short(x) for x in v) + "]"
    return str(v)
