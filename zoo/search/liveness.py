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
    if worker.native:
        optuna.storages.fail_stale_trials(worker.study)
        return
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

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
        try:
            failed = worker.storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:
            continue
        if failed:
            worker.log(f"{worker.prefix}trial {t.number} lost its worker: failed, queued again")
            worker.retry(worker.study, copy.deepcopy(worker.storage.get_trial(t._trial_id)))
