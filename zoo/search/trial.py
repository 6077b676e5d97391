"""One trial: `configure` samples its configuration (pruning an invalid one), `score` trains it on the
validation split or k folds, reporting each epoch to the pruner (`Report`), and `finish` records and
prints its objective (the metric plus penalties); with the printing helpers they use."""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from typing import TYPE_CHECKING, Any


from zoo.errors import ConfigError, OutOfMemory, TrainingDiverged, out_of_memory
from zoo.runs.config import resolve_config
from zoo.search import cv as cvmod
from zoo.search.duplicates import refuse_duplicate
from zoo.search.settings import Settings
from zoo.search.study import optuna_module
from zoo.training.engine import Callback
from zoo.training.fit import fit

if TYPE_CHECKING:
    from zoo.search.worker import Worker


class Report:
    """Reports every epoch's objective metric to the trial and prunes when the pruner says so, but never
    at the trial's last epoch (over all folds): it has trained to the end, and keeps its score. `fold` (from 0)
    of `folds` (1: the validation split): fold k's epochs follow fold k-1's, as the pruner's steps."""

    def __init__(self, trial, metric: str, pruner: str, fold: int, folds: int, epochs: int):
        self.trial, self.metric, self.pruner = trial, metric, pruner
        self.fold, self.folds, self.epochs = fold, folds, epochs
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
        step = self.fold * self.epochs + epoch
        self.trial.report(float(v), step)
        if step < self.folds * self.epochs and self.trial.should_prune():
            # the epoch within its fold, and the fold: "after epoch 1" alone would read as one epoch trained
            where = f" of fold {self.fold + 1} (of {self.folds})" if self.folds > 1 else ""
            reason = f"pruned by the {self.pruner} pruner after epoch {epoch}{where}"
            self.trial.set_user_attr("pruned_reason", reason)
            raise optuna.TrialPruned(reason)


def note_pruned(worker: Worker, trial, reason: str) -> None:
    """Record and say why `trial` is pruned (its `pruned_reason`, trials.csv's note); the caller tells the study."""
    trial.set_user_attr("pruned_reason", reason)
    worker.log(f"{worker.prefix}trial {trial.number}  pruned: {reason}")


def prune(worker: Worker, trial, reason: str):
    optuna = optuna_module()
    note_pruned(worker, trial, reason)
    raise optuna.TrialPruned(reason)


def configure(worker: Worker, trial):
    """Sample the trial's keys and build its config: (values, cls, model_cfg, train_cfg); prunes an
    invalid configuration with its reason."""

    s = worker.settings
    try:
        values, helpers = worker.space.sample(trial, grid=s.strategy == "grid")
    except ConfigError as e:
        prune(worker, trial, f"invalid configuration: {e.message}")
    if helpers:
        trial.set_user_attr("helpers", jsonable(helpers))
    trial.set_user_attr("values", jsonable(values))  # last: it marks the trial's draw as complete
    refuse_duplicate(worker, trial)
    try:
        cls, model_cfg, train_cfg = resolve_config(s.model, preset=s.preset,
                                                   config={**worker.space.fixed, **s.overrides}, overrides=values)
    except ConfigError as e:
        prune(worker, trial, f"invalid configuration: {e.message}")
    full = {**dataclasses.asdict(model_cfg), **dataclasses.asdict(train_cfg)}
    trial.set_user_attr("config", jsonable(full))
    return values, cls, model_cfg, train_cfg


def data_parts(worker: Worker, train_cfg):
    """The data a trial trains on: [the data set], or its k folds."""
    if not worker.settings.cv:
        return [worker.data(train_cfg)]
    return list(cvmod.folds(cvmod.grey_data(train_cfg, worker.data), worker.settings.cv, train_cfg.seed,
                            train_cfg.binarize))


def score(worker: Worker, trial, values, cls, model_cfg, train_cfg) -> float:
    optuna = optuna_module()
    s = worker.settings
    parts = data_parts(worker, train_cfg)
    losses, seconds, epochs = [], 0.0, 0
    for i, part in enumerate(parts):
        report = Report(trial, s.metric, pruner_name(s), i, len(parts), train_cfg.epochs)
        try:
            r = fit(cls, model_cfg, train_cfg, part, callbacks=[report.callback], metric=s.metric,
                          reduce=s.reduce)
        except ConfigError as e:
            prune(worker, trial, f"invalid configuration: {e.message}")
        except TrainingDiverged as e:
            prune(worker, trial, f"diverged: {e.message.split('. ')[0]}")
        except OutOfMemory:  # the CPU's or the GPU's, while training: a smaller trial may fit
            prune(worker, trial, "out of memory")
        except (MemoryError, RuntimeError) as e:  # building the model (its weights alone too large)
            if out_of_memory(e) is None:
                raise
            prune(worker, trial, "out of memory")
        except optuna.TrialPruned as e:
            worker.log(f"{worker.prefix}trial {trial.number}  {e}")
            raise
        if not math.isfinite(r.value):
            prune(worker, trial, f"the {s.metric} is not finite")
        losses.append(r.value)
        seconds += r.seconds
        epochs += r.epochs
    return finish(worker, trial, values, model_cfg, losses, seconds, epochs)


def finish(worker: Worker, trial, values, model_cfg, losses, seconds, epochs, note: str = "") -> float:
    s = worker.settings
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
    shown = ", ".join(f"{k}={short(v)}" for k, v in values.items())
    extra = f" + penalties {penalty:.4g}" if penalty else ""
    cvtxt = f" (mean of {len(losses)} folds)" if len(losses) > 1 else ""
    # said once the study holds it (Worker.say_told): a Ctrl-C before that loses the trial, which is run again
    worker.scored[trial.number] = (f"{worker.prefix}trial {trial.number}  {value:.5g}  ({s.metric} {loss:.5g}{cvtxt}"
                                   f"{extra}; {seconds:.1f} s{note})  {shown}")
    return value


def pruner_name(settings: Settings) -> str:
    """The pruner that prunes: `auto` prunes with the median pruner (zoo.search.study.auto_pruning)."""
    return "median" if settings.pruner == "auto" else settings.pruner


def jsonable(v: Any) -> Any:
    return json.loads(json.dumps(v, default=str))


def short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, list):
        return "[" + ",".join(short(x) for x in v) + "]"
    return str(v)
