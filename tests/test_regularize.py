"""Engine regularisers: L1 pruning (masks through training and resume, permanent in model.safetensors,
sparsity in `zoo eval`), dropout placement, iterative autoencoding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import (TINY, TINY_SET, assert_clean_error, assert_ok, assert_same_tensors, invoke, quiet,
                      read_metrics, weights)
from torch import nn
from torch.nn.utils import prune

import zoo
from zoo.training import regularize
from zoo.errors import ConfigError

PRUNE = {"prune_every": 1, "prune_encoder_linear": 0.3, "prune_encoder_conv": 0.1, "prune_decoder_linear": 0.2,
         "prune_decoder_conv": 0.05}


def train(out: Path, **kw):
    return zoo.train("convae", dataset="digits", out=out, log=quiet, progress=False, **{**TINY, **kw})


def _expected_zeros(n: int, amount: float, times: int) -> int:
    """torch's L1 pruning removes round(amount × still-unpruned) weights each time."""
    zeros = 0
    for _ in range(times):
        zeros += round(amount * (n - zeros))
    return zeros


@pytest.fixture(scope="module")
def pruned_run(tmp_path_factory) -> Path:
    """Three epochs, pruned before epochs 2 and 3."""
    out = tmp_path_factory.mktemp("pruned") / "run"
    train(out, epochs=3, **PRUNE)
    return out


# ------------------------------------------------------------------------------------------ pruning

def test_pruning_removes_the_configured_fraction_per_layer_and_group(pruned_run):
    model = zoo.load(pruned_run).model
    groups = regularize.layer_groups(model)
    assert {g: len(m) for g, m in groups.items()} == {"encoder_linear": 2, "encoder_conv": 3,
                                                      "decoder_linear": 2, "decoder_conv": 3}
    for group, modules in groups.items():
        amount = PRUNE[f"prune_{group}"]
        for m in modules:  # two prunings, each of the still-unpruned weights
            assert int((m.weight == 0).sum()) == _expected_zeros(m.weight.numel(), amount, 2), (group, m)
            assert int((m.bias == 0).sum()) == 0  # biases are not pruned
    s = regularize.sparsity(model)
    assert s["encoder_linear"]["sparsity"] == pytest.approx(1 - 0.7 ** 2, abs=1e-3)
    assert s["decoder_conv"]["sparsity"] == pytest.approx(1 - 0.95 ** 2, abs=5e-3)


def test_saved_weights_are_plain_and_permanent_checkpoint_keeps_the_masks(pruned_run):
    saved = weights(pruned_run / "model.safetensors")
    assert not [k for k in saved if k.endswith(("_orig", "_mask"))]
    assert set(saved) == set(zoo.create("convae", channels=[4, 8, 8], hidden=[16]).state_dict())
    ckpt = weights(pruned_run / "checkpoint.safetensors")
    masks = [k for k in ckpt if k.endswith("weight_mask")]
    assert len(masks) == 10 and all(f"{k[:-5]}_orig" in ckpt for k in masks)
    # The last epoch's effective weights: orig × mask, zero exactly where the mask is.
    w = ckpt["model.encoder.7.weight_orig"] * ckpt["model.encoder.7.weight_mask"]
    assert torch.equal(w == 0, ckpt["model.encoder.7.weight_mask"] == 0)


def test_masks_hold_through_training(tmp_path):
    """A weight pruned before epoch 2 is still zero after epochs 2 and 3 (the mask, not the optimizer, rules)."""
    from zoo.training.engine import Callback

    seen = {}

    class Record(Callback):
        def on_epoch_end(self, trainer, epoch, record):
            m = trainer.model.encoder[-1]
            seen[epoch] = (m.weight_orig * m.weight_mask == 0).clone() if hasattr(m, "weight_mask") else None

    train(tmp_path / "run", epochs=3, prune_every=1, prune_encoder_linear=0.4, callbacks=[Record()])
    assert seen[1] is None and seen[2] is not None
    assert bool((seen[3] | ~seen[2]).all())  # zeros after epoch 2 remain zeros after epoch 3
    assert int(seen[3].sum()) > int(seen[2].sum())


