"""Running trials: a `Worker` asks the study for trials, trains them (one by one, or same-shape
ones together in one vectorised step, different shapes concurrently) and tells the outcomes; heartbeats
let a dead worker's trial be retried. The steps live beside it: one trial in zoo.search.trial, a group of
trials in zoo.search.group, duplicate draws in zoo.search.duplicates, heartbeats and dead workers in
zoo.search.liveness."""

from __future__ import annotations

import contextlib
import copy
import os
import time
from typing import Any, Callable

from zoo.console import to_stdout
from zoo.errors import Interrupted
from zoo.search.data import load_data
from zoo.search.duplicates import Duplicate
from zoo.search.group import run_group
from zoo.search.liveness import LOST, JournalHeartbeat, fail_stale, say_taken_over, taken_over
from zoo.search.settings import Settings
from zoo.search.space import Space
from zoo.search import storage_errors
from zoo.search.study import HOST, open_study, optuna_module, retry_callback
from zoo.search.trial import configure, score


_ACTIVE: list[Worker] = []  # the workers running trials in this process now


class Worker:
    """Runs trials of one study until the study's budget is spent."""

    def __init__(self, settings: Settings, space: Space, log: Callable[[str], None] = to_stdout, label: str = "",
                 data_cache: dict | None = None, after_trial: Callable[[], None] | None = None,
                 parent: int | None = None):
        """`after_trial()` is called after each trial (or group of trials) this worker runs. `parent`: the pid of
        the `zoo search` that started this worker process, which stops starting trials once that one is gone."""
        self.settings, self.space, self.log = settings, space, log
        self.parent = parent
        self.after_trial = after_trial
        self.prefix = f"[{label}] " if label else ""
        self.study, self.storage, self.native = open_study(settings, space)
        self.retry = retry_callback()
        self.data_cache: dict[tuple, Any] = {} if data_cache is None else data_cache
        self.current = None
        self.duplicates = 0  # draws in a row that were an earlier trial's (this worker then backs off)
        self.scored: dict[int, str] = {}  # the line of each trial scored and not yet told to the study
        self.lost = None  # the trial another worker failed while this one ran it (liveness.taken_over)

    def say_told(self, number: int | None = None) -> None:
        """Print the line of trial `number` (default: of every trial scored), now that the study holds its value."""
        for n in [number] if number is not None else list(self.scored):
            line = self.scored.pop(n, None)
            if line is not None:
                self.log(line)

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
        start = time.time()
        ran = 0
        poll = min(1.0, self.settings.heartbeat / 2)
        _ACTIVE.append(self)
        try:
            with storage_errors.said(self.settings):  # a database locked past its wait, mid-trial
                if len(_ACTIVE) == 1:
                    self._fail_left_running()
                while True:
                    if self.parent is not None and os.getppid() != self.parent:  # killed (SIGKILL): no one reads on
                        self.log(f"{self.prefix}the zoo search that started this worker is gone: no new trials")
                        break
                    fail_stale(self)
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
                        run_group(self, max(size, min(waiting, self.settings.vectorize)))
                        ran += size
                    else:
                        self.lost = None
                        try:
                            self.study.optimize(self.objective, n_trials=1, catch=(Duplicate,), gc_after_trial=False,
                                                show_progress_bar=False)
                        except Exception:  # Optuna cannot tell a trial another worker failed meanwhile (ValueError:
                            if self.lost is None:  # "Cannot tell a FAIL trial", or its own "Should not reach")
                                raise
                            say_taken_over(self, self.lost)
                            self.current = None  # retried there: not queued again on a Ctrl-C here
                        self.say_told()
                        ran += 1
                    if self.after_trial is not None:
                        self.after_trial()
                    if self.duplicates:  # the space offers little else while those trials run: wait a little
                        time.sleep(min(poll * 2 ** (self.duplicates - 1), 30.0))
        except KeyboardInterrupt as e:  # also Ctrl-C inside a trial's training (Interrupted)
            self.scored.clear()  # not told: run again on resume
            self._requeue_current()
            done = self.counts()[0]
            if self.parent is not None and os.getppid() == self.parent:
                # a worker process of a `zoo search` that is there to say it, once, for the whole search
                raise SystemExit(130) from None
            raise Interrupted(f"search interrupted; {done} {'trial is' if done == 1 else 'trials are'} done and "
                              "stored. Resume with the same command.") from e
        finally:
            self.current = None
            _ACTIVE.remove(self)
        return ran

    def _fail_left_running(self) -> None:
        """Fail and queue again the trials an earlier search of this process left running (one a full disk ended
        mid-trial, resumed in the same Python session): `fail_stale` takes any trial of this process for one it
        runs now, and the search would wait on it forever. Called while no other worker of this process runs."""
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            w = t.user_attrs.get("worker") or {}
            if (w.get("trial"), w.get("host"), w.get("pid")) != (t.number, HOST, os.getpid()):
                continue
            try:
                self.storage.set_trial_user_attr(t._trial_id, LOST, "left running by an earlier search of the same "
                                                 "process (ended by an error): failed, queued again")
                if not self.storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
                    continue
            except UpdateFinishedTrialError:
                continue
            self.log(f"{self.prefix}trial {t.number} was left running by an earlier search: failed, queued again")
            frozen = copy.deepcopy(self.storage.get_trial(t._trial_id))
            frozen.user_attrs.pop(LOST, None)  # its retry's row is of its own run
            self.retry(self.study, frozen)

    def _requeue_current(self) -> None:
        """A trial interrupted by Ctrl-C is failed (by Optuna); queue it again for the resumed study."""
        if self.current is None:
            return
        with contextlib.suppress(Exception):
            frozen = self.storage.get_trial(self.current._trial_id)
            from optuna.trial import TrialState

            if frozen.state == TrialState.FAIL:
                frozen = copy.deepcopy(frozen)
                frozen.user_attrs.pop("note", None)  # its retry's row is of its own run
                self.retry(self.study, frozen)

    # ------------------------------------------------------------------ one trial
    def data(self, train_cfg):
        """The data set `train_cfg` trains on, loaded once per process (the worker's data cache)."""
        return load_data(train_cfg, self.data_cache)

    def objective(self, trial) -> float:
        self.current = trial
        trial.set_user_attr("worker", {"host": HOST, "pid": os.getpid(), "trial": trial.number})
        beat = None
        if not self.native:
            trial.set_user_attr("heartbeat", time.time())
            beat = JournalHeartbeat(self.storage, trial._trial_id, self.settings.heartbeat)
            beat.start()
        try:
            values, cls, model_cfg, train_cfg = configure(self, trial)
            return score(self, trial, values, cls, model_cfg, train_cfg)
        except (Exception, KeyboardInterrupt) as e:  # failed: trials.csv's note says why (its retry's row has none)
            if not isinstance(e, (Duplicate, optuna_module().TrialPruned)):  # (those have theirs)
                why = "interrupted (Ctrl-C or a stop signal): queued again" if isinstance(e, KeyboardInterrupt) else \
                    f"failed: {getattr(e, 'message', None) or f'{type(e).__name__}: {e}'}"
                with contextlib.suppress(Exception):  # (a trial another worker failed meanwhile takes no note)
                    trial.set_user_attr("note", why[:300])
            raise
        finally:
            if beat is not None:
                beat.stop()
            if taken_over(self, trial):  # this worker paused past the grace: Optuna refuses to tell it
                self.lost = trial
