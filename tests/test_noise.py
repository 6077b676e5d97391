"""Noise models: parsing, ranges, what each corruption does, and that they are pluggable."""

import pytest
import torch

from zoo.errors import ConfigError
from zoo.data.noise import noise_models, parse_noise


def test_builtin_noise_models_are_registered_through_the_plugin_hook():
    assert {"gaussian", "salt-pepper", "occlusion"} <= set(noise_models())


def test_parse_specs_and_none():
    assert parse_noise("gaussian:0.3").values == {"sigma": 0.3}
    assert parse_noise("occlusion:6:2").values == {"size": 6, "count": 2}
    assert parse_noise("salt-pepper").values == {"fraction": 0.1}  # defaults
    assert parse_noise("none") is None and parse_noise("") is None


@pytest.mark.parametrize("spec, fragment", [
    ("gausian:0.3", "Did you mean: gaussian"),
    ("gaussian:abc", "must be numbers"),
    ("gaussian:-1", "sigma"),
    ("salt-pepper:2", "fraction"),
    ("occlusion:2.5", "whole number"),
    ("gaussian:0.1:0.2", "takes 1 value"),
])
def test_bad_specs_are_config_errors(spec, fragment):
    with pytest.raises(ConfigError) as err:
        parse_noise(spec)
    assert fragment in str(err.value)


def test_gaussian_is_clipped_and_seeded():
    x = torch.full((4, 1, 28, 28), 0.5)
    a = parse_noise("gaussian:0.5")(x, torch.Generator().manual_seed(1))
    b = parse_noise("gaussian:0.5")(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1 and (a - x).abs().mean() > 0.2


def test_salt_pepper_sets_about_the_fraction_to_extremes():
    x = torch.full((8, 1, 28, 28), 0.5)
    y = parse_noise("salt-pepper:0.2")(x, torch.Generator().manual_seed(0))
    changed = (y != 0.5).float().mean().item()
    assert 0.17 < changed < 0.23
    assert set(torch.unique(y).tolist()) == {0.0, 0.5, 1.0}


def test_occlusion_blacks_out_square_patches():
    x = torch.ones((16, 1, 28, 28))
    y = parse_noise("occlusion:5:1")(x, torch.Generator().manual_seed(0))
    assert ((y == 0).flatten(1).sum(1) == 25).all()


def test_scaled_multiplies_the_strength():
    assert parse_noise("gaussian:0.3").scaled(3).spec == "gaussian:0.9"
    assert parse_noise("salt-pepper:0.4").scaled(5).values["fraction"] == 1.0
    assert parse_noise("occlusion:4:2").scaled(2).values == {"size": 8, "count": 2}
