"""What published weights say of themselves without a training log: the test metrics in their model card's
metadata (or, without a card, their catalogue entry's) and the training summary `zoo push` writes into
the card. Read by `zoo compare`; only the card's YAML front matter is read, never the weights."""

from __future__ import annotations

import math
import re
from pathlib import Path

from zoo import registry
from zoo.runs import checkpoint as ckpt
from zoo.runs.loading import catalogued_name


def number(v) -> bool:
    """A finite int or float (not a bool): a value a table can show."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def test_metrics(folder: Path, name: str) -> dict[str, float]:
    """Test metrics of published weights: their model card's, over their catalogue entry's (which may hold
    figures the card lacks: a GAN's FID, measured by `zoo eval --fid` rather than written by `zoo eval`)."""
    card = _front_matter(folder / ckpt.CARD)
    found = {m[1]: float(m[2]) for m in re.finditer(r"-\s*\{type:\s*([\w.-]+),\s*value:\s*([-+\d.eE]+)\}", card)
             if _float(m[2])} if card else {}
    return {**registry.catalogued_metrics(catalogued_name(name) if "/" not in name else None), **found}


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
