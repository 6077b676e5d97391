"""Several trials at once (`--vectorize K`): `run_group` asks K trials, trains those of the same tensor
shapes together in one vmapped step (zoo.training.multitrial), groups of different shapes concurrently,
and tells each trial its own result."""

from __future__ import annotations

import contextlib
import copy
import math
import os
import threading
from typing import TYPE_CHECKING

import torch

from zoo.errors import ConfigError, out_of_memory
from zoo.search.duplicates import Duplicate
from zoo.search.liveness import Heartbeat, say_taken_over, taken_over
from zoo.search.study import HOST, optuna_module
from zoo.search.trial import Report, configure, data_parts, finish, note_pruned, pruner_name, score
from zoo.training import multitrial

if TYPE_CHECKING:
    from zoo.search.worker import Worker


def run_group(worker: Worker, size: int) -> None:
    """Ask `size` trials at once; those with the same tensor shapes that differ only in lr, weight
    decay, momentum, seed, patience and the model's vectorised keys (dropout p, noise level, β), and with --cv
    have one seed (their folds), train together in one vmapped step (zoo.training.multitrial); the rest one by
    one. Each is told its own result; an unbuildable one is pruned with its reason."""
    optuna = optuna_module()
    from optuna.trial import TrialState

    trials = [worker.study.ask() for _ in range(size)]
    told: set[int] = set()
    lock = threading.Lock()

    def tell(trial, value=None, state=None):
        with lock:  # groups may finish at once, in their own threads
            if trial.number in told:
                return
            if taken_over(worker, trial):  # another worker failed it while this one did not answer: Optuna refuses
                say_taken_over(worker, trial)
                told.add(trial.number)
                return
            worker.study.tell(trial, value, state=state)
            told.add(trial.number)
            if state is None:  # told its value: its line is true now
                worker.say_told(trial.number)
            else:  # failed or pruned after all (a Ctrl-C inside the tell): no line of a finished trial
                worker.scored.pop(trial.number, None)

    beat = Heartbeat(worker.storage, [t._trial_id for t in trials], worker.settings.heartbeat, worker.native)
    for t in trials:
        t.set_user_attr("worker", {"host": HOST, "pid": os.getpid(), "trial": t.number})
    beat.start()
    try:
        ready = []
        for t in trials:
            try:
                ready.append((t, *configure(worker, t)))
            except optuna.TrialPruned:
                tell(t, state=TrialState.PRUNED)
            except Duplicate:
                tell(t, state=TrialState.FAIL)
        groups: dict[str, list] = {}
        for item in ready:
            t, values, cls, model_cfg, train_cfg = item
            data = worker.data(train_cfg)
            try:  # builds the model (on the meta device): where its shapes collapse, the plugin refuses it here
                key = multitrial.group_key(cls, model_cfg, train_cfg, data.shape, data.num_classes)
            except ConfigError as e:  # pruned with the plugin's reason, as trial.score prunes it; the others go on
                note_pruned(worker, t, f"invalid configuration: {e.message}")
                tell(t, state=TrialState.PRUNED)
                continue
            if worker.settings.cv:
                # A group trains on one data set, and with --cv each trial's folds are cut with its own seed
                # (trial.data_parts, as alone and as `zoo cv` cuts them): only trials of one seed share a group.
                key += f" folds of seed {train_cfg.seed}"
            groups.setdefault(key, []).append(item)
        if len(groups) > 1 and _concurrent(worker, next(iter(groups.values()))[0][4]):
            _run_concurrently(worker, list(groups.values()), tell)
        else:
            for members in groups.values():
                _run_members(worker, members, tell)
    except BaseException as e:
        why = "interrupted" if isinstance(e, KeyboardInterrupt) else \
            f"failed: {getattr(e, 'message', None) or f'{type(e).__name__}: {e}'}"
        for t in trials:
            if t.number not in told:
                with contextlib.suppress(Exception):
                    t.set_user_attr("note", f"{why} (in a group of {len(trials)} vectorised trials)")  # trials.csv
                    tell(t, state=TrialState.FAIL)
                    frozen = copy.deepcopy(worker.storage.get_trial(t._trial_id))
                    frozen.user_attrs.pop("note", None)  # its retry's row is of its own run
                    worker.retry(worker.study, frozen)
        raise
    finally:
        beat.stop()


def _concurrent(worker: Worker, train_cfg) -> bool:
    if worker.settings.concurrent is not None:
        return worker.settings.concurrent
    return worker.data(train_cfg).train_x.device.type == "cuda"


