"""The VampPrior VAE: the mixture density against its definition, sampling from the pseudo-inputs'
posteriors, a real (tiny) training run through the CLI, and the settings it refuses."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from torch import nn
from conftest import TINY, TINY_SET, assert_clean_error, assert_ok, invoke, read_metrics

import zoo
from zoo.errors import ConfigError
from zoo.plugins.vampprior import VampPrior, log_normal


def _model(**config):
    torch.manual_seed(0)
    return zoo.create("vampprior", latent_dim=3, **{k: v for k, v in TINY.items() if k != "device"},
                      **config).eval()


def test_the_prior_density_is_the_mean_of_the_components_densities():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(7, 4, generator=g), 0.5 * torch.randn(7, 4, generator=g)
    z = torch.randn(3, 5, 4, generator=g)
    by_definition = torch.log(torch.stack([log_normal(z, mu[k], logvar[k]).exp() for k in range(7)]).mean(0))
    torch.testing.assert_close(VampPrior.log_prob(z, mu, logvar), by_definition, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_the_prior_is_the_mixture_of_the_posteriors_at_the_pseudo_inputs():
    model = _model(pseudo_inputs=5)
    z = torch.randn(4, 3)
    mu, logvar = model.posterior(model.prior.inputs())
    expected = torch.logsumexp(log_normal(z[:, None], mu[None], logvar[None]), 1) - math.log(5)
    torch.testing.assert_close(model.log_prior(z), expected)
    assert ((model.prior.inputs() >= 0) & (model.prior.inputs() <= 1)).all()  # pseudo-inputs are images


@torch.no_grad()
def test_samples_come_from_the_posterior_of_a_pseudo_input():
    model = _model(pseudo_inputs=1)
    mu, logvar = model.posterior(model.prior.inputs())
    codes = model.prior_sample(4000, torch.Generator().manual_seed(1))
    torch.testing.assert_close(codes.mean(0), mu[0], atol=0.1, rtol=0)
    torch.testing.assert_close(codes.std(0), (0.5 * logvar[0]).exp(), atol=0.1, rtol=0.1)


@torch.no_grad()
def test_the_iwae_bound_is_the_same_with_the_prior_computed_once():
    model = _model(pseudo_inputs=6)
    x = torch.bernoulli(torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(2)))
    mu, logvar = model.posterior(x)
    eps = torch.randn(5, *mu.shape, generator=torch.Generator().manual_seed(3))
    each_time = model.log_weights(x, None, mu, logvar, eps)
    with model.prior_fixed():
        once = model.log_weights(x, None, mu, logvar, eps)
    torch.testing.assert_close(once, each_time)


def test_the_kl_term_is_estimated_at_the_sampled_code():
    model = _model(pseudo_inputs=4)
    mu, logvar, z = torch.zeros(2, 3), torch.zeros(2, 3), torch.randn(2, 3)
    torch.testing.assert_close(model.kl(mu, logvar, z), log_normal(z, mu, logvar) - model.log_prior(z))


def _prior_gradients(prior: VampPrior, encode: nn.Linear, z, draws: int):
    """log p(z) summed, its gradient to z, and its gradients to the pseudo-inputs and the encoder's weights
    (all flat, side by side), with the components' gradient exact (draws 0) or drawn."""
    def posterior(images):
        return encode(images.flatten(1)).chunk(2, dim=-1)
    z = z.clone().requires_grad_()
    params = [prior.pseudo, *encode.parameters()]
    log_prob = prior.log_prob_drawn(z, posterior, draws) if draws else prior.log_prob(z, *posterior(prior.inputs()))
    value = log_prob.sum()
    grads = torch.autograd.grad(value, [z, *params])
    return value.detach(), grads[0], torch.cat([g.flatten() for g in grads[1:]])


def test_drawn_pseudo_inputs_give_the_exact_prior_and_an_unbiased_gradient_to_the_components():
    torch.manual_seed(4)
    prior, encode = VampPrior(12, (1, 3, 3)), nn.Linear(9, 6)
    with torch.no_grad():  # spread the pseudo-inputs, so that the components differ and the draws matter
        prior.pseudo.uniform_(0.0, 1.0)
        mu = encode(prior.inputs().flatten(1))[:, :3]
    z = mu[torch.arange(10) % 12] + 0.3 * torch.randn(10, 3)
    value, z_grad, exact = _prior_gradients(prior, encode, z, draws=0)
    runs = [_prior_gradients(prior, encode, z, draws=3) for _ in range(1500)]
    for drawn_value, drawn_z_grad, _ in runs[:5]:  # the value and the gradient to z are exact at every draw
        torch.testing.assert_close(drawn_value, value)
        torch.testing.assert_close(drawn_z_grad, z_grad)
    mean = torch.stack([grads for _, _, grads in runs]).mean(0)
    assert float((runs[0][2] - exact).norm() / exact.norm()) > 0.1  # one draw is an estimate, not the gradient
    assert float((mean - exact).norm() / exact.norm()) < 0.03  # whose mean is the gradient


