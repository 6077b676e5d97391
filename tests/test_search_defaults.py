"""`zoo search`'s default pruner fits the search's size: a small search prunes nothing, a larger one
still prunes (Optuna's median pruner, after enough complete trials and epochs), and an explicit
--pruner is honoured. No pruner stops a trial at its last epoch."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import SEARCH_FIXED, assert_ok, invoke

optuna = pytest.importorskip("optuna")

# lr from 1e-5 (hardly learns in a few epochs) to 3e-2: the trials differ, so a pruner has something to prune.
SPACE = """[search]
strategy = "random"
seed = 0
""" + SEARCH_FIXED + """epochs = {epochs}

[params]
lr = {{ low = 1e-5, high = 3e-2, log = true }}
"""


def search(tmp_path: Path, trials: int, epochs: int, *options: str) -> tuple[str, list[dict], dict]:
    """Run a search on digits; (its output, trials.csv's rows, summary.json)."""
    space = tmp_path / "space.toml"
    space.write_text(SPACE.format(epochs=epochs))
    out = assert_ok(invoke("search", "convae", "--space", space, "--study", "s", "--out", tmp_path / "s",
                           "--trials", str(trials), *options))
    with open(tmp_path / "s" / "trials.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return out, rows, json.loads((tmp_path / "s" / "summary.json").read_text())


def test_a_small_search_prunes_nothing_by_default(tmp_path):
    out, rows, summary = search(tmp_path, 4, 2)
    assert "no pruning (auto: 4 trials of 2 epochs is too small a search to prune" in out
    assert [r["state"] for r in rows] == ["complete"] * 4
    assert summary["pruner"] == "auto" and summary["pruning"].startswith("no pruning")


def test_the_explicit_pruner_option_still_prunes_the_small_search(tmp_path):
    out, rows, _ = search(tmp_path, 4, 2, "--pruner", "hyperband")
    assert "hyperband pruner" in out
    pruned = [r for r in rows if r["state"] == "pruned"]
    assert pruned  # Hyperband prunes from the first epoch: the 3 of 4 trials
    assert all(r["note"] == "pruned by the hyperband pruner after epoch 1" for r in pruned)


def test_a_larger_search_still_prunes_by_default(tmp_path):
    # 6 trials of 3 epochs: the median pruner may stop trial 5 after its 2nd epoch, once 5 trials are complete
    out, rows, summary = search(tmp_path, 6, 3)
    assert "median pruner (auto: after 5 complete trials, from epoch 2)" in out
    assert [r["state"] for r in rows[:5]] == ["complete"] * 5  # nothing pruned before 5 trials are complete
    assert rows[5]["state"] == "pruned" and rows[5]["note"] == "pruned by the median pruner after epoch 2"
    assert summary["pruned_reasons"] == {"pruner": 1}


def test_no_pruner_stops_a_trial_at_its_last_epoch(tmp_path):
    # Optuna's median pruner (--pruner median) would stop trial 5, worse than the median, at its one epoch:
    # it has trained to the end by then, so it is kept with its score
    out, rows, _ = search(tmp_path, 6, 1, "--pruner", "median")
    assert [r["state"] for r in rows] == ["complete"] * 6, out
    earlier = sorted(float(r["value"]) for r in rows[:5])
    assert float(rows[5]["value"]) > earlier[2]  # worse than the median of the five before it


def test_search_help_names_the_default_pruner():
    out = assert_ok(invoke("search", "--help"))
    assert "[auto|median|hyperband|none]" in out
    assert "else auto: no pruning for a search of at most 5 trials" in " ".join(out.split())
