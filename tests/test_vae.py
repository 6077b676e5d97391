"""The VAE plugin: losses in nats, IWAE estimate, binarised data, sampling."""

import itertools
import math
import platform

import numpy as np
import pytest
import torch
from conftest import TINY, assert_clean_error, assert_ok, invoke, is_png, quiet, read_metrics
from safetensors.torch import load_file

import zoo
from zoo.errors import ConfigError
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


def test_the_chunked_iwae_bound_is_the_log_mean_of_all_k_weights_whatever_the_chunk_size():
    """The bound decodes a few samples per chunk and sums the weights as they come: it must equal the
    log-mean-exp of all K importance weights, written out here with torch.distributions."""
    torch.manual_seed(0)
    net = zoo.create("vae", latent_dim=16, channels=[4, 8, 8], hidden=[16]).eval()
    x = torch.bernoulli(torch.rand(3, 1, 28, 28))
    k = 7
    with torch.no_grad():
        mu, logvar = net.posterior(x)
        std = (0.5 * logvar).exp()
        torch.manual_seed(1)
        z = mu + std * torch.randn(k, 3, 16)
        log_px = net.log_likelihood(net.decode_logits(z.view(k * 3, 16)), x.repeat(k, 1, 1, 1)).view(k, 3)
        log_w = (log_px + torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
                 - torch.distributions.Normal(mu, std).log_prob(z).sum(-1))
        expected = -(torch.logsumexp(log_w, 0) - math.log(k))
    for chunk_images in (3, 6, 9, 1000):  # 1, 2 and 3 samples a chunk (a short last one), all 7 at once
        torch.manual_seed(1)
        torch.testing.assert_close(net.iwae_nll(x, k, chunk_images=chunk_images), expected, rtol=1e-5, atol=1e-3)


