"""The class-conditional GAN: projection discriminator, class-conditioned generator, conditional sampling."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_clean_error, assert_ok, invoke, quiet
from safetensors.torch import load_file

import zoo
from zoo.errors import ConfigError

SMALL = {"g_channels": 8, "d_channels": 8, "latent_dim": 8, "device": "cpu", "batch_size": 64}


@pytest.fixture(scope="module")
def cgan_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cgan") / "run"
    return zoo.train("cgan", dataset="digits", epochs=2, out=out, log=quiet, progress=False, **SMALL).run_dir


def test_the_discriminator_scores_an_image_for_a_class():
    """Projection: D(x, y) = ψ(φ(x)) + <embed(y), φ(x)>, so the same image scores differently per class,
    and the class term is the projection of the features on the class's embedding."""
    model = zoo.create("cgan", **SMALL)
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    d = model.discriminator
    a, b = d(x, torch.zeros(4, dtype=torch.long)), d(x, torch.ones(4, dtype=torch.long))
    assert not torch.allclose(a, b)
    features = d.body(x).flatten(1)
    expected = d.head(features).squeeze(1) + features @ d.embed.weight[1]
    torch.testing.assert_close(b, expected)


def test_the_generator_draws_the_class_it_is_given():
    model = zoo.create("cgan", **SMALL).eval()
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731  (the same codes z for both)
    sevens = model.sample_class(torch.full((4,), 7), generator=gen())
    ones = model.sample_class(torch.full((4,), 1), generator=gen())
    assert sevens.shape == (4, 1, 28, 28) and 0 <= float(sevens.min()) and float(sevens.max()) <= 1
    assert not torch.allclose(sevens, ones)  # the class, not only z, decides the image
    torch.testing.assert_close(sevens, model.sample_class(torch.full((4,), 7), generator=gen()))
    with pytest.raises(ConfigError, match="0..9"):
        model.sample_class(torch.tensor([10]))


def test_per_class_samples_are_in_class_order_and_repeat_with_the_seed(cgan_run, tmp_path):
    assert_ok(invoke("generate", cgan_run, "--per-class", "3", "--seed", "4", "--out", tmp_path / "a.safetensors"))
    assert_ok(invoke("generate", cgan_run, "--per-class", "3", "--seed", "4", "--out", tmp_path / "b.safetensors"))
    a, b = (load_file(tmp_path / f"{k}.safetensors")["images"] for k in "ab")
    assert a.shape == (30, 1, 28, 28) and torch.equal(a, b)
    run = zoo.load(cgan_run)
    gen = torch.Generator().manual_seed(4)
    expected = run.sample_class(torch.arange(10).repeat_interleave(3), generator=gen)
    torch.testing.assert_close(a, expected.float().clamp(0, 1))
    assert_ok(invoke("generate", cgan_run, "--class", "7", "--n", "6", "--out", tmp_path / "sevens.png"))
    assert (tmp_path / "sevens.png").stat().st_size > 0


def test_a_cgan_trains_samples_and_shows_a_row_per_class(cgan_run):
    run = zoo.load(cgan_run)
    assert run.capabilities() == ["sample", "sample_class"]
    rows = run.model.preview(torch.zeros(10, 1, 28, 28))
    assert [name for name, _ in rows] == [f"class {j}" for j in range(10)]
    assert (cgan_run / "samples.png").is_file()


def test_class_options_on_an_unconditional_gan_say_it_is_not_conditional(tmp_path):
    run = zoo.train("gan", dataset="digits", epochs=1, out=tmp_path / "gan", log=quiet, progress=False,
                    **SMALL).run_dir
    assert_clean_error(invoke("generate", run, "--class", "7"), "'gan' is not conditional", "cgan", code=1)
    assert_clean_error(invoke("generate", run, "--per-class", "2"), "'gan' is not conditional", "cgan", code=1)
    assert_clean_error(invoke("train", "gan", "--dataset", "digits", "--set", "d_steps=0"), "d_steps", "1 .. 100")
    assert_clean_error(invoke("train", "gan", "--dataset", "digits", "--set", "loss=wgan-gp", "--set",
                              "gp_weight=-1"), "gp_weight", "0 .. 1e+06")


def test_a_cgan_needs_labelled_data(tmp_path):
    with pytest.raises(ConfigError, match="no class labels"):
        zoo.create("cgan", num_classes=0)
    assert_clean_error(invoke("generate", "cgan", "--per-class", "0"), "--per-class")
    assert_clean_error(invoke("generate", "cgan", "--per-class", "2", "--n", "5"), "goes without --n")


def test_the_bundled_cgan_draws_each_class_the_feature_classifier_recognises(monkeypatch):
    """cgan-mnist, by name, offline: the bundled MNIST classifier finds the asked-for digit in its samples."""
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    cgan, classifier = zoo.load("cgan-mnist"), zoo.load("features-mnist")
    wanted = torch.arange(10).repeat_interleave(5)
    with torch.no_grad():
        images = cgan.sample_class(wanted, generator=torch.Generator().manual_seed(0))
        said = classifier.classify(images).argmax(1)
    assert (said == wanted).float().mean() >= 0.95
