"""The hierarchical VAE: its ELBO against the densities written out, the IWAE estimate of −log p(x), the
VampPrior on its top layer, three layers, a real (tiny) training run through the CLI, and the settings it
refuses."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import TINY, TINY_SET, assert_clean_error, assert_ok, invoke, read_metrics
from safetensors import safe_open
from torch.distributions import Bernoulli, Normal

import zoo
from zoo.plugins.conv import GatedConv2d
from zoo.plugins.vae import IWAE_CHUNK_IMAGES, REUSABLE_BYTES
from zoo.plugins.vampprior import VampPrior


def _model(**config):
    torch.manual_seed(0)
    config = {"latent_dim": 3, "layer_hidden": 16, **{k: v for k, v in TINY.items() if k != "device"}, **config}
    return zoo.create("hvae", **config).eval()


def _images(n=5, seed=2):
    return torch.bernoulli(torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)))


def _normal(mu_logvar):
    mu, logvar = mu_logvar.chunk(2, -1)
    return Normal(mu, (0.5 * logvar).exp())


@torch.no_grad()
def test_the_elbo_terms_are_the_densities_written_out_for_two_layers():
    model, x = _model(), _images()
    torch.manual_seed(5)
    rec, (kl_top, kl_bottom) = model.layer_terms(x)
    # The same draws, by hand: z2 ~ q(z2|x), z1 ~ q(z1|x, z2); p(z2) = N(0, I), p(z1|z2), p(x|z1, z2).
    torch.manual_seed(5)
    h = torch.relu(model.encoder(x))
    q2 = _normal(model.top(h))
    z2 = q2.loc + q2.scale * torch.randn_like(q2.loc)
    q1 = _normal(model.q_joint[0](torch.cat([h, model.q_from_z[0](z2)], -1)))
    z1 = q1.loc + q1.scale * torch.randn_like(q1.loc)
    p1 = _normal(model.p_down[0](z2))
    p2 = Normal(torch.zeros(3), torch.ones(3))
    log_px = Bernoulli(logits=model.decoder(torch.cat([z2, z1], -1))).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(rec, -log_px)
    torch.testing.assert_close(kl_top, (q2.log_prob(z2) - p2.log_prob(z2)).sum(-1))
    torch.testing.assert_close(kl_bottom, (q1.log_prob(z1) - p1.log_prob(z1)).sum(-1))
    torch.manual_seed(5)
    rec_sum, kl_sum = model._terms(x)
    torch.testing.assert_close(kl_sum, kl_top + kl_bottom)


@torch.no_grad()
def test_the_iwae_estimate_with_one_sample_is_one_sample_of_the_negative_elbo():
    model, x = _model(), _images()
    torch.manual_seed(7)
    rec, kl = model._terms(x)
    torch.manual_seed(7)
    torch.testing.assert_close(model.iwae_nll(x, 1), rec + kl)


@torch.no_grad()
def test_the_iwae_estimate_is_below_the_negative_elbo_and_tighter_with_more_samples():
    model, x = _model(), _images(16)
    model.top.bias[:3] += 1.5  # a posterior far from the prior, so that the bounds differ by more than noise
    torch.manual_seed(0)
    neg_elbo = torch.stack([sum(model._terms(x)) for _ in range(40)]).mean()
    estimates = {}
    for k in (1, 5, 50):
        torch.manual_seed(1)
        estimates[k] = torch.stack([model.iwae_nll(x, k) for _ in range(8)]).mean()
    assert abs(float(estimates[1] - neg_elbo)) < 1.0  # K = 1 is the ELBO (another draw of it)
    assert estimates[50] < estimates[5] < estimates[1]
    assert estimates[50] < neg_elbo - 0.5


@torch.no_grad()
def test_the_chunked_estimate_is_the_log_mean_of_all_the_joint_weights():
    model, x = _model(layers=3), _images(3)
    torch.manual_seed(3)
    chunked = model.iwae_nll(x, 7, chunk_images=6)  # 2 samples of the 3 images a chunk: 2 + 2 + 2 + 1
    torch.manual_seed(3)
    feats = model.features(x)
    mu, logvar = model.posterior(x)
    log_w = torch.cat([model.joint_log_weights(x, feats, mu, logvar, torch.randn(s, 3, 3)) for s in (2, 2, 2, 1)])
    torch.testing.assert_close(chunked, -(torch.logsumexp(log_w, 0) - math.log(7)))


@torch.no_grad()
def test_the_vampprior_top_prior_is_the_mixture_of_the_top_posteriors_at_the_pseudo_inputs():
    model = _model(prior="vampprior", pseudo_inputs=6)
    z = torch.randn(4, 3)
    mu, logvar = model.posterior(model.prior.inputs())  # the top layer's q(z2 | u_k)
    assert mu.shape == (6, 3)
    torch.testing.assert_close(model.log_prior(z), VampPrior.log_prob(z, mu, logvar))
    with model.prior_fixed():  # computed once for an evaluation: the same density
        torch.testing.assert_close(model.log_prior(z), VampPrior.log_prob(z, mu, logvar))
    x = _images()
    torch.manual_seed(4)
    _, (kl_top, _) = model.layer_terms(x)
    torch.manual_seed(4)
    q_mu, q_logvar = model.posterior(x)
    z2 = q_mu + (0.5 * q_logvar).exp() * torch.randn_like(q_mu)
    q = Normal(q_mu, (0.5 * q_logvar).exp()).log_prob(z2).sum(-1)
    torch.testing.assert_close(kl_top, q - VampPrior.log_prob(z2, mu, logvar))


def test_drawn_pseudo_inputs_keep_the_top_prior_exact_and_train_the_drawn_ones():
    model = _model(prior="vampprior", pseudo_inputs=6, prior_draws=2).train()
    z = torch.randn(4, 3)
    with torch.no_grad():
        exact = VampPrior.log_prob(z, *model.posterior(model.prior.inputs()))
    torch.manual_seed(5)
    drawn = model.log_prior(z)  # with gradients: two of the six carry the gradient to the pseudo-inputs
    torch.testing.assert_close(drawn.detach(), exact)
    drawn.sum().backward()
    moved = (model.prior.pseudo.grad.flatten(1).abs().sum(1) > 0).sum()
    assert 1 <= int(moved) <= 2


@torch.no_grad()
def test_decode_walks_down_the_conditional_means_and_sample_is_seeded():
    model = _model(layers=3)
    z3 = torch.randn(4, 3)
    z2 = model.p_down[0](z3)[:, :3]
    z1 = model.p_down[1](z2)[:, :3]
    torch.testing.assert_close(model.decode(z3), torch.sigmoid(model.decoder(torch.cat([z3, z2, z1], -1))))
    first, again = (model.sample(5, torch.Generator().manual_seed(9)) for _ in range(2))
    torch.testing.assert_close(first, again)
    assert first.shape == (5, 1, 28, 28) and model.encode(_images()).shape == (5, 3)


def test_free_bits_leave_a_layers_kl_below_them_unpenalised_in_training_and_validation_keeps_the_elbo():
    batch = zoo.Batch(_images(8), torch.full((8,), -1))
    model = _model(free_bits=1000.0).train()
    torch.manual_seed(3)
    out = model.loss(batch)
    # both layers' KLs are far below 1,000 nats: each costs exactly the floor, so the KL terms add no gradient
    torch.testing.assert_close(out["loss"], out["rec"] + 2 * 1000.0)
    out["loss"].backward()
    assert all(p.grad is None or float(p.grad.abs().max()) == 0.0 for p in model.p_down.parameters())
    torch.manual_seed(3)
    checked = model.validation_step(batch)
    torch.testing.assert_close(checked["loss"], checked["rec"] + checked["kl"])  # the ELBO, no free bits
    plain = _model().train()
    torch.manual_seed(3)
    out = plain.loss(batch)
    torch.testing.assert_close(out["loss"], out["rec"] + out["kl"])


def test_a_three_layer_model_builds_trains_a_step_and_evaluates():
    model = _model(layers=3).train()
    x = _images(8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sgd = torch.optim.SGD(model.parameters(), lr=1e-2)
    for _ in range(2):  # two steps: the lower layers' heads start at zero, so q_from_z learns from the second
        out = model.loss(zoo.Batch(x, torch.full((8,), -1)))
        assert {"kl_z3", "kl_z2", "kl_z1"} <= set(out)
        torch.testing.assert_close(out["kl"], out["kl_z3"] + out["kl_z2"] + out["kl_z1"])
        sgd.zero_grad()
        out["loss"].backward()
        sgd.step()
    changed = {k.split(".")[0] for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert {"encoder", "top", "q_from_z", "q_joint", "p_down", "decoder"} <= changed  # every network learns
    model.eval()
    with torch.no_grad():
        metrics = model.metrics(zoo.Batch(x, torch.full((8,), -1)), iwae_k=4)
    for key in ("neg_elbo_nats", "kl_nats", "nll_iwae_k4_nats", "mse"):
        assert metrics[key].shape == (8,) and torch.isfinite(metrics[key]).all(), key


@torch.no_grad()
def test_pixel_layers_are_gated_full_resolution_convs_on_the_decoders_logits():
    model, x = _model(pixel_layers=2, pixel_channels=5), _images()
    gated = [m for m in model.pixel if isinstance(m, GatedConv2d)]
    assert len(gated) == 2 and [g.conv.out_channels for g in gated] == [10, 10]  # h and its gate g, 5 each
    z = torch.randn(5, 6)
    # By hand: each layer is h ⊙ σ(g) of one same-size conv split in two, then a 1×1 conv back to one channel.
    y = model.decoder(z)
    for g in gated:
        h, gate = torch.nn.functional.conv2d(y, g.conv.weight, g.conv.bias, padding=1).chunk(2, 1)
        y = h * torch.sigmoid(gate)
        assert y.shape == (5, 5, 28, 28)  # the image's full resolution
    torch.testing.assert_close(model.decode_logits(z), model.pixel[-1](y))
    assert model.decode_logits(z).shape == (5, 1, 28, 28)
    # The ELBO reads the same logits: its reconstruction term is their Bernoulli log-likelihood.
    torch.manual_seed(5)
    rec, _ = model.layer_terms(x)
    torch.manual_seed(5)
    feats = model.features(x)
    mu, logvar = model.posterior_from(feats)
    codes, _, _ = model.down(feats, mu + (0.5 * logvar).exp() * torch.randn_like(mu))
    log_px = Bernoulli(logits=model.decode_logits(torch.cat(codes, -1))).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(rec, -log_px)


@torch.no_grad()
def test_wide_pixel_layers_decode_fewer_images_a_chunk_so_each_buffer_stays_reusable():
    plain, model = _model(), _model(pixel_layers=2, pixel_channels=64)
    assert plain.chunk_images == IWAE_CHUNK_IMAGES and model.chunk_images < IWAE_CHUNK_IMAGES
    widest = []
    for layer in model.pixel:
        layer.register_forward_hook(lambda m, i, o: widest.append(max(t.numel() * t.element_size() for t in (*i, o))))
    for conv in model.pixel.modules():
        if isinstance(conv, torch.nn.Conv2d):
            conv.register_forward_hook(lambda m, i, o: widest.append(o.numel() * o.element_size()))
    model.decode_logits(torch.randn(model.chunk_images, 6))
    assert REUSABLE_BYTES // 2 < max(widest) <= REUSABLE_BYTES  # as many images as fit, and no more


def test_a_model_with_pixel_layers_trains_and_reloads_with_them(tmp_path):
    run = tmp_path / "run"
    assert_ok(invoke("train", "hvae", "--dataset", "digits", "--epochs", "2", "--set", "latent_dim=4",
                     "--set", "layer_hidden=32", "--set", "pixel_layers=1", "--set", "pixel_channels=4",
                     "--set", "binarize=dynamic", *TINY_SET, "--out", str(run)))
    records = read_metrics(run)
    assert records[1]["val_loss"] < records[0]["val_loss"]
    trained = zoo.load(str(run)).model
    assert trained.config.pixel_layers == 1 and trained.pixel[0].conv.out_channels == 8
    assert_ok(invoke("eval", str(run), "--iwae-k", "4", "--json", "--no-progress"))
    assert math.isfinite(json.loads((run / "eval.json").read_text())["metrics"]["nll_iwae_k4_nats"])


def test_hvae_trains_evaluates_generates_and_resumes_through_the_cli(tmp_path):
    run = tmp_path / "run"
    assert_ok(invoke("train", "hvae", "--dataset", "digits", "--epochs", "1", "--set", "latent_dim=4",
                     "--set", "layer_hidden=32", "--set", "prior=vampprior", "--set", "pseudo_inputs=20",
                     "--set", "prior_draws=6", "--set", "prior_refresh=3", "--set", "binarize=dynamic", *TINY_SET,
                     "--out", str(run)))
    assert_ok(invoke("train", "--resume", str(run), "--epochs", "2", "--no-progress"))  # its cache built anew
    records = read_metrics(run)
    assert [r["epoch"] for r in records] == [1, 2] and records[1]["val_loss"] < records[0]["val_loss"]
    assert {"train_kl_z1", "train_kl_z2", "val_kl_z1", "val_kl_z2"} <= set(records[1])
    assert_ok(invoke("eval", str(run), "--iwae-k", "10", "--json", "--no-progress"))
    metrics = json.loads((run / "eval.json").read_text())["metrics"]
    assert metrics["nll_iwae_k10_nats"] <= metrics["neg_elbo_nats"] + 1.0
    assert_ok(invoke("generate", str(run), "--n", "8", "--out", str(tmp_path / "s.png")))
    assert (tmp_path / "s.png").stat().st_size > 0
    top = "note: the codes are the top layer's, z_2 (4-D, of 2 stochastic layers of 4)"
    assert top in assert_ok(invoke("latent", str(run), "--n", "50", "--out", str(tmp_path / "latent.png")))
    assert top in assert_ok(invoke("interpolate", str(run), "--from", "0", "--to", "1", "--steps", "4",
                                   "--out", str(tmp_path / "i.png")))
    assert top in assert_ok(invoke("manifold", str(run), "--steps", "3", "--out", str(tmp_path / "m.png")))
    trained = zoo.load(str(run)).model
    assert trained.prior.pseudo.shape == (20, 1, 28, 28)  # saved with the weights
    with safe_open(run / "model.safetensors", "pt") as saved:  # the prior's cache is not: it is rebuilt
        assert "prior.pseudo" in saved.keys() and not [k for k in saved.keys() if "cached" in k]


@pytest.mark.parametrize("settings, fragment", [
    (["layers=1"], "layers must be"),
    (["pseudo_inputs=100"], "prior is standard"),
    (["prior=vampprior", "pseudo_inputs=100000"], "more than the"),  # the digits' training split is a few hundred
    (["prior=vampprior", "batch_norm=true"], "batch_norm=false"),
    (["prior_draws=8"], "prior is standard"),
    (["prior_refresh=8"], "prior is standard"),
    (["prior=vampprior", "prior_refresh=8"], "prior_draws is 0"),
    (["prior=vampprior", "prior_draws=501"], "more than the pseudo_inputs=500"),
    (["pixel_channels=32"], "pixel_layers is 0"),
    (["pixel_layers=17"], "pixel_layers"),
])
def test_bad_hvae_settings_are_refused_before_a_run_folder_exists(tmp_path, settings, fragment):
    sets = [a for s in settings for a in ("--set", s)]
    result = invoke("train", "hvae", "--dataset", "digits", "--epochs", "1", *sets, *TINY_SET,
                    "--out", str(tmp_path / "run"))
    assert_clean_error(result, fragment)
    assert not (tmp_path / "run").exists()


def test_the_hvae_space_trains_the_two_layer_vampprior_model_on_dynamically_binarised_mnist():
    import optuna

    from zoo.api import resolve_config
    from zoo.registry import get_model_class
    from zoo.runs.config import TrainConfig, fields_of
    from zoo.search import space as spacemod

    sp = spacemod.load_space("hvae-mnist")
    cls = get_model_class("hvae")
    sp.check_keys({f.name for f in fields_of(cls.Config)} | {f.name for f in fields_of(TrainConfig)}, "hvae")
    assert (sp.fixed["layers"], sp.fixed["prior"], sp.fixed["binarize"]) == (2, "vampprior", "dynamic")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(4):
        trial = study.ask()
        v, _ = sp.sample(trial)
        study.tell(trial, 0.0)
        assert 16 <= v["latent_dim"] <= 64 and v["layer_hidden"] in (256, 512)
        _, model_cfg, train = resolve_config("hvae", config=sp.fixed, overrides=v)
        assert (model_cfg.pseudo_inputs, model_cfg.latent_dim, train.binarize) == (500, v["latent_dim"], "dynamic")
        cls(model_cfg, (1, 28, 28))


def test_prior_codes_come_from_the_vampprior_and_the_standard_normal_is_left_to_its_exact_quantiles():
    with pytest.raises(NotImplementedError):
        _model().prior_codes(4)
    codes = _model(prior="vampprior", pseudo_inputs=6).prior_codes(4, generator=torch.Generator().manual_seed(0))
    assert codes.shape[0] == 4 and bool(torch.isfinite(codes).all())
