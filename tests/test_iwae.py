"""The IWAE plugin: its training bounds (IWAE, MIWAE, CIWAE, PIWAE) against the importance weights written out,
and a real (tiny) training run through the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import TINY, TINY_SET, assert_clean_error, assert_ok, invoke, read_metrics

import zoo


def _model(**config):
    torch.manual_seed(0)
    return zoo.create("iwae", latent_dim=4, **{k: v for k, v in TINY.items() if k != "device"}, **config).eval()


def _images(n=5):
    return torch.bernoulli(torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(2)))


def _weights(model, x, samples):
    """The importance log-weights of `samples` codes per image, drawn as the model draws them (seed 0)."""
    mu, logvar = model.posterior(x)
    torch.manual_seed(0)
    return model.log_weights(x, None, mu, logvar, torch.randn(samples, *mu.shape))


@torch.no_grad()
def test_the_iwae_bound_is_the_log_mean_of_the_k_weights_and_above_their_mean():
    model, x = _model(k=6), _images()
    expected = torch.logsumexp(_weights(model, x, 6), 0) - math.log(6)
    torch.manual_seed(0)
    terms = model.bound_terms(x, None, 1.0)
    torch.testing.assert_close(terms["bound"], expected)
    torch.testing.assert_close(terms["elbo"], _weights(model, x, 6).mean(0))
    assert (terms["iwae"] >= terms["elbo"]).all()  # Jensen: the IWAE bound is the tighter one


@torch.no_grad()
@pytest.mark.parametrize("prior_weight", [1000.0, 0.2])  # a β, a warm-up's share
def test_the_iwae_and_elbo_figures_are_the_true_bounds_whatever_weighs_the_prior_in_the_loss(prior_weight):
    model, x = _model(k=6), _images()
    weights = _weights(model, x, 6)
    torch.manual_seed(0)
    terms = model.bound_terms(x, None, prior_weight)
    torch.testing.assert_close(terms["iwae"], torch.logsumexp(weights, 0) - math.log(6))
    torch.testing.assert_close(terms["elbo"], weights.mean(0))
    assert not torch.allclose(terms["bound"], terms["iwae"])  # the loss is the weighted one


@torch.no_grad()
def test_with_one_sample_the_iwae_is_the_vae():
    model, x = _model(k=1), _images()
    torch.manual_seed(0)
    terms = model.bound_terms(x, None, 1.0)
    torch.testing.assert_close(terms["iwae"], terms["elbo"])


@torch.no_grad()
def test_miwae_averages_m_independent_iwae_bounds():
    model, x = _model(bound="miwae", k=3, m=4), _images()
    assert model.samples_per_image() == 12
    groups = _weights(model, x, 12).view(4, 3, -1)
    torch.manual_seed(0)
    terms = model.bound_terms(x, None, 1.0)
    torch.testing.assert_close(terms["bound"], (torch.logsumexp(groups, 1) - math.log(3)).mean(0))


@torch.no_grad()
def test_ciwae_mixes_the_elbo_and_the_iwae_bound_by_its_beta():
    model, x = _model(bound="ciwae", k=4, ciwae_beta=0.25), _images()
    torch.manual_seed(0)
    terms = model.bound_terms(x, None, 1.0)
    torch.testing.assert_close(terms["bound"], 0.25 * terms["elbo"] + 0.75 * terms["iwae"])


@pytest.mark.parametrize("batch_norm", [False, True])  # with batch norm, each code moves all samples' scores
def test_piwae_gives_the_decoder_the_iwae_mk_gradient_and_the_encoder_the_miwae_gradient(batch_norm):
    model, x = _model(bound="piwae", k=3, m=2, batch_norm=batch_norm), _images()
    model.train()
    torch.manual_seed(0)
    out = model.loss(zoo.Batch(x, torch.zeros(len(x), dtype=torch.long)))
    out["loss"].backward()
    log_w = _weights(model, x, 6)  # the same six codes per image
    iwae_6 = (torch.logsumexp(log_w, 0) - math.log(6)).mean()
    miwae = (torch.logsumexp(log_w.view(2, 3, -1), 1) - math.log(3)).mean()
    decoder, encoder = list(model.decoder.parameters()), list(model.encoder.parameters())
    for params, bound in ((decoder, iwae_6), (encoder, miwae)):
        expected = torch.autograd.grad(-bound, params, retain_graph=True)
        for p, g in zip(params, expected):
            # float32 sums in another order through batch norm: a few 1e-5 on gradients of order 1
            torch.testing.assert_close(p.grad, g, atol=1e-4 if batch_norm else 1e-6, rtol=1e-5)
    torch.testing.assert_close(out["loss"], -iwae_6)  # what is logged is the decoder's bound, IWAE-(M·K)


def test_iwae_trains_evaluates_and_samples_through_the_cli(tmp_path):
    run = tmp_path / "run"
    assert_ok(invoke("train", "iwae", "--dataset", "digits", "--epochs", "2", "--set", "k=3", "--set", "latent_dim=4",
                     "--set", "binarize=dynamic", *TINY_SET, "--out", str(run)))
    records = read_metrics(run)
    assert [r["epoch"] for r in records] == [1, 2]
    for r in records:  # the bound is tighter than the ELBO on the same samples
        assert r["train_iwae_k3"] <= r["train_neg_elbo"] and r["val_iwae_k3"] <= r["val_neg_elbo"]
        assert r["val_loss"] == pytest.approx(r["val_iwae_k3"])
    assert_ok(invoke("eval", str(run), "--iwae-k", "10", "--json", "--no-progress"))
    metrics = json.loads((run / "eval.json").read_text())["metrics"]
    assert metrics["nll_iwae_k10_nats"] <= metrics["neg_elbo_nats"] + 1.0
    assert_ok(invoke("generate", str(run), "--n", "8", "--out", str(tmp_path / "s.png")))
    assert (tmp_path / "s.png").stat().st_size > 0


@pytest.mark.parametrize("setting, fragment", [
    ("k=0", "k must be 1 .. 5000"), ("bound=riwae", "iwae, miwae, ciwae, piwae"),
    ("ciwae_beta=2", "ciwae_beta must be 0 .. 1"),
    # another bound's setting, not ignored
    ("m=4", "--set bound=miwae or bound=piwae"), ("ciwae_beta=0.2", "--set bound=ciwae"),
])
def test_bad_iwae_settings_are_refused_with_a_message(tmp_path, setting, fragment):
    result = invoke("train", "iwae", "--dataset", "digits", "--epochs", "1", "--set", setting, *TINY_SET,
                    "--out", str(tmp_path / "run"))
    assert_clean_error(result, fragment)
    assert not (tmp_path / "run").exists()
