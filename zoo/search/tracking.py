"""A search's trials, logged to the loggers its `loggers` key names (`zoo search --log mlflow`): the
study as one parent with each finished trial as a child (zoo.tracking.logger.StudyView), as the trials
finish (after each one in this process, every few seconds while worker processes run them), and once
more when the search has ended (also when it is interrupted). A resumed search logs only the trials
its loggers do not hold yet."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Callable

from zoo.runs.config import resolve_config
from zoo.search.settings import Settings
from zoo.search.space import Space
from zoo.search.study import open_study
from zoo.tracking import Logger, StudyView, TrialView, study_loggers

FINISHED = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "fail"}
RESULTS = ("loss", "loss_std", "minutes", "epochs", "penalty", "latent")  # the numbers a trial records (trial.finish)


def search_loggers(settings: Settings, space: Space, say: Callable[[str], None]) -> list[Logger]:
    """The loggers the search's fixed keys name, checked before any trial runs (unknown, not installed,
    a folder that cannot be written: refused)."""
    _, _, train_cfg = resolve_config(settings.model, preset=settings.preset,
                                     config={**space.fixed, **settings.overrides})
    loggers = study_loggers(train_cfg, say)
    for logger in loggers:
        logger.prepare_study(Path(settings.study_dir))
    return loggers


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _named(attribute: str, settings: Settings) -> str:
    """A trial's recorded number as loggers name it: its result after the metric (Settings.result)."""
    return attribute.replace("loss", settings.result, 1) if attribute.startswith("loss") else attribute


def study_view(settings: Settings, space: Space, finished: bool = False, interrupted: bool = False) -> StudyView:
    """The study's finished trials as loggers see them (`interrupted`: the search was stopped, by Ctrl-C or a
    failed worker, whatever its budget)."""
    study, _, _ = open_study(settings, space)
    trials = []
    for t in study.get_trials(deepcopy=False):
        state = FINISHED.get(t.state.name)
        if state is None:  # running or queued: logged by a later search, once finished
            continue
        metrics = {_named(k, settings): float(t.user_attrs[k]) for k in RESULTS if _number(t.user_attrs.get(k))}
        curve = {int(k): float(v) for k, v in t.intermediate_values.items() if _number(v)}
        epochs = t.user_attrs.get("config", {}).get("epochs")
        folds = by_fold(curve, settings.cv, epochs) if settings.cv and isinstance(epochs, int) and epochs > 0 else []
        trials.append(TrialView(t.number, state, t.value if state == "complete" else None,
                                dict(t.user_attrs.get("values", t.params)), metrics, {} if folds else curve, folds))
    complete = [t for t in trials if t.value is not None]
    best = min(complete, key=lambda t: t.value).number if complete else None
    # as zoo.search.run tells a search that ended short of its budget (no timeout ended it): to be resumed
    done = sum(t.state in ("complete", "pruned") for t in trials)
    stopped = finished and (interrupted or done < settings.trials and settings.timeout is None)
    return StudyView(settings.study, Path(settings.study_dir), settings.model, settings.metric or "",
                     shared_config(settings, space), trials, best, finished, stopped)


def by_fold(steps: dict[int, float], folds: int, epochs: int) -> list[dict[int, float]]:
    """A CV trial's reported values, each fold's by its epochs: fold k's epoch e is reported at step
    (k - 1) * epochs + e (zoo.search.trial.Report, the pruner's steps). A fold pruned before it began is left out."""
    out: list[dict[int, float]] = [{} for _ in range(folds)]
    for step, value in steps.items():
        fold, epoch = divmod(step - 1, epochs)
        if 0 <= fold < folds:
            out[fold][epoch + 1] = value
    while out and not out[-1]:
        out.pop()
    return out


def shared_config(settings: Settings, space: Space) -> dict[str, Any]:
    """Every model and training key the trials share, defaults included (an IWAE's `bound` and `k` left at
    theirs say which bound `val_loss` is): the resolved [fixed] part and --set, less the searched keys."""
    _, model_cfg, train_cfg = resolve_config(settings.model, preset=settings.preset,
                                             config={**space.fixed, **settings.overrides})
    searched = {p.name.split("[")[0] for p in space.params}
    return {k: v for k, v in {**dataclasses.asdict(model_cfg), **dataclasses.asdict(train_cfg)}.items()
            if k not in searched}


def log_search(loggers: list[Logger], settings: Settings, space: Space, finished: bool = False,
               interrupted: bool = False) -> None:
    """Hand the study's finished trials to each logger (`finished`: the search has ended; `interrupted`: it was
    stopped); a logger's failure is said, never raised."""
    if not any(not logger.failed for logger in loggers):
        return
    view = study_view(settings, space, finished, interrupted)
    for logger in loggers:
        logger.guarded("logging the search", logger.log_study, view,
                       kept="trials.csv in the study folder holds every trial")
