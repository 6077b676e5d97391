"""What published weights say of themselves without a training log: the test metrics in their model card's
metadata (or, without a card, their catalogue entry's) and the training summary `zoo push` writes into
the card. Read by `zoo compare`; only the card's YAML front matter is read, never the weights."""

from __future__ import annotations

import math
import re
from pathlib import Path

from zoo import hub, registry
from zoo.hub.files import PUSHED_MANIFEST
from zoo.runs import checkpoint as ckpt
from zoo.runs.loading import catalogued_name


def number(v) -> bool:
    """A finite int or float (not a bool): a value a table can show."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def is_published(name: str, folder: Path) -> bool:
    """Whether `name` (resolved to `folder`) names published weights: a catalogued name or a hub location, or the
    path of a pulled copy, of bundled weights, of weights a plugin's catalogue names, or of a folder hub's entry.
    Only theirs has test metrics in a card (or a catalogue entry) that stand in for an eval.json: a run folder of
    the user's is known by its own evaluation alone (an older zoo's card records no weights, and kept the figures
    of earlier weights after a resume), even where it bears a catalogued name (./convae)."""
    if catalogued_as(name, folder) or hub.is_hub_source(name):
        return True
    return hub.is_managed(folder) or registry.shipped_by_plugin(folder) or (folder / PUSHED_MANIFEST).is_file()


def catalogued_as(name: str, folder: Path) -> str | None:
    """The catalogued weights `name` resolved to (None where it named a folder, `folder` itself, or a hub location)."""
    if hub.is_hub_source(name) or Path(name).absolute() == folder.absolute():
        return None
    named = catalogued_name(name)
    return named if named in registry.weights() else None  # not a relative path typed in another directory


def test_metrics(folder: Path, name: str) -> dict[str, float]:
    """Test metrics of published weights (is_published): their model card's, over their catalogue entry's (which
    may hold figures the card lacks: a GAN's FID, measured by `zoo eval --fid` rather than written by `zoo eval`),
    where `name` resolved to that entry rather than to a folder of that name."""
    card = _front_matter(folder / ckpt.CARD)
    found = {m[1]: float(m[2]) for m in re.finditer(r"-\s*\{type:\s*([\w.-]+),\s*value:\s*([-+\d.eE]+)\}", card)
             if _float(m[2])} if card else {}
    return {**registry.catalogued_metrics(catalogued_as(name, folder)), **found}


def _float(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _front_matter(path: Path) -> str:
    """The YAML metadata at the top of a model card ("" without one)."""
    try:
        text = path.read_text(errors="replace")[:200_000] if path.is_file() else ""
    except OSError:
        return ""
    parts = text.split("\n---\n", 1)
    return parts[0] if text.startswith("---\n") and len(parts) == 2 else ""


def card_training(path: Path) -> tuple[dict[str, float], int | None, int | None] | None:
    """A pushed run's training summary from its card's metadata (`zoo push` writes it): the best epoch's
    metrics, the best epoch and the epochs trained."""
    meta = _front_matter(path)
    block = re.search(r"^  training_metrics:\n((?:    [\w.-]+: .*\n?)+)", meta, re.MULTILINE)
    if not block:
        return None
    metrics = {k: float(v) for k, v in re.findall(r"^    ([\w.-]+): (\S+)", block[1], re.MULTILINE) if _float(v)}
    epochs = re.search(r"training: \{best_epoch: (\d+), epochs: (\d+)\}", meta)
    return metrics, int(epochs[1]) if epochs else None, int(epochs[2]) if epochs else None