def _run_concurrently(worker: Worker, groups: list[list], tell) -> None:
    """Train groups of different shapes at once, each in a thread with its own CUDA stream: small
    models leave most of a GPU idle, and kernels from different streams run side by side. (With
    cuda_graph each step is one launch, so the threads hardly contend for Python.)"""
    errors: list[BaseException] = []
    sizes = "+".join(str(len(m)) for m in groups)
    worker.log(f"{worker.prefix}{len(groups)} groups of different shapes ({sizes} trials) train concurrently")

    def run(members):
        try:
            device = worker.data(members[0][4]).train_x.device
            stream = torch.cuda.stream(torch.cuda.Stream(device)) if device.type == "cuda" else \
                contextlib.nullcontext()
            with stream:
                _run_members(worker, members, tell)
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


def _run_members(worker: Worker, members: list, tell) -> None:
    optuna = optuna_module()
    from optuna.trial import TrialState

    cls = members[0][2]
    stackable = len(members) > 1
    if stackable:
        data = worker.data(members[0][4])
        try:
            multitrial.check_stackable(cls, [m[3] for m in members], [m[4] for m in members], data.shape,
                                       data.num_classes)
        except ConfigError:  # trained one by one: each trial is pruned with its own reason, or trains
            stackable = False
    if not stackable:
        _one_by_one(worker, members, tell)
        return
    s = worker.settings
    alive = list(members)
    losses: dict[int, list[float]] = {m[0].number: [] for m in members}
    seconds, epochs = 0.0, {m[0].number: 0 for m in members}
    parts = data_parts(worker, members[0][4])  # every member's folds: run_group groups trials by their fold seed
    for i, part in enumerate(parts):
        pruned: set[int] = set()

        def report(k, epoch, record, alive=alive, fold=i, pruned=pruned):
            t = alive[k][0]
            try:  # as a trial alone reports (never pruned at its last epoch)
                Report(t, s.metric, pruner_name(s), fold, len(parts), members[0][4].epochs).report(epoch, record)
            except optuna.TrialPruned as e:
                pruned.add(k)
                worker.log(f"{worker.prefix}trial {t.number}  {e}")
                return False
            return True

        results, out_of_memory_together = None, False
        try:
            results = multitrial.train_together(cls, [m[3] for m in alive], [m[4] for m in alive], part,
                                                report=report, metric=s.metric, reduce=s.reduce, log=worker.log)
        except ConfigError:  # a trial its model cannot train (check_training, asked before stacking)
            if i > 0:
                raise
        except (MemoryError, RuntimeError) as e:  # n stacked trials hold n times one trial's memory
            if out_of_memory(e) is None:
                raise
            out_of_memory_together = True
        if results is None:  # out of the except block: its traceback held the stacked step's tensors
            if i == 0:  # nothing trained yet: one by one, each is pruned with its own reason or trains
                if out_of_memory_together:
                    worker.log(f"{worker.prefix}{len(alive)} vectorised trials do not fit in memory together: "
                               "training them one by one")
                _one_by_one(worker, alive, tell)
                return
            for m in alive:
                note_pruned(worker, m[0], "out of memory")
                tell(m[0], state=TrialState.PRUNED)
            return
        seconds += sum(r.seconds for r in results)
        survivors = []
        for k, (m, r) in enumerate(zip(alive, results)):
            if k in pruned:
                tell(m[0], state=TrialState.PRUNED)
            elif r.stopped == "diverged" or not math.isfinite(r.value):
                note_pruned(worker, m[0], "diverged")
                tell(m[0], state=TrialState.PRUNED)
            else:
                losses[m[0].number].append(r.value)
                epochs[m[0].number] += r.epochs
                survivors.append(m)
        alive = survivors
    for t, values, _, mc, _ in alive:
        tell(t, finish(worker, t, values, mc, losses[t.number], seconds / len(members), epochs[t.number],
                   note=f", {len(members)} trials vectorised"))


def _one_by_one(worker: Worker, members: list, tell) -> None:
    """Train each trial alone, each pruned with its own reason or told its score."""
    optuna = optuna_module()
    from optuna.trial import TrialState

    for t, values, cls, model_cfg, train_cfg in members:
        try:
            tell(t, score(worker, t, values, cls, model_cfg, train_cfg))
        except optuna.TrialPruned:
            tell(t, state=TrialState.PRUNED)
