"""What a logger sees: a run (`RunView`), a search (`StudyView`) and its finished trials (`TrialView`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class RunView:
    """What a logger sees of the run it logs: its folder, its config.json, its rows so far."""

    folder: Path
    config: dict[str, Any]           # config.json: model, config, train, data, ...
    history: list[dict[str, Any]]    # metrics.jsonl's rows up to the checkpoint
    resumed: bool

    @property
    def name(self) -> str:
        return self.folder.name


@dataclass
class TrialView:
    """One finished trial of a search, as a logger sees it."""

    number: int
    state: str                      # complete, pruned or fail
    value: float | None             # the objective (None when pruned or failed)
    params: dict[str, Any]          # the drawn values
    metrics: dict[str, float]       # what the search recorded: loss, minutes, epochs (over all folds, with CV), ...
    curve: dict[int, float]         # the objective's metric at each epoch (with CV: empty, see fold_curves)
    fold_curves: list[dict[int, float]] = dataclasses.field(default_factory=list)  # with CV: fold k's at index k-1

    def curves(self) -> dict[str, dict[int, float]]:
        """Each curve with the ending of its name: {"": curve}, or with CV {"/fold1": ..., "/fold2": ...}: one
        fold's epochs are never drawn after another's, as one curve jumping back up."""
        if self.fold_curves:
            return {f"/fold{k}": c for k, c in enumerate(self.fold_curves, 1)}
        return {"": self.curve}


@dataclass
class StudyView:
    """A search, as a logger sees it: its finished trials, in order."""

    name: str
    folder: Path                    # the study folder (summary.json, trials.csv, best.toml, ...)
    model: str
    metric: str
    fixed: dict[str, Any]           # the keys every trial shares (the space's and --set's)
    trials: list[TrialView]
    best: int | None                # the best trial's number
    finished: bool = False          # the search has ended and written its outputs (else trials are running)
    stopped: bool = False           # it ended before its budget of trials (Ctrl-C, workers that failed): resumable
