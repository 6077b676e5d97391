"""Same-shape trials trained together in one vmapped step: each exactly as it would train alone."""

from __future__ import annotations

import csv
import dataclasses

import pytest
from conftest import TINY, assert_ok, invoke

from zoo.training.fit import fit

from zoo.training import multitrial
from zoo.api import resolve_config
from zoo.errors import ConfigError
from zoo.runs.run import training_data


@pytest.fixture(scope="module")
def setup():
    cls, model_cfg, train_cfg = resolve_config("convae", overrides={**TINY, "dataset": "digits", "epochs": 2})
    return cls, model_cfg, train_cfg, training_data(train_cfg, "cpu")


def _curves(r):
    return [h[k] for h in r.history for k in ("train_loss", "val_loss", "val_mse")]


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_each_trial_trains_as_it_would_alone(setup, optimizer):
    cls, model_cfg, base, data = setup
    trials = [dataclasses.replace(base, optimizer=optimizer, lr=lr, weight_decay=wd, seed=seed)
              for lr, wd, seed in [(1e-3, 0.0, 0), (3e-3, 1e-4, 1), (5e-4, 1e-3, 2)]]
    together = multitrial.train_together(cls, model_cfg, trials, data)
    for t, r in zip(trials, together):
        alone = fit(cls, model_cfg, t, data)
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
    alone = fit(cls, model_cfg, trials[2], data)
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
    gan_cls, gan_cfg, _ = resolve_config("gan", overrides={"dataset": "digits"})
    with pytest.raises(ConfigError, match="own training step"):
        multitrial.train_together(gan_cls, gan_cfg, [base, base], data)
    with pytest.raises(ConfigError, match=r"held in tensors \(none here\); these differ: latent_dim"):
        multitrial.train_together(cls, [model_cfg, dataclasses.replace(model_cfg, latent_dim=3)], [base, base], data)
    with pytest.raises(ConfigError, match="same names and shapes"):
        multitrial.train_together(cls, [model_cfg, dataclasses.replace(model_cfg, dropout=0.2)], [base, base], data)
    dae_cls, dae_cfg, _ = resolve_config("dae", overrides={**TINY, "noise": "occlusion:4:1"})
    with pytest.raises(ConfigError, match="these differ: noise"):  # occlusion keeps its sizes in Python
        multitrial.train_together(dae_cls, [dae_cfg, dataclasses.replace(dae_cfg, noise="occlusion:6:1")],
                                  [base, base], data)


