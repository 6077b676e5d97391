"""VAE: a convolutional variational autoencoder (Kingma & Welling) with Bernoulli or Gaussian likelihood.

Losses are per image, in nats: `loss` is the negative ELBO with the KL term weighted by β (warmed
up over `kl_warmup` epochs). `zoo eval --iwae-k K` adds an importance-weighted estimate of −log p(x)
(the IWAE bound with K samples, Burda et al.), batched on the device; it costs K decoder passes per
image, so it is asked for, never run by default.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from zoo import ZooModel, hookimpl, hyper_buffer, param, schedule_buffer
from zoo.analysis.metrics import reconstruction_metrics
from zoo.device import keep_freed_cpu_buffers
from zoo.errors import ConfigError
from zoo.plugins.conv import ConvNetConfig, build_decoder, build_encoder

LOG_2PI = math.log(2 * math.pi)
# Decoded images per chunk of the IWAE bound: the decoder's buffers for 512 MNIST-sized images stay small
# enough (tens of MB) for the allocator to reuse them, where 65,536 at a time (the old size) mapped and
# unmapped gigabytes from the kernel each chunk, and the process spent as much time in the kernel as computing.
IWAE_CHUNK_IMAGES = 512
# The largest freed CPU buffer glibc keeps for reuse once keep_freed_cpu_buffers has run: a model whose decoder
# holds wider buffers per image decodes fewer images a chunk (its `chunk_images`), or each chunk faults in anew.
REUSABLE_BYTES = 32 * 1024 * 1024


IWAE_K_MAX = 100_000  # as `zoo eval --iwae-k` takes: 10,000 test images at K = 100,000 are days of a GPU


def check_samples(k) -> None:
    """The IWAE bound's K: a whole number of importance samples, 1 .. IWAE_K_MAX."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= IWAE_K_MAX:
        raise ConfigError(f"the IWAE bound needs k, a whole number of importance samples from 1 to {IWAE_K_MAX:,}, "
                          f"got {k!r:.60}")


def importance_nll(log_weights: Callable[[int], torch.Tensor], k: int, per_chunk: int, batch: int,
                   device: torch.device) -> torch.Tensor:
    """−log p(x) per image by the IWAE estimator, −log (1/k Σ exp log w), from k importance samples drawn
    `per_chunk` at a time: `log_weights(s)` draws s more and returns their log-weights [s, B], summed as
    they come (a running logsumexp), so memory does not grow with k."""
    total = torch.full((batch,), -math.inf, device=device)
    for start in range(0, k, per_chunk):
        total = torch.logaddexp(total, torch.logsumexp(log_weights(min(per_chunk, k - start)), 0))
    return -(total - math.log(k))


