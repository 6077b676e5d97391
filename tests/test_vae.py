"""The VAE plugin: losses in nats, IWAE estimate, binarised data, sampling."""

import math

import pytest
import torch
from safetensors.torch import load_file

import zoo
from conftest import TINY, assert_clean_error, assert_ok, invoke, is_png, quiet
from zoo.model import Batch


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("vae") / "run"
    zoo.train("vae", dataset="digits", epochs=2, latent_dim=2, binarize="dynamic", kl_warmup=1, lr=3e-3,
              out=out, log=quiet, progress=False, **TINY)
    return out


def test_elbo_terms_and_iwae_bound_are_consistent():
    torch.manual_seed(0)
    net = zoo.create("vae", latent_dim=3, channels=[4, 8, 8], hidden=[16]).eval()
    x = torch.bernoulli(torch.rand(5, 1, 28, 28))
    rec, kl = net._terms(x)
    assert (kl >= 0).all() and (rec > 0).all()
    # With one sample, the IWAE estimate is −log w, whose mean is the negative ELBO (rec + KL): this
    # checks log p(z) and log q(z|x) against the closed-form KL.
    one_sample = torch.stack([net.iwae_nll(x, 1) for _ in range(300)]).mean(0)
    elbo = torch.stack([sum(net._terms(x)) for _ in range(300)]).mean(0)
    assert torch.allclose(one_sample, elbo, atol=0.5)
    # More samples tighten the bound (Jensen): below the mean single-sample estimate.
    assert (net.iwae_nll(x, 300) <= one_sample + 0.05).all()
    # An untrained Bernoulli decoder has about 784·log 2 nats per image.
    assert abs(rec.mean().item() - 784 * math.log(2)) < 60


def test_gaussian_likelihood_and_beta(tmp_path):
    net = zoo.create("vae", latent_dim=2, likelihood="gaussian", sigma=0.5, beta=0.0, **{k: TINY[k] for k in ("channels", "hidden")})
    out = net.loss(Batch(torch.rand(4, 1, 28, 28), torch.zeros(4, dtype=torch.long)))
    assert torch.allclose(out["loss"], out["rec"])  # beta 0: no KL in the objective


def test_run_eval_labels_binarised_data_and_reports_nats(vae_run):
    result = zoo.evaluate(vae_run, options={"iwae_k": 50})
    assert result["pixels"] == "binarised (dynamic)"
    m = result["metrics"]
    assert {"mse", "neg_elbo_nats", "kl_nats", "nll_iwae_k50_nats"} <= set(m)
    assert m["nll_iwae_k50_nats"] <= m["neg_elbo_nats"] + 1e-3


def test_binarised_test_set_is_fixed():
    a = zoo.load_dataset("digits", binarize="dynamic")
    b = zoo.load_dataset("digits", binarize="dynamic")
    assert torch.equal(a.test_x, b.test_x)
    assert set(torch.unique(a.test_x).tolist()) == {0, 255}
    assert len(torch.unique(a.train_x)) > 2  # training images stay grey, resampled every batch


def test_generate_png_and_tensors_reproducible(vae_run, tmp_path):
    assert_ok(invoke("generate", vae_run, "--n", "16", "--seed", "3", "--out", tmp_path / "s.png"))
    assert is_png(tmp_path / "s.png")
    zoo.api.generate(vae_run, n=8, seed=3, out=tmp_path / "a.safetensors")
    zoo.api.generate(vae_run, n=8, seed=3, out=tmp_path / "b.safetensors")
    a, b = load_file(tmp_path / "a.safetensors")["images"], load_file(tmp_path / "b.safetensors")["images"]
    assert a.shape == (8, 1, 28, 28) and torch.equal(a, b)
    assert 0 <= a.min() and a.max() <= 1


def test_plain_autoencoder_cannot_generate(digits_run):
    assert_clean_error(invoke("generate", digits_run, "--n", "4"), "cannot sample")


def test_kl_warmup_rises_over_the_first_epoch(vae_run):
    from conftest import read_metrics

    rows = read_metrics(vae_run)
    assert len(rows) == 2 and all(math.isfinite(r["val_kl"]) for r in rows)
