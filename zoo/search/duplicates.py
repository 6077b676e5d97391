"""Duplicate draws: a trial that drew the configuration of an earlier trial still queued or running (in
any worker) is failed with `Duplicate`, not run."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zoo.search.worker import Worker

DRAW_WAIT = 5.0  # seconds a trial waits for earlier trials to finish drawing before comparing with them


class Duplicate(Exception):
    """A trial drew the configuration of an earlier trial still queued or running: failed, not run."""


def refuse_duplicate(worker: Worker, trial) -> None:
    """Fail a trial that drew the configuration of an earlier trial still queued or running (in any
    worker): running it again would add nothing. Of two such twins the later one always yields,
    because it compares only after every earlier trial has finished drawing."""
    twin = earlier_twin(worker.study, trial)
    if twin is None:
        worker.duplicates = 0
        return
    worker.duplicates += 1
    note = f"drew the configuration of trial {twin}, which is queued or running: not run"
    trial.set_user_attr("note", note)
    worker.log(f"{worker.prefix}trial {trial.number}  {note}")
    worker.current = None  # failed on purpose: Ctrl-C must not queue it again
    raise Duplicate(note)


def earlier_twin(study, trial) -> int | None:
    """The number of an earlier trial, queued or running, with `trial`'s params; None if none."""
    from optuna.trial import TrialState

    params = trial.params
    deadline = time.time() + DRAW_WAIT
    while True:
        earlier = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
                   if t.number < trial.number]
        for t in earlier:
            if "values" in t.user_attrs and t.params == params:
                return t.number
        drawing = any(t.state == TrialState.RUNNING and "values" not in t.user_attrs for t in earlier)
        if not drawing or time.time() > deadline:  # (a worker killed while drawing never finishes)
            return None
        time.sleep(0.05)