def test_resume_reapplies_the_saved_masks(tmp_path):
    straight = train(tmp_path / "straight", epochs=4, prune_every=2, prune_encoder_linear=0.5, prune_decoder_conv=0.2)
    train(tmp_path / "stopped", epochs=3, prune_every=2, prune_encoder_linear=0.5, prune_decoder_conv=0.2)
    resumed = zoo.train(resume=tmp_path / "stopped", epochs=4, log=quiet, progress=False)
    assert_same_tensors(weights(tmp_path / "straight" / "model.safetensors"),
                        weights(tmp_path / "stopped" / "model.safetensors"))
    assert_same_tensors(straight.model.state_dict(), resumed.model.state_dict())
    losses = [r["val_loss"] for r in read_metrics(tmp_path / "straight")]
    assert losses == pytest.approx([r["val_loss"] for r in read_metrics(tmp_path / "stopped")], rel=1e-6)


def test_eval_reports_sparsity_per_group(pruned_run, tmp_path):
    import shutil

    run = Path(shutil.copytree(pruned_run, tmp_path / "run"))
    out = assert_ok(invoke("eval", run))
    assert "weight sparsity" in out and "encoder linear" in out and "decoder conv" in out
    data = json.loads((run / "eval.json").read_text())
    assert set(data["sparsity"]) == {"encoder_linear", "encoder_conv", "decoder_linear", "decoder_conv"}
    assert data["sparsity"]["encoder_linear"]["sparsity"] == pytest.approx(0.51, abs=1e-3)


def test_the_layers_pruning_does_not_reach_are_counted_beside_the_pruned_groups(tmp_path):
    """A hierarchical VAE's stochastic layers lie outside `encoder` and `decoder`: eval said 99 % sparsity of
    the pruned groups while most of the model's weights were untouched."""
    zoo.train("hvae", dataset="digits", epochs=2, out=tmp_path / "h", log=quiet, progress=False, prune_every=1,
              prune_encoder_linear=0.9, prune_decoder_linear=0.9, **TINY)
    sparsity = zoo.evaluate(tmp_path / "h", save=False)["sparsity"]
    assert sparsity["encoder_linear"]["sparsity"] == pytest.approx(0.9, abs=1e-3)
    other = sparsity["other_layers"]
    assert other["weights"] > 10 * sparsity["encoder_linear"]["weights"] and other["sparsity"] < 0.01  # untouched


def test_eval_of_an_unpruned_run_has_no_sparsity(digits_run, tmp_path):
    result = zoo.evaluate(digits_run, save=False)
    assert "sparsity" not in result


def test_pruning_refuses_a_model_without_an_encoder_before_writing_anything(tmp_path):
    with pytest.raises(ConfigError, match="no `encoder` module"):
        zoo.train("gan", dataset="digits", out=tmp_path / "g", log=quiet, progress=False, device="cpu", epochs=1,
                  prune_every=1, prune_encoder_linear=0.2)
    assert not (tmp_path / "g").exists()


def test_prune_amounts_are_range_checked():
    r = invoke("train", "convae", "--dataset", "digits", *TINY_SET, "--set", "prune_encoder_conv=1.5")
    assert_clean_error(r, "prune_encoder_conv", code=2)


def test_the_mask_is_torchs_l1_unstructured_rule_also_for_channels_last_weights():
    torch.manual_seed(0)
    for layer in (nn.Linear(30, 20), nn.Conv2d(3, 8, 3)):
        ours = layer
        if isinstance(layer, nn.Conv2d):
            ours = nn.Conv2d(3, 8, 3).to(memory_format=torch.channels_last)
            ours.load_state_dict(layer.state_dict())
        theirs = nn.Linear(30, 20) if isinstance(layer, nn.Linear) else nn.Conv2d(3, 8, 3)
        theirs.load_state_dict(layer.state_dict())
        for amount in (0.3, 0.25):  # twice: the second prunes a share of what is left
            prune.custom_from_mask(ours, "weight", mask=regularize.l1_mask(ours, amount))
            prune.l1_unstructured(theirs, "weight", amount=amount)
            assert torch.equal(ours.weight_mask, theirs.weight_mask)