def samples_per_chunk(k: int, batch: int, chunk_images: int) -> int:
    """Samples of each of `batch` images decoded at once: about `chunk_images` decoded images a chunk."""
    return max(1, min(k, chunk_images // max(batch, 1)))


@dataclass
class VAEConfig(ConvNetConfig):
    likelihood: str = param("bernoulli", "p(x|z): bernoulli (cross-entropy) or gaussian (squared error, fixed sigma)",
                            choices=("bernoulli", "gaussian"))
    sigma: float = param(0.1, "gaussian likelihood: the fixed standard deviation of each pixel", low=1e-4, high=10.0)
    beta: float = param(1.0, "weight of the KL term (β-VAE); 1 is the ELBO", low=0.0, high=1000.0)
    kl_warmup: int = param(0, "epochs over which the KL weight rises linearly from 0 to β (0: none)", low=0,
                           high=100_000)


class VAE(ZooModel):
    name = "vae"
    description = "Variational autoencoder: conv encoder -> N(mu, sigma²) -> decoder; sampling from the prior"
    Config = VAEConfig
    # The loss is rec + β·KL: the −ELBO (β = 1) compares any two βs. Another likelihood is another measure
    # of every figure but the reconstruction's MSE.
    loss_keys = {"beta": ("neg_elbo", "rec", "mse"), "likelihood": ("mse",)}
    train_loss_keys = ("kl_warmup",)  # the warm-up weighs the KL in training only (validation_step: at β)
    test_keys = {"likelihood": ("mse", "bce", "psnr")}  # its nats are of another density; reconstructions alike
    chunk_images = IWAE_CHUNK_IMAGES  # decoded images per chunk of the bound on the CPU

    def __init__(self, config: VAEConfig, shape, num_classes: int = 0):
        super().__init__(config, shape, num_classes)
        c, h, w = self.shape
        extra = self.condition_size()
        self.encoder, geometry = build_encoder(config, (c + extra, h, w), 2 * config.latent_dim)
        geometry["channels"][0] = c  # the decoder makes the image alone, not the condition's channels
        self.decoder = build_decoder(config, geometry, config.latent_dim + extra)
        hyper_buffer(self, "beta", config.beta)
        # The fraction of β in the training loss: before_step sets it while the KL warms up; a model built or
        # loaded outside training has finished warming up (its loss() is the objective it was trained to)
        schedule_buffer(self, "warmup", 1.0)

    # ---------------------------------------------------------------- what a conditional VAE changes
    def condition_size(self) -> int:
        """Features of the condition given to the encoder (as extra image channels) and the decoder
        (beside z): none for the plain VAE (plugins/cvae.py conditions on the class)."""
        return 0

    def encoder_input(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return x

    def decoder_input(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return z

    # ---------------------------------------------------------------- the model
    def posterior(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(self.encoder_input(x, y)).float().chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    def decode_logits(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(self.decoder_input(z, y))

    def reconstruction(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The decoded posterior mean, in [0, 1]."""
        return torch.sigmoid(self.decode_logits(self.posterior(x, y)[0], y))

    def log_likelihood(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x|z) per image, summed over pixels: logits [N, C, H, W] (or [S, B, C, H, W] against
        x [B, C, H, W], never copied S times)."""
        logits = logits.float()
        if self.config.likelihood == "bernoulli":
            ll = -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none")
        else:
            s = self.config.sigma
            ll = -0.5 * ((x - torch.sigmoid(logits)) / s) ** 2 - math.log(s) - 0.5 * LOG_2PI
        return ll.flatten(-3).sum(-1)  # logits [..., C, H, W] against x broadcast to them

    def reconstruction_error(self, recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """−log p(x | recon) in the loss's units, nats summed over an image's pixels and averaged over the
        images, of reconstructions in [0, 1] (for zoo's callbacks: a per-pixel mean beside a loss of ~100 nats
        an image weighed nothing): cross-entropy for a Bernoulli likelihood, else the Gaussian's squared error
        over σ² (its constant terms left out)."""
        r = recon.float()
        if self.config.likelihood == "bernoulli":
            per_pixel = F.binary_cross_entropy(r.clamp(1e-6, 1 - 1e-6), x, reduction="none")
        else:
            per_pixel = 0.5 * ((x - r) / self.config.sigma) ** 2
        return per_pixel.flatten(1).sum(1).mean()

    # ---------------------------------------------------------------- the prior (VampPrior changes it)
    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) of codes [..., d], summed over d: the standard normal."""
        return -0.5 * (z.pow(2).sum(-1) + LOG_2PI * z.shape[-1])

    def kl(self, mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """KL(q(z|x) || p(z)) per image: exact for the standard normal (a prior without a closed form
        estimates it from the code z drawn from q)."""
        return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n codes drawn from p(z)."""
        # drawn in float32 and cast: a half or double model draws the same codes as the float32 one
        return torch.randn((n, self.config.latent_dim), device=self.device, generator=generator).to(self.dtype)

    def prior_fixed(self):
        """A context in which the prior's parameters are computed once (evaluation without gradients):
        nothing to do for the standard normal."""
        return contextlib.nullcontext()

    def _terms(self, x: torch.Tensor, y: torch.Tensor | None = None):
        mu, logvar = self.posterior(x, y)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        rec = -self.log_likelihood(self.decode_logits(z, y), x)
        return rec, self.kl(mu, logvar, z)

    def loss(self, batch):
        rec, kl = self._terms(batch.x, batch.y)
        return {"loss": (rec + self.warmup * self.beta * kl).mean(), "rec": rec.mean(), "kl": kl.mean()}

    def before_step(self, step):
        warm = self.config.kl_warmup
        self.warmup.fill_(min(1.0, (step.epoch - 1 + step.step_in_epoch) / warm) if warm else 1.0)

    def validation_step(self, batch):
        rec, kl = self._terms(batch.x, batch.y)
        recon = self.reconstruction(batch.x, batch.y)
        return {"loss": (rec + self.beta * kl).mean(), "rec": rec.mean(), "kl": kl.mean(),
                "neg_elbo": (rec + kl).mean(), "mse": F.mse_loss(recon.float(), batch.x)}

    # ---------------------------------------------------------------- capabilities
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.posterior(x)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decode_logits(z))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.reconstruction(x)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.decode(self.prior_sample(n, generator))

    # ---------------------------------------------------------------- evaluation
    @torch.no_grad()
    def iwae_nll(self, x: torch.Tensor, k: int, y: torch.Tensor | None = None,
                 chunk_images: int | None = None) -> torch.Tensor:
        """−log p(x) per image (−log p(x|y) given a condition), estimated with k importance samples from
        q(z|x) (the IWAE bound). The k samples go through the decoder `chunk_images` decoded images at a
        time, and their log-weights are summed as they come (a running logsumexp), so memory does not grow
        with k and the same few buffers are reused from chunk to chunk."""
        check_samples(k)
        if x.device.type == "cpu":
            keep_freed_cpu_buffers()
        mu, logvar = self.posterior(x, y)
        b, d = mu.shape
        per_chunk = samples_per_chunk(k, b, chunk_images or self.chunk_images)
        eps = torch.empty((per_chunk, b, d), device=x.device, dtype=mu.dtype)  # one buffer, refilled chunk by chunk
        with self.prior_fixed():
            return importance_nll(lambda s: self.log_weights(x, y, mu, logvar, eps[:s].normal_()), k, per_chunk, b,
                                  x.device)

    def log_weights(self, x: torch.Tensor, y: torch.Tensor | None, mu: torch.Tensor, logvar: torch.Tensor,
                    eps: torch.Tensor, prior_weight: float = 1.0) -> torch.Tensor:
        """log p(x|z) + w·(log p(z) − log q(z|x)) for the s codes z = μ + σ·ε of each image, ε [s, B, d]
        drawn by the caller: [s, B], the importance log-weights of the IWAE bound (w = 1; a smaller w is
        a KL warm-up's share). The one place that scores codes, for the evaluation bound and the IWAE's
        training loss (which also uses its two parts, below, on their own)."""
        z = self.codes(mu, logvar, eps)
        return self.codes_log_likelihood(x, y, z) + prior_weight * self.log_prior_ratio(z, logvar, eps)

    @staticmethod
    def codes(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """z = μ + σ·ε: [s, B, d] codes from the posterior."""
        return torch.addcmul(mu, (0.5 * logvar).exp(), eps)

    def codes_log_likelihood(self, x: torch.Tensor, y: torch.Tensor | None, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) [s, B] of the s codes [s, B, d] of each image of x. The images are never copied s
        times (s·B of them was 20 GB for k=5000 and a batch of 1294): each block of codes is decoded and
        scored against x broadcast. On the CPU a block is about `chunk_images` decoded images (see
        `decoded_log_likelihood`); elsewhere all s·B are decoded at once."""
        s, b, d = z.shape
        if z.device.type != "cpu" or s * b <= self.chunk_images:
            return self._score_codes(x, y, z)
        keep_freed_cpu_buffers()
        rows, cols = samples_per_chunk(s, b, self.chunk_images), min(b, self.chunk_images)
        blocks = [torch.cat([self._score_codes(x[j:j + cols], None if y is None else y[j:j + cols],
                                               z[i:i + rows, j:j + cols]) for j in range(0, b, cols)], 1)
                  for i in range(0, s, rows)]
        return torch.cat(blocks)

    def _score_codes(self, x: torch.Tensor, y: torch.Tensor | None, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) [s, B] of codes [s, B, d] decoded in one pass."""
        s, b, d = z.shape
        ys = None if y is None else y.unsqueeze(0).expand(s, b).reshape(s * b)
        logits = self.decode_logits(z.reshape(s * b, d), ys)
        return self.log_likelihood(logits.view(s, b, *logits.shape[1:]), x)

    def log_prior_ratio(self, z: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """log p(z) − log q(z|x) [s, B] of codes z = μ + σ·ε [s, B, d]."""
        log_qz = -0.5 * (eps.pow(2).sum(-1) + LOG_2PI * z.shape[-1] + logvar.sum(-1))
        return self.log_prior(z) - log_qz

    def decoded_log_likelihood(self, z: torch.Tensor, y: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
        """log p(x|z) of codes z [N, d] for their images x [N, C, H, W], decoded `chunk_images` at a time
        on the CPU: there every buffer of a chunk stays small enough for the C library to reuse (see
        zoo.device.keep_freed_cpu_buffers), where one pass over the K·B codes of an IWAE's training batch
        would map and unmap hundreds of MB per layer. A batch-normalised decoder normalises each chunk by
        its own statistics."""
        n, step = z.shape[0], self.chunk_images
        if z.device.type != "cpu" or n <= step:
            return self.log_likelihood(self.decode_logits(z, y), x)
        keep_freed_cpu_buffers()
        parts = [self.log_likelihood(self.decode_logits(z[i:i + step], None if y is None else y[i:i + step]),
                                     x[i:i + step])
                 for i in range(0, n, step)]
        return torch.cat(parts)

    def metrics(self, batch, iwae_k: int | None = None, **options):
        """Reconstruction metrics, the negative ELBO and its KL term; with `iwae_k` K (≥ 1) also the IWAE
        bound `nll_iwae_kK_nats` (costly: K decoder passes per image, hence off by default)."""
        x, y = batch.x, batch.y
        out = reconstruction_metrics(x, self.reconstruction(x, y))
        rec, kl = self._terms(x, y)
        out["neg_elbo_nats"] = rec + kl
        out["kl_nats"] = kl
        if iwae_k is not None:  # 0 or less is refused (check_samples), never taken for "off"
            out[f"nll_iwae_k{iwae_k}_nats"] = self.iwae_nll(x, iwae_k, y)
        return out


@hookimpl
def zoo_models():
    return [VAE]
