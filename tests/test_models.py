"""Building models by name: shapes, presets, and configurations that cannot be built."""

from __future__ import annotations

import sys

import pytest
import torch
from conftest import REPO, assert_ok, invoke
from torch import nn

import zoo
from zoo.errors import ConfigError, UnknownModelError
from zoo.runs.config import resolve_config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PRESETS = tomllib.loads((REPO / "registry.toml").read_text())["presets"]


def test_create_with_a_latent_size():
    model = zoo.create("convae", latent_dim=6)
    x = torch.rand(2, 1, 28, 28)
    assert model.encode(x).shape == (2, 6)
    assert model.decode(torch.zeros(2, 6)).shape == (2, 1, 28, 28)
    with torch.no_grad():
        out = model.reconstruct(x)
    assert out.shape == x.shape
    assert float(out.min()) >= 0 and float(out.max()) <= 1  # sigmoid output


def test_create_for_32x32_rgb():
    model = zoo.create("convae", shape=(3, 32, 32), latent_dim=8)
    x = torch.rand(4, 3, 32, 32)
    assert model.encode(x).shape == (4, 8)
    assert model.reconstruct(x).shape == x.shape


@pytest.mark.parametrize("shape", [(1, 20, 36), (3, 64, 64), (1, 9, 9)])
def test_the_mirrored_decoder_lands_on_any_input_size(shape):
    model = zoo.create("convae", shape=shape)
    assert model.reconstruct(torch.rand(2, *shape)).shape == (2, *shape)


def test_loss_is_a_scalar_that_trains():
    model = zoo.create("convae", latent_dim=3)
    batch = zoo.Batch(torch.rand(8, 1, 28, 28), torch.zeros(8, dtype=torch.long))
    loss = model.loss(batch)["loss"]
    assert loss.shape == () and loss.requires_grad
    loss.backward()
    assert model.encoder[0].weight.grad is not None


def test_model_info_lists_the_presets_of_registry_toml():
    assert set(zoo.model_info("convae")["presets"]) == {n for n, p in PRESETS.items() if p["model"] == "convae"}
    assert {"convae-lab", "convae-fashion-report", "convae-latent2-report"} <= set(PRESETS)


def test_model_info_lists_the_catalogued_weights_of_the_model():
    """`zoo info iwae` named none of iwae-mnist, iwae50-mnist, piwae-mnist: found only by `zoo list --pretrained`."""
    from conftest import invoke

    assert set(zoo.model_info("iwae")["weights"]) == {"iwae-mnist", "iwae50-mnist", "piwae-mnist"}
    out = invoke("info", "iwae").output
    assert "\npretrained weights (zoo info NAME" in out and "\n  piwae-mnist: IWAE on dynamically binarised" in out

def test_model_info_lists_other_models_presets_that_fit_and_training_takes_them():
    fits = zoo.model_info("iwae")["presets_that_fit"]
    assert "vae-mnist" in fits and fits["vae-mnist"]["model"] == "vae" and not zoo.model_info("iwae")["presets"]
    assert not set(zoo.model_info("convae")["presets_that_fit"])  # a VAE's or GAN's keys are no ConvAE's
    assert "needs" not in fits["vae-mnist"]  # the IWAE takes it as it is; the VampPrior VAE refuses batch norm:
    assert "batch_norm=false" in zoo.model_info("vampprior")["presets_that_fit"]["vae-mnist"]["needs"]
    _, config, train = resolve_config("iwae", preset="vae-mnist")
    assert config.latent_dim == PRESETS["vae-mnist"]["config"]["latent_dim"] and train.epochs == 30
    out = assert_ok(invoke("info", "iwae"))
    assert "vae-mnist (vae's; its keys fit iwae)" in out and "none" not in out.split("presets (--preset NAME):")[1]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_for_mnist(name):
    preset = PRESETS[name]
    model = zoo.create(preset["model"], **preset["config"])
    x = torch.rand(2, 1, 28, 28)
    if model.can("reconstruct"):
        assert model.reconstruct(x).shape == x.shape
    for key, value in preset["config"].items():
        if hasattr(model.config, key):
            assert getattr(model.config, key) == value, key


def test_fashion_report_preset_has_its_asymmetric_decoder():
    model = zoo.create("convae", **PRESETS["convae-fashion-report"]["config"])
    deconvs = [m for m in model.decoder.modules() if isinstance(m, nn.ConvTranspose2d)]
    convs = [m for m in model.encoder.modules() if isinstance(m, nn.Conv2d)]
    assert [m.kernel_size[0] for m in deconvs] == [3, 3, 5]
    assert [m.stride[0] for m in deconvs] == [1, 2, 2]
    assert [m.out_channels for m in deconvs] == [20, 10, 1]
    assert [m.out_channels for m in convs] == [10, 20, 30]
    assert model.encode(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert model.reconstruct(torch.rand(2, 1, 28, 28)).shape == (2, 1, 28, 28)


def test_collapsing_conv_stack_is_a_config_error():
    with pytest.raises(ConfigError) as e:
        zoo.create("convae", channels=[8] * 6, stride=[2], padding=[0])
    assert "reduces" in str(e.value) and "to nothing" in str(e.value)
    assert "conv layer 5" in str(e.value)  # 28 → 14 → 7 → 3 → 1: every layer reads its last rows
    assert "fewer conv layers" in e.value.hint


def test_too_small_image_for_the_default_stack_is_a_config_error():
    with pytest.raises(ConfigError, match="to nothing"):
        zoo.create("convae", shape=(1, 4, 4), padding=[0])


@pytest.mark.parametrize("config, words", [
    ({"channels": []}, ["at least one conv layer"]),
    ({"kernel": [3, 3]}, ["kernel=[3, 3] has 2 values, and channels gives 3 conv layers", "--set kernel=3) or to 3"]),
    ({"padding": [1, 1]}, ["padding=[1, 1] has 2 values, and channels gives 3 conv layers"]),
    ({"decoder_kernel": [3, 3], "decoder_stride": [2, 2, 2]},  # it named channels, which has 3 layers
     ["decoder_stride=[2, 2, 2] has 3 values, and decoder_kernel gives 2 transposed conv layers"]),
    ({"decoder_kernel": [3, 3, 5], "decoder_channels": [8]}, ["decoder_channels needs 2 values"]),
    ({"decoder_kernel": [3], "decoder_stride": [1]}, ["decoder layer 1", "cannot reach 28×28"]),
    ({"loss": "bce", "sigmoid_output": False}, ["loss 'bce' needs sigmoid_output"]),
])
def test_inconsistent_architecture_is_a_config_error(config, words):
    with pytest.raises(ConfigError) as e:
        zoo.create("convae", **config)
    for w in words:
        assert w in str(e.value)


def test_unknown_model_name():
    with pytest.raises(UnknownModelError, match="unknown model 'autoencoder'"):
        zoo.create("autoencoder")


def test_batch_norm_and_activation_are_built():
    model = zoo.create("convae", batch_norm=True, activation="gelu")
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert any(isinstance(m, nn.GELU) for m in model.modules())
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())
    model.eval()
    assert model.reconstruct(torch.rand(1, 1, 28, 28)).shape == (1, 1, 28, 28)