def _lr_seed_latent_search(tmp_path, setup, latents, seed, *options):
    """A 6-trial random search over lr, seed and latent size; returns its output and its rows, after
    checking every trial's loss against the same trial trained alone."""
    cls, model_cfg, base, data = setup
    space = tmp_path / "s.toml"
    space.write_text(f'[search]\nstrategy = "random"\npruner = "none"\nseed = {seed}\n[fixed]\ndataset = "digits"\n'
                     'channels = [4, 8, 8]\nhidden = [16]\ndevice = "cpu"\nepochs = 2\n[params]\n'
                     'lr = { low = 1e-4, high = 1e-2, log = true }\nseed = { low = 0, high = 99 }\n'
                     f'latent_dim = {{ choices = {latents} }}\n')
    out = assert_ok(invoke("search", "convae", "--space", space, "--out", tmp_path / "v", "--trials", "6",
                           "--vectorize", "6", *options))
    with open(tmp_path / "v" / "trials.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and all(r["state"] == "complete" for r in rows)
    for r in rows:  # the same loss as the trial trained alone
        mc = dataclasses.replace(model_cfg, latent_dim=int(r["latent_dim"]))
        alone = fit(cls, mc, dataclasses.replace(base, lr=float(r["lr"]), seed=int(r["seed"])), data)
        assert float(r["val_loss_best"]) == pytest.approx(alone.value, rel=1e-5)
    return out, rows


def test_search_vectorises_same_shape_trials(tmp_path, setup):
    out, _ = _lr_seed_latent_search(tmp_path, setup, [3, 4], 0)
    assert "trials vectorised" in out


# ------------------------------------------------------------------ model hyperparameters held in tensors

def _vectorised_against_alone(arch, key, values, lr=3e-3):
    cls, model_cfg, train_cfg = resolve_config(arch, overrides={
        "device": "cpu", "dataset": "digits", "hidden": [32, 16], "epochs": 4, "lr": lr, "batch_size": 32})
    data = training_data(train_cfg, "cpu")
    cfgs = [dataclasses.replace(model_cfg, **{key: v}) for v in values]
    together = multitrial.train_together(cls, cfgs, [train_cfg] * len(cfgs), data)
    alone = [fit(cls, m, train_cfg, data) for m in cfgs]
    return [r.history[-1] for r in together], [a.history[-1] for a in alone]


def test_denoisers_differing_in_noise_level_train_together():
    # lr 1e-3: at 3e-3 this net's training amplifies float32 rounding (a batched matmul sums in another order
    # than one model's) to 1e-4..1e-3 within 4 epochs on an AVX2 CPU, for a plain ConvAE just as much
    together, alone = _vectorised_against_alone("dae", "noise", ["gaussian:0", "gaussian:0.3", "gaussian:0.6"],
                                                 lr=1e-3)
    for k in ("train_loss", "val_loss", "val_mse"):  # σ 0: no randomness, so exactly as alone
        assert together[0][k] == pytest.approx(alone[0][k], rel=1e-5)
    for t, a in zip(together, alone):  # the others draw other noise than alone: close, not equal
        assert t["val_loss"] == pytest.approx(a["val_loss"], rel=0.02)
    assert together[0]["val_loss"] < together[1]["val_loss"] < together[2]["val_loss"]  # each its own level


def test_denoisers_with_different_noise_kinds_are_not_stacked():
    """The noise kind stays in Python; only its level is a tensor, named after the kind, so a gaussian and a
    salt-and-pepper denoiser never share a step (and a search puts them in separate groups)."""
    cls, model_cfg, train_cfg = resolve_config("dae", overrides={"dataset": "digits", "hidden": [16]})
    cfgs = [dataclasses.replace(model_cfg, noise=n) for n in ("gaussian:0.3", "salt-pepper:0.3")]
    assert multitrial.vectorizable_keys(cls, cfgs[0]) == ["noise"]
    with pytest.raises(ConfigError, match="same names and shapes"):
        multitrial.check_stackable(cls, cfgs, [train_cfg] * 2, (1, 28, 28))
    keys = {multitrial.group_key(cls, c, train_cfg, (1, 28, 28)) for c in [*cfgs, dataclasses.replace(
        model_cfg, noise="gaussian:0.5")]}
    assert len(keys) == 2


def test_autoencoders_differing_in_dropout_train_together():
    together, alone = _vectorised_against_alone("convae", "dropout", [0.05, 0.3, 0.6])
    for t, a in zip(together, alone):
        assert t["val_loss"] == pytest.approx(a["val_loss"], rel=0.02)
    assert together[0]["train_loss"] < together[1]["train_loss"] < together[2]["train_loss"]


def test_vaes_differing_in_beta_train_together():
    together, alone = _vectorised_against_alone("vae", "beta", [0.0, 1.0, 4.0])
    for t, a in zip(together, alone):
        assert t["val_rec"] == pytest.approx(a["val_rec"], rel=0.02)
    assert together[0]["val_kl"] > 10 * together[1]["val_kl"] > together[2]["val_kl"]  # β = 0 leaves the KL free
    assert together[2]["val_loss"] == pytest.approx(together[2]["val_rec"] + 4 * together[2]["val_kl"], rel=1e-4)


def test_conditional_vaes_train_together_as_alone():
    """The class's one-hot code was written in place, which vmap refuses: a cvae search with --vectorize ended in a
    120-line RuntimeError."""
    cls, model_cfg, train_cfg = resolve_config("cvae", overrides={**TINY, "dataset": "digits", "epochs": 1})
    data = training_data(train_cfg, "cpu")
    trials = [dataclasses.replace(train_cfg, lr=lr) for lr in (1e-3, 3e-3)]
    together = multitrial.train_together(cls, model_cfg, trials, data)
    for t, r in zip(trials, together):
        assert r.history[-1]["val_loss"] == pytest.approx(fit(cls, model_cfg, t, data).history[-1]["val_loss"],
                                                          rel=1e-4)

def test_vaes_with_a_kl_warm_up_train_together_as_alone():
    """The warm-up weight is one tensor on the module the trials share, which before_step raises for all."""
    cls, model_cfg, train_cfg = resolve_config("vae", overrides={
        "device": "cpu", "dataset": "digits", "hidden": [32, 16], "epochs": 4, "lr": 1e-3, "batch_size": 32,
        "kl_warmup": 2})
    data = training_data(train_cfg, "cpu")
    betas = (1.0, 2.0)
    cfgs = [dataclasses.replace(model_cfg, beta=b) for b in betas]
    together = multitrial.train_together(cls, cfgs, [train_cfg] * len(cfgs), data)
    alone = [fit(cls, m, train_cfg, data) for m in cfgs]
    for t, a, beta in zip(together, alone, betas):
        first, last = t.history[0], t.history[-1]
        assert first["train_loss"] < first["train_rec"] + beta * first["train_kl"] - 1  # warming: KL weighed < β
        assert last["train_loss"] == pytest.approx(last["train_rec"] + beta * last["train_kl"], rel=1e-4)  # warm
        assert last["val_loss"] == pytest.approx(a.history[-1]["val_loss"], rel=0.02)


def test_search_groups_trials_by_what_can_share_a_step(tmp_path):
    space = tmp_path / "s.toml"
    space.write_text('[search]\nstrategy = "random"\npruner = "none"\nseed = 1\n[objective]\nmetric = "clean_mse"\n'
                     '[fixed]\ndataset = "digits"\n'
                     'channels = [4, 8, 8]\nhidden = [16, 16]\ndevice = "cpu"\nepochs = 2\n[params]\n'
                     'dropout = { low = 0.1, high = 0.5 }\n'
                     'noise = { choices = ["gaussian:0.1", "gaussian:0.4", "salt-pepper:0.2"] }\n')
    out = assert_ok(invoke("search", "dae", "--space", space, "--out", tmp_path / "v", "--trials", "8",
                           "--vectorize", "8"))
    with open(tmp_path / "v" / "trials.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8 and all(r["state"] == "complete" for r in rows)
    gaussian = sum(r["noise"].startswith("gaussian") for r in rows)
    assert 2 <= gaussian <= 6  # two groups: the gaussian levels together, the salt-pepper ones together
    assert out.count(f"{gaussian} trials vectorised") >= gaussian
    assert out.count(f"{8 - gaussian} trials vectorised") >= 8 - gaussian


def test_search_trains_groups_of_different_shapes_concurrently(tmp_path, setup):
    """--concurrent: each shape group in its own thread (its own CUDA stream on a GPU); every trial still
    ends exactly as it would trained alone (models are built under a lock, from their own seeds)."""
    out, rows = _lr_seed_latent_search(tmp_path, setup, [2, 3, 4], 2, "--concurrent")
    groups = len({r["latent_dim"] for r in rows})
    assert groups >= 2 and f"{groups} groups of different shapes" in out and "train concurrently" in out
