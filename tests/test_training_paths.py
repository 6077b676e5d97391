"""The three ways zoo trains a model (eager steps, the static step a CUDA graph records, which runs
unrecorded on a CPU, and many trials in one vectorised step) share one epoch logic: the same tiny model
gets the same metrics rows, best epoch and ending through each of them."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import TINY

from zoo.training.fit import fit

from zoo.training import multitrial
from zoo.api import resolve_config
from zoo.runs.run import training_data

TIMING = {"seconds", "images_per_s"}  # measured, not computed: they differ from run to run


@pytest.fixture(scope="module")
def setup():
    cls, model_cfg, train_cfg = resolve_config("convae", overrides={**TINY, "dataset": "digits", "epochs": 4})
    return cls, model_cfg, train_cfg, training_data(train_cfg, "cpu")


def _rows(result) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING} for row in result.history]


def _three_ways(setup, **train):
    cls, model_cfg, base, data = setup
    cfg = dataclasses.replace(base, **train)
    eager = fit(cls, model_cfg, cfg, data)
    recorded = fit(cls, model_cfg, dataclasses.replace(cfg, cuda_graph=True), data)
    (vectorised,) = multitrial.train_together(cls, model_cfg, [cfg], data)
    return eager, recorded, vectorised


def _assert_same(a, b) -> None:
    rows_a, rows_b = _rows(a), _rows(b)
    assert [sorted(r) for r in rows_a] == [sorted(r) for r in rows_b]
    for ra, rb in zip(rows_a, rows_b):
        assert ra == pytest.approx(rb, rel=2e-5, abs=1e-7)
    assert (a.best_epoch, a.stopped, a.epochs) == (b.best_epoch, b.stopped, b.epochs)


def test_a_cosine_schedule_run_is_the_same_through_every_path(setup):
    eager, recorded, vectorised = _three_ways(setup, lr=3e-3, lr_schedule="cosine")
    assert [r["lr"] for r in eager.history][-1] < 3e-3 * 0.2  # the schedule did turn the rate down
    _assert_same(eager, recorded)
    _assert_same(eager, vectorised)


def test_early_stopping_ends_every_path_at_the_same_epoch(setup):
    # plain SGD with a large step overshoots: the validation loss gets worse, and patience 1 stops it
    eager, recorded, vectorised = _three_ways(setup, optimizer="sgd", lr=2.0, patience=1, epochs=12)
    assert eager.stopped == "early_stopping" and eager.epochs < 12
    _assert_same(eager, recorded)
    _assert_same(eager, vectorised)