def test_a_refreshed_prior_reuses_its_components_between_refreshes_and_updates_the_drawn_ones():
    model = _model(pseudo_inputs=8, prior_draws=3, prior_refresh=4).train()
    z = torch.randn(5, 3)

    def exact():
        with torch.no_grad():
            return model.posterior(model.prior.inputs())

    model.components.before_step()  # the first step fills the cache: the components, exactly
    torch.testing.assert_close((model.prior.cached_mu, model.prior.cached_logvar), exact())
    torch.testing.assert_close(model.log_prior(z), VampPrior.log_prob(z, *exact()))
    with torch.no_grad():  # an optimizer step: the encoder moves, the cache does not follow it at once
        for p in model.encoder.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.components.before_step()
    stale = (model.prior.cached_mu.clone(), model.prior.cached_logvar.clone())
    assert not torch.allclose(stale[0], exact()[0], atol=1e-3)
    value = model.log_prior(z)  # the value from the cache; the drawn pseudo-inputs encoded anew, into it
    torch.testing.assert_close(value, VampPrior.log_prob(z, *stale))
    updated = [k for k in range(8) if not torch.equal(model.prior.cached_mu[k], stale[0][k])]
    assert 1 <= len(updated) <= 3
    torch.testing.assert_close(model.prior.cached_mu[updated], exact()[0][updated])
    for _ in range(3):  # the fourth step after the fill refreshes every component
        model.components.before_step()
    torch.testing.assert_close((model.prior.cached_mu, model.prior.cached_logvar), exact())


def test_a_prior_carrying_its_cache_between_steps_is_not_vectorised_in_a_search():
    from zoo.api import resolve_config
    from zoo.training import multitrial

    cls, model_cfg, train_cfg = resolve_config("vampprior", overrides={
        "dataset": "digits", "batch_norm": False, "pseudo_inputs": 10, "prior_draws": 4, "prior_refresh": 5})
    trials = [dataclasses.replace(model_cfg, beta=b) for b in (0.5, 1.0)]
    with pytest.raises(ConfigError, match="one by one"):
        multitrial.check_stackable(cls, trials, [train_cfg] * 2, (1, 28, 28))
    multitrial.check_stackable(cls, [dataclasses.replace(t, prior_refresh=1) for t in trials], [train_cfg] * 2,
                               (1, 28, 28))  # every step exact: nothing carried, stacked as before


def test_without_gradients_the_prior_takes_every_pseudo_input():
    model = _model(pseudo_inputs=5, prior_draws=2)
    z = torch.randn(4, 3)
    with torch.no_grad():
        torch.testing.assert_close(model.log_prior(z), VampPrior.log_prob(z, *model.posterior(model.prior.inputs())))


def test_vampprior_trains_evaluates_and_samples_through_the_cli(tmp_path):
    run = tmp_path / "run"
    assert_ok(invoke("train", "vampprior", "--dataset", "digits", "--epochs", "2", "--set", "latent_dim=4",
                     "--set", "pseudo_inputs=20", "--set", "binarize=dynamic", *TINY_SET, "--out", str(run)))
    records = read_metrics(run)
    assert [r["epoch"] for r in records] == [1, 2] and records[1]["val_loss"] < records[0]["val_loss"]
    assert_ok(invoke("eval", str(run), "--iwae-k", "20", "--json", "--no-progress"))
    metrics = json.loads((run / "eval.json").read_text())["metrics"]
    assert metrics["nll_iwae_k20_nats"] <= metrics["neg_elbo_nats"] + 1.0
    assert_ok(invoke("generate", str(run), "--n", "8", "--out", str(tmp_path / "s.png")))
    assert (tmp_path / "s.png").stat().st_size > 0
    trained = zoo.load(str(run)).model
    torch.manual_seed(0)  # the run's seed: the weights it started from
    start = type(trained)(trained.config, trained.shape)
    assert trained.prior.pseudo.shape == (20, 1, 28, 28)  # saved with the weights, and trained with them
    assert float((trained.prior.pseudo - start.prior.pseudo).abs().max().detach()) > 1e-3
    _manifold_spans_the_mixtures_quantiles(run, tmp_path)


def _manifold_spans_the_mixtures_quantiles(run, tmp_path):
    """`zoo manifold` of a VampPrior VAE runs over its prior's quantiles, not N(0, 1)'s."""
    from zoo.analysis.manifold import PRIOR_DRAWS, manifold

    r = manifold(run, steps=5, dims="0,1", out=tmp_path / "m.png")
    loaded = zoo.load(run)
    drawn = loaded.model.prior_codes(PRIOR_DRAWS, generator=torch.Generator().manual_seed(0)).double()
    p = (torch.arange(5, dtype=torch.float64) + 0.5) / 5
    torch.testing.assert_close(r.xs, torch.quantile(drawn[:, 0], p).float())
    torch.testing.assert_close(r.latents[0, 0, 2:], drawn.mean(0)[2:].float())  # the others at the prior's mean
    assert not torch.allclose(r.xs, torch.distributions.Normal(0.0, 1.0).icdf(p).float(), atol=0.05)
    assert "the prior's quantiles of z[0] and z[1] (the other 2 dimensions at the prior's mean)" in r.summary()[0]


@pytest.mark.parametrize("setting, fragment", [
    ("pseudo_inputs=100000", "more than the"),   # the digits' training split is a few hundred images
    ("batch_norm=true", "batch_norm=false"),
    ("pseudo_inputs=0", "pseudo_inputs must be"),
    ("prior_draws=600", "more than the pseudo_inputs=500"),
    ("prior_draws=-1", "prior_draws must be"),
    ("prior_refresh=10", "prior_draws is 0"),
    ("prior_refresh=0", "prior_refresh must be"),
])
def test_bad_vampprior_settings_are_refused_before_a_run_folder_exists(tmp_path, setting, fragment):
    result = invoke("train", "vampprior", "--dataset", "digits", "--epochs", "1", "--set", setting, *TINY_SET,
                    "--out", str(tmp_path / "run"))
    assert_clean_error(result, fragment)
    assert not (tmp_path / "run").exists()
