"""Every pixel counts, at any image size: the encoders read the whole image and every output pixel depends
on the code (issue 12: at 32×32 the default ConvAE's last 4 rows and columns were its bias alone, the same
for every code, because its last conv layer never read row 7 of 8)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from conftest import TINY, quiet
from PIL import Image

import zoo
from zoo import registry
from zoo.errors import ConfigError

# The built-in plugins; the first test keeps this list whole.
BUILT_IN = ["cgan", "classifier", "convae", "cvae", "dae", "gan", "hvae", "iwae", "vae", "vampprior"]
SHAPES = [(c, s, s) for s in (28, 32, 64, 27, 33) for c in (1, 3)] + [(3, 32, 27)]


def _create(name: str, shape=(1, 28, 28), **config):
    """The model in eval mode, with leaky ReLUs where its config has an activation: the geometry is the
    same, and as no unit is ever shut, a pixel the same for every code is one that no path reaches (with
    ReLUs a random initialisation can shut a unit for every code)."""
    cls = registry.get_model_class(name)
    if "activation" in {f.name for f in dataclasses.fields(cls.Config)}:
        config["activation"] = "leaky_relu"
    return zoo.create(name, shape=shape, **config).eval()


def _dead_pixels(live: torch.Tensor) -> list[list[int]]:
    """(channel, row, column) of the first few pixels that are not live, for the failure message."""
    return (~live).nonzero()[:6].tolist()


def _outputs_vary_with_the_code(model, shape) -> dict[str, torch.Tensor]:
    """Per capability that makes images from codes: which output pixels differ between 64 random codes."""
    gen = torch.Generator().manual_seed(0)
    made = {}
    with torch.no_grad():
        if model.can("decode"):
            made["decode"] = model.decode(torch.randn(64, model.config.latent_dim, generator=gen))
        if model.can("sample"):
            made["sample"] = model.sample(64, generator=gen)
    assert made, f"{model.name} makes no images"
    for images in made.values():
        assert images.shape[1:] == shape
    return {what: images.std(0) > 0 for what, images in made.items()}


def _inputs_reach_the_code(model, shape) -> dict[str, torch.Tensor]:
    """Per network that reads images (the encoder's code, the GAN's discriminator logit): which input pixels
    move its output, by the gradient over 8 random images."""
    readers = {}
    # A conditional model's condition: the class (cgan, cvae), or the cluster of a self-conditioned gan.
    conditions = model.condition_size() if hasattr(model, "condition_size") else 0
    labels = torch.arange(8) % conditions if conditions else None
    if model.can("encode"):
        readers["encode"] = model.encode
    elif hasattr(model, "posterior"):  # a conditional VAE's encoder, given the class
        readers["posterior"] = lambda x: model.posterior(x, labels)[0]
    if hasattr(model, "discriminator"):
        readers["discriminator"] = lambda x: model.discriminator(x, labels)
    assert readers, f"{model.name} reads no images"
    live = {}
    for what, read in readers.items():
        x = torch.rand(8, *shape, requires_grad=True)
        out = read(x)
        out.backward(torch.randn_like(out))
        live[what] = x.grad.abs().sum(0) > 0
    return live


def test_every_built_in_plugin_is_checked_here():
    reg = registry.load_registry()
    assert sorted(e.name for e in reg.models.values() if e.package == "zoo") == BUILT_IN


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", BUILT_IN)
def test_every_pixel_is_read_and_every_output_pixel_depends_on_the_code(name, shape):
    model = _create(name, shape)
    if model.can("decode") or model.can("sample"):
        for what, live in _outputs_vary_with_the_code(model, shape).items():
            assert live.all(), f"{name} {what} at {shape}: pixels the same for every code: {_dead_pixels(live)}"
    for what, live in _inputs_reach_the_code(model, shape).items():
        assert live.all(), f"{name} {what} at {shape}: input pixels it never reads: {_dead_pixels(live)}"


@pytest.mark.parametrize("preset", sorted(registry.presets()))
def test_every_catalogued_preset_reads_and_makes_every_mnist_pixel(preset):
    entry = registry.presets()[preset]
    model = _create(entry["model"], **entry["config"])
    shape = (1, 28, 28)
    makes = model.can("decode") or model.can("sample")
    for what, live in (_outputs_vary_with_the_code(model, shape) if makes else {}).items():
        assert live.all(), f"{preset} {what}: pixels the same for every code: {_dead_pixels(live)}"
    for what, live in _inputs_reach_the_code(model, shape).items():  # the encoder, or a GAN's discriminator
        assert live.all(), f"{preset} {what}: input pixels it never reads: {_dead_pixels(live)}"


def test_a_convae_trained_on_32px_folder_images_reconstructs_every_pixel(tmp_path):
    """The issue's case end to end: a folder of 32×32 images, and the trained run rebuilt from its files."""
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / "pics" / cls).mkdir(parents=True)
        for i in range(6):
            pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels, "RGB").save(tmp_path / "pics" / cls / f"{i}.png")
    zoo.train("convae", dataset=f"folder:{tmp_path / 'pics'}", epochs=1, out=tmp_path / "run", log=quiet,
              progress=False, activation="leaky_relu", **TINY)
    model = zoo.load(tmp_path / "run").model
    with torch.no_grad():
        images = model.decode(torch.randn(256, model.config.latent_dim, generator=torch.Generator().manual_seed(0)))
    live = images.std(0) > 0
    assert images.shape[1:] == (3, 32, 32)
    assert live.all(), f"pixels the same for every code: {_dead_pixels(live)}"


def test_an_explicit_decoder_that_would_leave_rows_to_its_bias_is_refused():
    # 3×3 → 7×7 → 13×13 → 27×27: the last layer's output padding would add a row and a column no kernel reaches.
    with pytest.raises(ConfigError) as e:
        zoo.create("convae", decoder_channels=[16, 8], decoder_kernel=[3, 3, 3], decoder_stride=[2],
                   decoder_padding=[0, 1, 0])
    assert "decoder layer 3" in e.value.message and "27×27" in e.value.message
    assert "bias alone, the same for every code" in e.value.message
    assert "mirror the encoder" in e.value.hint
