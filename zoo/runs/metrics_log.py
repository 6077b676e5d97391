"""metrics.jsonl, a run's training log: one strict-JSON row per epoch, read back row by row (a line cut short
by a kill, or edited into something zoo does not write, is dropped and counted, never fatal)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from zoo.runs.files import open_regular

NOT_METRICS = ("epoch", "best", "lr", "images_per_s", "seconds", "diverged")


def is_metric(key: str) -> bool:
    """A column of metrics.jsonl that measures the model, not the training's bookkeeping (its epoch, time, or
    learning rates: lr, and a GAN's lr_d and lr_g)."""
    return key not in NOT_METRICS and not key.startswith("lr_")


def metrics_line(record: dict[str, Any]) -> str:
    """One metrics.jsonl line, strict JSON: a value that is not finite (a diverged epoch's loss) is
    written as null, since NaN and Infinity are not JSON and other readers refuse them."""
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
    return json.dumps(clean, allow_nan=False) + "\n"


def _metrics_row(line: str) -> dict[str, Any] | None:
    """A metrics.jsonl row, or None when the line is not one zoo writes: cut short by a kill, edited by
    hand, or holding values that are not numbers (NaN, Infinity or 1e999 written into a finite column). A
    column of text, a list or a table (a newer zoo's) is left out of the row, not taken for damage."""
    try:
        row = json.loads(line, parse_constant=lambda name: None)
    except ValueError:
        return None
    if not isinstance(row, dict) or type(row.get("epoch")) is not int or row["epoch"] < 1:
        return None
    if row.get("diverged") is True:
        return row  # the record of a divergence: its reason, the names and nulls of what was not finite
    row = {k: v for k, v in row.items() if not isinstance(v, (str, list, dict))}
    for value in row.values():
        if not isinstance(value, (bool, int, float)) or not math.isfinite(value):
            return None
    return row


def best_row(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The row of metrics.jsonl a run's result is read from: the last one marked best (its weights are
    model.safetensors), else the last row (nothing monitored); None for no rows. A diverged epoch's row
    (its losses not numbers, its weights not kept) is never the result."""
    kept = [r for r in rows if not r.get("diverged")]
    best = [r for r in kept if r.get("best")]
    return best[-1] if best else (kept[-1] if kept else None)


def read_metrics(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The rows of a metrics.jsonl in epoch order, and how many lines were dropped as not a row (see
    _metrics_row) or as out of order (an epoch not after the one before)."""
    rows, _, dropped = metrics_rows(path)
    return rows, dropped


def metrics_rows(path: Path) -> tuple[list[dict[str, Any]], list[str], int]:
    """read_metrics's rows and dropped count, with each row's line as written (a resume writes those back: the
    columns a newer zoo wrote stay in the log)."""
    rows, lines, dropped = [], [], 0
    with open_regular(Path(path)) as fh:
        text = fh.read().decode(errors="replace")
    for line in text.splitlines():
        if not line.strip():
            continue
        row = _metrics_row(line)
        if row is None or (rows and row["epoch"] <= rows[-1]["epoch"]):
            dropped += 1
        else:
            rows.append(row)
            lines.append(line.strip())
    return rows, lines, dropped
