"""A run's test metrics as `zoo compare` shows them: from its eval.json (with their standard errors and
each image's values, where kept), or for published weights (catalogued, pulled) from their model card,
over which goes the user's own evaluation of the whole test split in ./zoo-outputs/NAME/. Never the
weights, only their digest."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.runs import checkpoint as ckpt
from zoo.runs import eval_images, published
from zoo.runs.loading import output_place
from zoo.runs.modelcard import quality_figures
from zoo.runs.published import number


@dataclass
class Evaluated:
    """A run's test metrics, their standard errors over the images, each image's values (eval_images.read)
    and which images those are (their digest); notes on what was left out and why."""

    metrics: dict[str, float] = field(default_factory=dict)
    errors: dict[str, float] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    images: str | None = None
    notes: list[str] = field(default_factory=list)


def read_evaluated(folder: Path, name: str) -> Evaluated:
    """The run's test metrics (_read_tested), with its classifier-feature figures from the quality.json `zoo eval
    --fid` wrote of these weights (over the catalogued ones)."""
    row = _read_tested(folder, name)
    _read_quality(row, folder, name)
    return row


def _read_tested(folder: Path, name: str) -> Evaluated:
    """The run's test metrics: its eval.json (with their standard errors and each image's values, where
    it has them), else (without one, for published weights only: published.is_published) its model card's, else
    its catalogue entry's. For a model not the user's (catalogued, pulled), the user's own evaluation of the whole
    test split, as `zoo eval` wrote it
    into ./zoo-outputs/NAME/, goes over the published metrics and the eval.json published with the
    weights (bundled weights ship theirs, so that they pair with the user's runs). An eval.json of other
    weights than the run's (stale after --resume) gives none, with a note: the card's metrics were rendered
    from it, so they are not used either."""
    row = Evaluated()
    evaluated, note = eval_images.current_eval(folder)
    if note:
        row.notes.append(note.replace(f"{folder}/", ""))  # the run's name is on the row
        return row
    place, elsewhere = output_place(name, folder)
    published_too = None  # the evaluation published with the weights, under the user's own
    if evaluated is None or elsewhere:
        # a run folder of the user's: its own evaluation alone (a folder named like catalogued weights, ./convae,
        # is not them; an older zoo's card may hold figures of earlier weights)
        row.metrics = published.test_metrics(folder, name) if published.is_published(name, folder) else {}
        own = _own_evaluation(row, place, folder) if elsewhere else None
        if own is not None:
            published_too = (evaluated, folder) if evaluated is not None else None
            evaluated, folder = own, place
        elif evaluated is None:
            return row
    if evaluated.get("split", "test") != "test":
        return row
    _take(row, evaluated, folder)
    if published_too and published_too[0].get(eval_images.IMAGES_DIGEST) == evaluated.get(eval_images.IMAGES_DIGEST):
        # The same images: the metrics the user's evaluation left out (the bound at a K it did not measure).
        _take(row, *published_too, skip=set(evaluated["metrics"]))
    return row


def _take(row: Evaluated, evaluated: dict[str, Any], folder: Path, skip: set[str] = frozenset()) -> None:
    """An evaluation's test metrics (but `skip`), their standard errors and each image's values, into `row`."""
    keep = {k for k, v in evaluated["metrics"].items() if number(v) and k not in skip}
    row.metrics.update({k: evaluated["metrics"][k] for k in keep})
    errors = evaluated.get("standard_errors") if isinstance(evaluated.get("standard_errors"), dict) else {}
    row.errors.update({k: errors[k] for k in keep if number(errors.get(k))})
    if isinstance(evaluated.get("other_images"), str):
        row.notes.append(f"its test metrics are of other images than it was trained on ({evaluated['other_images']})")
    values, note = eval_images.read(folder, evaluated)
    row.values.update({k: v for k, v in values.items() if k in keep})
    if values and row.images is None:
        row.images = evaluated.get(eval_images.IMAGES_DIGEST)
    if note:
        row.notes.append(note)


def _own_evaluation(row: Evaluated, place: Path, folder: Path) -> dict[str, Any] | None:
    """The user's `zoo eval` of published weights (in ./zoo-outputs/NAME/), if it measured these weights on
    the whole test split: a quick look (--limit, another split) does not stand in for the published
    figures. Said in the row's notes either way."""
    own, note = eval_images.current_eval(place, weights=folder / ckpt.WEIGHTS)
    where = f"{place.relative_to(Path.cwd())}/{ckpt.EVAL}"
    shown = "the published test metrics are shown" if row.metrics else "no test metrics were published to show"
    if note:
        row.notes.append(f"{note}: {shown}")
        return None
    if own is None:
        return None
    if "limit" not in own:
        row.notes.append(f"{where} does not say whether it measured the whole test split (an older zoo wrote it): "
                         f"{shown}; run zoo eval again to compare yours")
        return None
    if own.get("split", "test") != "test" or own["limit"] is not None:
        row.notes.append(f"{where} measured {own.get('images')} {own.get('split', 'test')} images, not the whole "
                         f"test split: {shown}")
        return None
    row.notes.append(f"test metrics from {where} ({own.get('images'):,} test images)"
                     + (", the rest published" if set(row.metrics) - set(own["metrics"]) else ""))
    return own


def _current_quality(path: Path, folder: Path) -> tuple[dict[str, Any] | None, bool]:
    """The quality.json at `path` where it measured the weights in `folder` (None: none, an older zoo's without
    their digest, or of weights trained further since), and whether it is stale: of other weights."""
    try:
        quality = json.loads(path.read_text())
        if not isinstance(quality, dict) or not isinstance(quality.get("samples_vs_test"), dict):
            return None, False
        if quality.get(ckpt.WEIGHTS_DIGEST) != ckpt.weights_digest(folder / ckpt.WEIGHTS):
            return None, bool(quality.get(ckpt.WEIGHTS_DIGEST))
    except (OSError, ValueError, ZooError):  # weights that cannot be read: no figure said to be theirs
        return None, False
    return quality, False


def _read_quality(row: Evaluated, folder: Path, name: str) -> None:
    """quality.json's figures (quality_figures: the first seed's, as the catalogue quotes them), where it measured
    these weights: the user's own (in ./zoo-outputs/NAME/ for a model not theirs), else the one published with the
    weights; the feature network and the images are said, since FIDs of other networks or counts do not compare.
    A stale one (of earlier weights) is said, as a stale eval.json is."""
    place, _ = output_place(name, folder)
    for path in dict.fromkeys((place / "quality.json", folder / "quality.json")):
        quality, stale = _current_quality(path, folder)
        if stale:
            row.notes.append(f"{path.name} is stale: measured on earlier weights; run zoo eval --fid again")
        if quality is not None:
            break
    else:
        return
    if quality.get("other_images"):  # not the run's own test figures, as eval.json's of other images are not
        row.notes.append(f"{path.name} measured other images than it was trained on: its figures are not shown")
        return
    row.metrics.update(quality_figures(quality))
    row.notes.append(f"classifier_ figures from {path.name} ({quality.get('images')} images, feature network "
                     f"{quality.get('feature_network')}): they compare only with figures of the same network and count")
