"""Same-shape trials trained together in one vmapped step: each exactly as it would train alone."""

from __future__ import annotations

import csv
import dataclasses

import pytest
from conftest import TINY, assert_ok, invoke

from zoo import cv, multitrial
from zoo.api import _load_data, resolve_config
from zoo.errors import ConfigError


@pytest.fixture(scope="module")
def setup():
    cls, model_cfg, train_cfg = resolve_config("convae", overrides={**TINY, "dataset": "digits", "epochs": 2})
    return cls, model_cfg, train_cfg, _load_data(train_cfg, "cpu")


def _curves(r):
    return [h[k] for h in r.history for k in ("train_loss", "val_loss", "val_mse")]


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_each_trial_trains_as_it_would_alone(setup, optimizer):
    cls, model_cfg, base, data = setup
    trials = [dataclasses.replace(base, optimizer=optimizer, lr=lr, weight_decay=wd, seed=seed)
              for lr, wd, seed in [(1e-3, 0.0, 0), (3e-3, 1e-4, 1), (5e-4, 1e-3, 2)]]
    together = multitrial.train_together(cls, model_cfg, trials, data)
    for t, r in zip(trials, together):
        alone = cv.fit(cls, model_cfg, t, data)
        assert _curves(r) == pytest.approx(_curves(alone), rel=1e-5)
        assert r.best_epoch == alone.best_epoch and r.value == pytest.approx(alone.value, rel=1e-5)


def test_a_stopped_trial_leaves_the_others_untouched(setup):
    cls, model_cfg, base, data = setup
    trials = [dataclasses.replace(base, lr=lr, seed=s) for lr, s in [(1e-3, 0), (2e-3, 1), (4e-3, 2)]]
    calls = []

    def report(k, epoch, record):
        calls.append((k, epoch))
        return k != 1  # a pruner stops trial 1 after its first epoch

    together = multitrial.train_together(cls, model_cfg, trials, data, report=report)
    assert [r.epochs for r in together] == [2, 1, 2] and together[1].stopped == "pruned"
    assert calls == [(0, 1), (1, 1), (2, 1), (0, 2), (2, 2)]
    alone = cv.fit(cls, model_cfg, trials[2], data)
    assert _curves(together[2]) == pytest.approx(_curves(alone), rel=1e-5)


def test_what_cannot_be_stacked_is_refused(setup):
    cls, model_cfg, base, data = setup
    with pytest.raises(ConfigError, match="batch_size"):
        multitrial.train_together(cls, model_cfg, [base, dataclasses.replace(base, batch_size=64)], data)
    with pytest.raises(ConfigError, match="pruning"):
        multitrial.train_together(cls, model_cfg, [dataclasses.replace(base, prune_every=1)] * 2, data)
    bn_cls, bn_cfg, _ = resolve_config("convae", overrides={**TINY, "batch_norm": True})
    with pytest.raises(ConfigError, match="buffers"):
        multitrial.train_together(bn_cls, bn_cfg, [base, base], data)
    vae_cls, vae_cfg, _ = resolve_config("vae", overrides=TINY)
    with pytest.raises(ConfigError, match="own training step"):
        multitrial.train_together(vae_cls, vae_cfg, [base, base], data)


def test_search_vectorises_same_shape_trials(tmp_path, setup):
    cls, model_cfg, base, data = setup
    space = tmp_path / "s.toml"
    space.write_text('[search]\nsampler = "random"\npruner = "none"\nseed = 0\n[fixed]\ndataset = "digits"\n'
                     'channels = [4, 8, 8]\nhidden = [16]\ndevice = "cpu"\nepochs = 2\n[params]\n'
                     'lr = { low = 1e-4, high = 1e-2, log = true }\nseed = { low = 0, high = 99 }\n'
                     'latent_dim = { choices = [3, 4] }\n')
    out = assert_ok(invoke("search", "convae", "--space", space, "--out", tmp_path / "v", "--trials", "6",
                           "--vectorize", "6"))
    assert "trials vectorised" in out
    with open(tmp_path / "v" / "trials.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and all(r["state"] == "complete" for r in rows)
    for r in rows[:2]:  # the same loss as the trial trained alone
        mc = dataclasses.replace(model_cfg, latent_dim=int(r["latent_dim"]))
        alone = cv.fit(cls, mc, dataclasses.replace(base, lr=float(r["lr"]), seed=int(r["seed"])), data)
        assert float(r["loss"]) == pytest.approx(alone.value, rel=1e-5)