def test_state_dict_helpers_on_a_plain_module():
    net = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2))
    prune.l1_unstructured(net[0], "weight", amount=0.4)
    sd = regularize.plain_state_dict(net)
    assert set(sd) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert int((sd["0.weight"] == 0).sum()) == 12
    assert regularize.make_permanent(net) == 1
    assert set(net.state_dict()) == set(sd) and torch.equal(net[0].weight, sd["0.weight"])


# ------------------------------------------------------------------------------------------ dropout

def _dropouts(module: nn.Module) -> list[float]:
    return [m.p for m in module.modules() if isinstance(m, nn.Dropout)]


def test_dropout_before_each_hidden_linear_layer_encoder_only_or_both():
    enc_only = zoo.create("convae", hidden=[32, 16], dropout=0.3)
    assert _dropouts(enc_only.encoder) == [0.3, 0.3] and _dropouts(enc_only.decoder) == []
    both = zoo.create("convae", hidden=[32, 16], dropout=0.3, dropout_decoder=True)
    assert _dropouts(both.decoder) == [0.3, 0.3]
    assert _dropouts(zoo.create("convae", hidden=[32, 16]).encoder) == []


# ------------------------------------------------------------------------------------------ iterative AE

def test_iterative_autoencoding_adds_weighted_later_passes_to_the_training_loss(tmp_path):
    train(tmp_path / "it", epochs=1, iterative_passes=3, iterative_weights=[1.0, 0.5, 0.25])
    (r,) = read_metrics(tmp_path / "it")
    assert {"train_pass1_loss", "train_pass2_loss", "train_pass3_loss"} <= set(r)
    combined = r["train_pass1_loss"] + 0.5 * r["train_pass2_loss"] + 0.25 * r["train_pass3_loss"]
    assert r["train_loss"] == pytest.approx(combined, rel=1e-5)
    assert not [k for k in r if k.startswith("val_pass")]  # validation is the plain loss
    plain = train(tmp_path / "plain", epochs=1)
    assert r["val_loss"] != plain.history[0]["val_loss"]  # the extra passes changed what was learnt
    assert zoo.load(tmp_path / "it").reconstruct(torch.rand(2, 1, 28, 28)).shape == (2, 1, 28, 28)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_a_vaes_later_passes_weigh_in_the_nats_of_its_loss(tmp_path, likelihood):
    """A VAE's loss is nats summed over an image (~100s); the later passes added a per-pixel mean (~0.3) and
    changed nothing: the validation losses matched the plain run's to every digit."""
    zoo.train("vae", dataset="digits", epochs=1, log=quiet, progress=False, likelihood=likelihood,
              out=tmp_path / "it", iterative_passes=2, **TINY)
    (r,) = read_metrics(tmp_path / "it")
    assert r["train_pass2_loss"] > 0.2 * r["train_pass1_loss"]  # an image's error, as the loss counts it
    assert r["train_loss"] == pytest.approx(r["train_pass1_loss"] + r["train_pass2_loss"], rel=1e-5)


def test_iterative_weights_must_match_the_passes():
    r = invoke("train", "convae", "--dataset", "digits", *TINY_SET, "--set", "iterative_passes=3",
               "--set", "iterative_weights=1,2")
    assert_clean_error(r, "iterative_weights has 2 values for 3 passes")


def test_iterative_needs_a_model_that_reconstructs(tmp_path):
    with pytest.raises(ConfigError, match="cannot reconstruct"):
        zoo.train("gan", dataset="digits", out=tmp_path / "g", log=quiet, progress=False, device="cpu", epochs=1,
                  iterative_passes=2)
