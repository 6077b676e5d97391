"""The conv nets' `weight_init` option: PyTorch's default, or He's initialisation (plugins/conv.py)."""

import math

import pytest
import torch
from torch import nn

import zoo
from zoo.errors import ConfigError

from conftest import TINY

CONFIG = {"channels": [16, 32, 64], "hidden": [256], "latent_dim": 32, "device": "cpu"}


def _layers(net: nn.Module):
    return [m for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]


def _fan_in(layer) -> int:
    """As torch counts it: weight[0]'s size (a transposed conv's output channels × kernel)."""
    return layer.weight[0].numel()


@torch.no_grad()
def test_he_gives_kaiming_weights_to_activated_layers_unit_gain_to_heads_and_zero_biases():
    torch.manual_seed(0)
    model = zoo.create("vae", weight_init="he", **CONFIG)
    hidden = model.encoder[-3]  # Linear(flat, 256), then the ReLU
    head = model.encoder[-1]    # Linear(256, 2·latent): μ and log σ², no activation after it
    assert isinstance(hidden, nn.Linear) and isinstance(model.encoder[-2], nn.ReLU) and isinstance(head, nn.Linear)
    assert hidden.weight.std().item() == pytest.approx(math.sqrt(2 / _fan_in(hidden)), rel=0.05)
    assert head.weight.std().item() == pytest.approx(math.sqrt(1 / _fan_in(head)), rel=0.05)
    assert all(float(layer.bias.abs().max()) == 0.0 for layer in _layers(model))


@torch.no_grad()
def test_torch_leaves_pytorchs_default_uniform_weights():
    torch.manual_seed(0)
    model = zoo.create("vae", **CONFIG)
    assert model.config.weight_init == "torch"
    for layer in _layers(model):
        bound = 1 / math.sqrt(_fan_in(layer))
        assert float(layer.weight.abs().max()) <= bound + 1e-6  # kaiming_uniform(a=√5): U(±1/√fan_in)
        assert float(layer.bias.abs().max()) > 0.0


def test_he_keeps_the_signal_through_the_hierarchical_vaes_encoder_where_the_default_lets_it_fade():
    x = torch.bernoulli(torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 0.3)
    spread = {}
    for init in ("torch", "he"):
        torch.manual_seed(0)
        model = zoo.create("hvae", weight_init=init, **CONFIG).eval()
        with torch.no_grad():
            spread[init] = model.features(x).std().item()
    assert spread["he"] > 5 * spread["torch"]


def test_the_models_without_batch_norm_default_to_he_and_the_others_to_torch():
    """hvae and vampprior run without batch norm (the pseudo-inputs forbid it), where PyTorch's default shrinks
    the signal: docs/model-zoo.md measured both better under he."""
    defaults = {name: zoo.create(name, **CONFIG).config.weight_init for name in ("hvae", "vampprior", "vae")}
    assert defaults == {"hvae": "he", "vampprior": "he", "vae": "torch"}


@torch.no_grad()
def test_the_hierarchical_vaes_lower_layers_start_as_the_standard_normal():
    torch.manual_seed(0)
    model = zoo.create("hvae", layers=3, **CONFIG).eval()
    x = torch.bernoulli(torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(2)))
    _, kls = model.layer_terms(x)
    assert float(kls[0].abs().max()) > 0.0  # the top layer's KL against its prior
    assert all(float(k.abs().max()) == 0.0 for k in kls[1:])  # q(z_l | x, z_l+1) = p(z_l | z_l+1) = N(0, I)


def test_an_unknown_init_is_refused():
    with pytest.raises(ConfigError, match="weight_init"):
        zoo.create("convae", weight_init="xavier", **TINY)
