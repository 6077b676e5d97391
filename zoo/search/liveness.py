"""Telling a live worker from a dead one: the heartbeats of the trials a worker runs, a process check on
one host, and `fail_stale`, which fails the trials of dead workers and queues them again."""

from __future__ import annotations

import contextlib
import copy
import os
import threading
import time
from typing import TYPE_CHECKING

from zoo.search.study import HOST, optuna_module

if TYPE_CHECKING:
    from zoo.search.worker import Worker


UNCLAIMED_S = 10  # the least time a trial no worker has claimed yet is given before it is failed
LOST = "lost"  # the user attribute of why fail_stale failed a trial: trials.csv's note where the trial failed


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


class Heartbeat(threading.Thread):
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


class JournalHeartbeat(threading.Thread):
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


def fail_stale(worker: Worker) -> None:
    """Fail the trials of dead workers and queue them again."""
    optuna = optuna_module()
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    if worker.native:  # Optuna's heartbeats fail and retry them; said as on the journal file, which it did not
        running = {t._trial_id: t.number for t in worker.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        optuna.storages.fail_stale_trials(worker.study)
        if running:
            for t in worker.study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
                if t._trial_id in running:  # (another worker failing it in the same instant may say it too)
                    worker.log(f"{worker.prefix}trial {t.number} lost its worker: failed, queued again")
        return

    now = time.time()
    for t in worker.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        w = t.user_attrs.get("worker") or {}
        own = w.get("trial") == t.number  # attributes copied into a retry belong to the old trial
        if own and w.get("host") == HOST and w.get("pid") == os.getpid():
            continue
        beat = t.user_attrs.get("heartbeat") if own else None
        started = t.datetime_start.timestamp() if t.datetime_start else now
        # A worker claims its new trial at once (the objective's first write); one still unclaimed after a
        # heartbeat was left by a worker stopped right after creating it (Ctrl-C): no need to wait 3 beats. Not
        # under UNCLAIMED_S, though: a live worker's sampler may still be drawing the new trial's parameters.
        limit = worker.settings.grace if own else max(worker.settings.heartbeat, UNCLAIMED_S)
        dead = (own and w.get("host") == HOST and not _alive(w.get("pid"))) or \
            now - max(beat or 0.0, started) > limit
        if not dead:
            continue
        try:  # trials.csv's note of a failed trial (a trial its worker finishes meanwhile keeps its own row)
            worker.storage.set_trial_user_attr(t._trial_id, LOST, f"its worker stopped answering (no heartbeat for "
                                               f"{now - max(beat or 0.0, started):.0f} s): failed, queued again")
            failed = worker.storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:
            continue
        if failed:
            worker.log(f"{worker.prefix}trial {t.number} lost its worker: failed, queued again")
            frozen = copy.deepcopy(worker.storage.get_trial(t._trial_id))
            frozen.user_attrs.pop(LOST, None)  # its retry's row is of its own run
            worker.retry(worker.study, frozen)


def taken_over(worker: Worker, trial) -> bool:
    """Whether `trial`, which this worker ran, is finished in the study already: another worker took this one for
    dead (no heartbeat past the grace: a suspended or paused process, a cut to the database) and failed it."""
    from optuna.trial import TrialState

    try:
        return worker.storage.get_trial(trial._trial_id).state != TrialState.RUNNING
    except Exception:  # noqa: BLE001 - a storage that fails says so when the trial is told
        return False


def say_taken_over(worker: Worker, trial) -> None:
    """Say that this worker's result for `trial` is dropped, and which trial retries it (`taken_over`)."""
    worker.scored.pop(trial.number, None)  # its line would say a score the study does not hold
    retries = [t.number for t in worker.study.get_trials(deepcopy=False)
               if (t.system_attrs.get("retry_history") or [None])[-1] == trial.number]
    where = f"retried as trial {retries[0]}" if retries else "queued again"
    worker.log(f"{worker.prefix}trial {trial.number} was failed by another worker while this one did not answer (no "
               f"heartbeat for more than {worker.settings.grace} s: paused, suspended or cut off from the storage) "
               f"and is {where}; this worker's result for it is dropped")