def test_decoding_in_chunks_gives_the_likelihood_of_one_pass_with_its_gradient():
    """An IWAE's training batch (K·B codes) is decoded 512 images a chunk on the CPU: the same values and
    gradients as one pass through the decoder. In float64: a bias's gradient sums ~800,000 cancelling terms,
    and float32 rounds that sum differently from one CPU's kernels to another's (3e-4 relative on one)."""
    from zoo.plugins.vae import IWAE_CHUNK_IMAGES

    torch.manual_seed(0)
    net = zoo.create("vae", latent_dim=4, channels=[4, 8, 8], hidden=[16]).double()
    n = 2 * IWAE_CHUNK_IMAGES + 5
    z, x = torch.randn(n, 4, dtype=torch.float64), torch.bernoulli(torch.rand(n, 1, 28, 28, dtype=torch.float64))
    chunked = net.decoded_log_likelihood(z, None, x)
    whole = net.log_likelihood(net.decode_logits(z), x)
    torch.testing.assert_close(chunked, whole)
    params = list(net.decoder.parameters())
    for a, b in zip(torch.autograd.grad(chunked.sum(), params), torch.autograd.grad(whole.sum(), params)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("model", ["vae", "vampprior", "hvae"])
def test_the_bound_with_no_samples_is_refused(model):
    net = zoo.create(model, latent_dim=2, channels=[4, 8, 8], hidden=[16]).eval()
    for k in (0, -5, 2.5):
        with pytest.raises(ConfigError, match="a whole number of importance samples"):
            net.iwae_nll(torch.zeros(2, 1, 28, 28), k)


def test_keeping_freed_cpu_buffers_is_asked_of_glibc_once():
    from zoo.device import keep_freed_cpu_buffers

    glibc = platform.libc_ver()[0] == "glibc"
    assert keep_freed_cpu_buffers() is glibc  # glibc accepted both settings; elsewhere nothing is asked
    hits = keep_freed_cpu_buffers.cache_info().hits
    assert keep_freed_cpu_buffers() is glibc
    assert keep_freed_cpu_buffers.cache_info().hits == hits + 1  # the second call asks nothing again


def test_gaussian_likelihood_and_beta():
    """`rec` is −log N(x; decoded mean, σ²) summed over pixels, and β weighs the KL term: loss = rec + β·KL."""
    small = {k: TINY[k] for k in ("channels", "hidden")}
    x = torch.rand(4, 1, 28, 28)
    for beta in (0.0, 0.5, 3.0):
        net = zoo.create("vae", latent_dim=2, likelihood="gaussian", sigma=0.5, beta=beta, **small).eval()
        torch.manual_seed(1)
        out = net.loss(Batch(x, torch.zeros(4, dtype=torch.long)))
        assert out["kl"] > 0
        torch.testing.assert_close(out["loss"], out["rec"] + beta * out["kl"])
        # The same z drawn by hand: the Gaussian negative log-likelihood of x around the decoded mean.
        torch.manual_seed(1)
        mu, logvar = net.posterior(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        nll = -torch.distributions.Normal(net.decode(z), 0.5).log_prob(x).flatten(1).sum(1)
        torch.testing.assert_close(out["rec"], nll.mean())


def test_run_eval_labels_binarised_data_and_reports_nats(vae_run):
    result = zoo.evaluate(vae_run, options={"iwae_k": 50})
    assert result["pixels"] == "binarised (dynamic)"
    m = result["metrics"]
    assert {"mse", "neg_elbo_nats", "kl_nats", "nll_iwae_k50_nats"} <= set(m)
    assert m["nll_iwae_k50_nats"] <= m["neg_elbo_nats"] + 1e-3
    # nats per image, the training objective's unit: on the validation set, the best epoch's loss and KL
    best = [r for r in read_metrics(vae_run) if r["best"]][-1]
    val = zoo.evaluate(vae_run, split="val", save=False)["metrics"]
    assert val["neg_elbo_nats"] == pytest.approx(best["val_loss"], rel=1e-3)
    assert val["kl_nats"] == pytest.approx(best["val_kl"], rel=1e-3, abs=1e-6)


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


def test_samples_of_a_model_trained_on_binarised_pixels_are_labelled_pixel_probabilities(vae_run, tmp_path):
    from safetensors import safe_open

    zoo.api.generate(vae_run, n=4, out=tmp_path / "p.safetensors")
    with safe_open(tmp_path / "p.safetensors", "pt") as f:
        assert f.metadata()["sampling"] == "the model's prior, pixel probabilities"
        images = f.get_tensor("images")
    assert not bool(((images == 0) | (images == 1)).all())  # grey levels: each pixel's probability, as said


def test_plain_autoencoder_cannot_generate(digits_run):
    assert_clean_error(invoke("generate", digits_run, "--n", "4"), "cannot sample")


def test_kl_warmup_rises_over_the_first_epoch(tmp_path):
    """With kl_warmup=1 the KL weight in the training loss climbs step by step from 0 to β through epoch 1,
    then stays at β; the weight is observed after every training step through a zoo.train callback."""
    from zoo.training.engine import Callback

    weights = {1: [], 2: []}

    class Record(Callback):
        def on_epoch_start(self, trainer, epoch):
            self.epoch = epoch

        def after_backward(self, trainer, optimizer):
            weights[self.epoch].append(float(trainer.model.warmup) * float(trainer.model.beta))

    zoo.train("vae", dataset="digits", epochs=2, latent_dim=2, beta=2.0, kl_warmup=1, batch_size=128,
              out=tmp_path / "run", log=quiet, progress=False, callbacks=[Record()], **TINY)
    first, second = weights[1], weights[2]
    assert len(first) == len(second) == 11  # ceil(1294 / 128) steps per epoch
    assert first[0] == 0.0 and first[-1] == pytest.approx(2.0 * 10 / 11)
    assert all(b > a for a, b in itertools.pairwise(first))  # rises at every step of the first epoch
    assert second == [2.0] * 11  # warmed up: β from epoch 2 on


@pytest.mark.parametrize("model", ["vae", "vampprior", "hvae"])
def test_a_model_loaded_after_a_warm_up_it_did_not_finish_trains_on_its_whole_objective(tmp_path, model):
    """The warm-up's weight is not saved: a loaded model's loss() (to fine-tune it through run.model) weighs the
    KL at β, as the objective it was trained to, not at 0 (the KL left out, its codes free to drift)."""
    extra = {"pseudo_inputs": 20, "batch_norm": False} if model == "vampprior" else {}
    zoo.train(model, dataset="digits", epochs=1, kl_warmup=5, beta=2.0, batch_size=256, out=tmp_path / "run",
              log=quiet, progress=False, **TINY, **extra)
    net = zoo.load(tmp_path / "run").model
    x = zoo.load_dataset("digits").test_x[:64].float() / 255.0
    torch.manual_seed(0)
    with torch.no_grad():
        terms = net.loss(Batch(x=x, y=None))
    kl = terms["kl"] if "kl" in terms else sum(v for k, v in terms.items() if k.startswith("kl"))
    assert float(net.warmup) == 1.0
    assert float(terms["loss"]) == pytest.approx(float(terms["rec"] + 2.0 * kl), rel=1e-5)


def test_run_nll_of_ones_own_images_is_the_evaluations_bound_and_refuses_what_it_cannot_measure(tmp_path, digits_run):
    zoo.train("vae", dataset="digits", epochs=1, binarize="dynamic", out=tmp_path / "run", log=quiet, progress=False,
              **TINY)
    run = zoo.load(tmp_path / "run")
    x = run.data("test")[0][:100]  # binarised once, as the evaluation measures them
    measured = zoo.evaluate(run, limit=100, save=False, progress=False, options={"iwae_k": 200})["metrics"]
    torch.manual_seed(3)
    before = torch.get_rng_state()
    nll = run.nll(x, k=200)
    assert torch.equal(torch.get_rng_state(), before) and torch.equal(run.nll(x, k=200), nll)  # by its seed
    assert torch.equal(run.nll(x, k=np.int64(200)), nll)  # numpy's whole numbers, as zoo.evaluate takes them
    with pytest.raises(ConfigError, match="Run.nll: got an unexpected keyword argument 'iwae_k'") as e:
        run.nll(x, iwae_k=200)  # zoo.evaluate's option name: a TypeError before
    assert e.value.hint.startswith("Write k=")
    assert nll.shape == (100,) and float(nll.mean()) == pytest.approx(measured["nll_iwae_k200_nats"], abs=0.5)
    grey = zoo.load_dataset("digits").split("test")[0][:4]
    with pytest.raises(ConfigError, match="trained on binarised pixels, and these images hold grey levels") as e:
        run.nll(grey)
    assert "x.float() / 255" in e.value.hint  # uint8, as run.data gives them: the hint's recipe then holds
    assert run.nll(torch.bernoulli(grey.float() / 255), k=5).shape == (4,)
    with pytest.raises(ConfigError, match="importance samples"):
        run.nll(x, k=0)
    with pytest.raises(zoo.errors.CapabilityError, match="has no likelihood"):
        zoo.load(digits_run).nll(grey)
