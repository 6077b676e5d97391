"""The conditional VAE, `zoo generate --class / --per-class` for conditional models, and the class
accuracy of their samples."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY, assert_clean_error, assert_ok, invoke, quiet
from safetensors.torch import load_file

import zoo
from zoo.errors import ConfigError

SMALL = {"channels": [16, 32, 32], "hidden": [64], "latent_dim": 4, "device": "cpu"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cvae")
    cvae = zoo.train("cvae", dataset="digits", epochs=25, lr=3e-3, out=root / "cvae", log=quiet, progress=False,
                     **SMALL).run_dir
    feats = zoo.train("classifier", dataset="digits", epochs=15, lr=3e-3, out=root / "feat", log=quiet,
                      progress=False, **{**SMALL, "latent_dim": 16}).run_dir
    return cvae, feats


def test_a_cvae_draws_the_class_it_is_asked_for(runs):
    """A classifier trained on the real digits finds the asked-for class in most samples (chance: 10 %)."""
    cvae, feats = runs
    result = zoo.api.sample_quality(cvae, features=str(feats), n=300)
    acc = result["class_accuracy"]
    assert acc["mean"] > 0.6, acc
    assert set(acc["per_class"]) == {str(i) for i in range(10)}
    assert acc["mean"] == pytest.approx(sum(acc["per_class"].values()) / 10, abs=1e-6)  # 30 of each class


def test_per_class_grid_has_every_class_in_order_and_the_seed_repeats_it(runs, tmp_path):
    cvae, feats = runs
    out = assert_ok(invoke("generate", cvae, "--per-class", "5", "--out", tmp_path / "grid.safetensors"))
    assert "wrote" in out
    images = load_file(tmp_path / "grid.safetensors")["images"]
    assert images.shape == (50, 1, 28, 28)
    classifier = zoo.load(feats)
    said = classifier.classify(images).argmax(1)
    rows = torch.arange(10).repeat_interleave(5)  # five of class 0, then five of class 1, ...
    assert (said == rows).float().mean() > 0.6
    invoke("generate", cvae, "--per-class", "5", "--out", tmp_path / "again.safetensors")
    assert torch.equal(images, load_file(tmp_path / "again.safetensors")["images"])
    assert_ok(invoke("generate", cvae, "--per-class", "3", "--out", tmp_path / "grid.png"))
    assert (tmp_path / "grid.png").stat().st_size > 0


def test_generate_class_of_a_cvae_gives_that_class(runs, tmp_path):
    cvae, feats = runs
    assert_ok(invoke("generate", cvae, "--class", "3", "--n", "20", "--out", tmp_path / "threes.safetensors"))
    images = load_file(tmp_path / "threes.safetensors")["images"]
    assert (zoo.load(feats).classify(images).argmax(1) == 3).float().mean() > 0.6


def test_a_tensor_file_of_samples_says_which_weights_drew_them_and_how(runs, tmp_path):
    import json

    from safetensors import safe_open

    cvae, _ = runs

    def meta(*args):
        out = tmp_path / "s.safetensors"
        assert_ok(invoke("generate", cvae, *args, "--out", out))
        with safe_open(out, "pt") as f:
            found = f.metadata()
        out.unlink()
        return found

    said = meta("--class", "3", "--n", "4")
    assert said["sampling"] == "class 3" and said["source"] == str(cvae) and said["seed"] == "0"
    assert said["weights_digest"] == zoo.load(cvae).file_digest
    said = meta("--per-class", "2")
    assert said["per_class"] == "2" and json.loads(said["classes"]) == [str(i) for i in range(10)]
    assert meta("--n", "4")["sampling"] == "the model's prior, classes drawn uniformly"


def test_a_cvae_is_conditional_only(runs):
    """It cannot encode or reconstruct an image without its label, so it does not offer to."""
    cvae, _ = runs
    run = zoo.load(cvae)
    assert run.capabilities() == ["sample", "sample_class"]
    assert run.sample(4, generator=torch.Generator().manual_seed(0)).shape == (4, 1, 28, 28)
    with pytest.raises(ConfigError, match="generator must be a torch.Generator, not 42"):
        run.sample_class([3, 4], generator=42)  # a raw TypeError
    for command, cannot in (("reconstruct", "reconstruct"), ("latent", "encode")):  # why, and where instead
        assert_clean_error(invoke(command, cvae), f"model 'cvae' cannot {cannot}",
                           "encodes an image only given its class: `zoo eval` measures its reconstructions")


def test_a_cvae_evaluates_its_conditional_likelihood(runs):
    cvae, _ = runs
    metrics = zoo.evaluate(cvae, options={"iwae_k": 4}, save=False)["metrics"]
    assert metrics["nll_iwae_k4_nats"] <= metrics["neg_elbo_nats"] + 1.0  # the bound is the tighter one
    assert metrics["kl_nats"] > 0
    out = assert_ok(invoke("eval", cvae, "--no-progress"))  # named as any VAE's figures: said to be of p(x | y)
    assert "; given each image's class: the likelihood figures are of p(x | y)" in out.splitlines()[0]


def test_conditional_options_are_refused_where_they_do_not_apply(runs, tmp_path):
    cvae, _ = runs
    assert_clean_error(invoke("generate", cvae, "--class", "3", "--sampler", "gmm"), "samples a class itself")
    assert_clean_error(invoke("generate", cvae, "--class", "eleven"), "unknown class 'eleven'")
    assert_clean_error(invoke("generate", cvae, "--per-class", "2", "--class", "3"), "(per_class=) draws every class")
    vae = zoo.train("vae", dataset="digits", epochs=1, out=tmp_path / "vae", log=quiet, progress=False,
                    **TINY).run_dir
    assert_clean_error(invoke("generate", vae, "--per-class", "2"), "is not conditional")


def test_a_cvae_needs_labelled_data():
    with pytest.raises(ConfigError, match="no class labels"):
        zoo.create("cvae", num_classes=0)
    with pytest.raises(ConfigError, match=r"is of one class \(a folder without class sub-folders, or with one\)"):
        zoo.create("cvae", num_classes=1)  # it said 'no class labels' of a folder with one class folder


def test_a_cvae_runs_model_card_offers_eval_generation_by_class_and_no_reconstruction(runs):
    cvae, _ = runs
    card = (cvae / "README.md").read_text()
    commands = card[card.index("## Use it"):card.index("## Training configuration")].splitlines()
    assert f"zoo eval {cvae}" in commands  # it has test metrics
    assert f"zoo eval {cvae} --fid" not in commands  # no feature network is catalogued for digits: it would fail
    assert f"zoo generate {cvae} --per-class 8 --out {cvae.name}-per-class.png" in commands  # named after the model
    assert not any("zoo reconstruct" in line for line in commands)  # it needs the class to reconstruct
