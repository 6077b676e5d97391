"""Hierarchical VAE: L ≥ 2 stochastic layers z_1 (nearest the image) ... z_L (the top), with a top-down
inference path, as the convHVAE of the VampPrior paper (Tomczak & Welling 2018, §4; their
models/convHVAE_2level.py) and the ladder VAE of Sønderby et al. 2016.

Generative model, top down:

    p(z_L)                  the standard normal, or the VampPrior: (1/K) Σ_k q(z_L | u_k) at K learned
                            pseudo-inputs (`prior = vampprior`, `pseudo_inputs` = K)
    p(z_l | z_{l+1})        a diagonal Gaussian from a small MLP, for l = L−1 .. 1
    p(x | z_1, ..., z_L)    the conv decoder (plugins/conv.py) on all the codes side by side: at L = 2 that is
                            the paper's p(x | z_1, z_2); with `pixel_layers` > 0, gated convs at the image's
                            full resolution on top of its logits, as the paper's convHVAE decoder

Inference, top down too: one conv encoder reads x into features h(x); q(z_L | x) is a linear head on h(x),
and q(z_l | x, z_{l+1}) an MLP on h(x) beside z_{l+1} (itself through a small MLP), for l = L−1 .. 1. Every
code has `latent_dim` units; every log-variance is clamped to [−30, 20] as the VAE's posterior is.

The loss per image is the negative ELBO with one sample of every layer,

    −log p(x | z) + β·Σ_l [log q(z_l | ·) − log p(z_l | ·)],

each KL term estimated at the sampled codes (the top one with the prior's log-density), β warmed up over
`kl_warmup` epochs as in the VAE. `zoo eval --iwae-k K` estimates −log p(x) with K joint samples of all the
layers from q (the VAE's chunking: 512 decoded images a chunk, a running logsumexp; the VampPrior's
components computed once per evaluation); with K = 1 it is one sample of the negative ELBO.

Every conv and linear layer starts from He's initialisation (`weight_init = he`, as the paper's code's
he_init), and the heads of the lower layers' q and p at zero, so that each starts as the standard normal
with a KL of 0. Under PyTorch's default these stacked networks learned so slowly that the model trained
for 20 epochs trailed the one-layer VAE by 10 nats (docs/model-zoo.md).

Capabilities: `encode(x)` is the top layer's posterior mean (`latent_dim` numbers: what `zoo latent`,
`zoo interpolate` and the latent samplers see); `decode(z)` walks down from that top code through the
conditional means of p(z_l | z_{l+1}); `sample(n)` is ancestral sampling: z_L from the prior, then every
lower layer *drawn* from p(z_l | z_{l+1}) (as the paper's generate_x does), and the decoder's Bernoulli
means (or Gaussian means) as the image. The training step is plain (no `training_step` of its own), so
`cuda_graph` can record it like the VAE's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from zoo import ZooModel, hookimpl, hyper_buffer, param, schedule_buffer
from zoo.device import keep_freed_cpu_buffers
from zoo.errors import ConfigError
from zoo.plugins.conv import (INIT_HELP, INITS, activation, build_decoder, build_encoder, build_pixel_head,
                              init_weights)
from zoo.plugins.vae import (IWAE_CHUNK_IMAGES, REUSABLE_BYTES, VAE, VAEConfig, check_samples, importance_nll,
                             samples_per_chunk)
from zoo.plugins.vampprior import (PRIOR_DRAWS, PRIOR_DRAWS_HELP, PRIOR_REFRESH, PRIOR_REFRESH_HELP, PriorComponents,
                                   VampPrior, check_prior_draws, check_pseudo_inputs, log_normal)

PSEUDO_INPUTS = 500  # the default K of the VampPrior (the paper's, for MNIST)
PIXEL_CHANNELS = 64  # the width of the convHVAE's full-resolution gated convs (the paper's)


@dataclass
class HVAEConfig(VAEConfig):
    layers: int = param(2, "stochastic layers L (z_1 nearest the image, z_L the top), each of latent_dim units",
                        low=2, high=16)
    layer_hidden: int = param(256, "width of the MLPs of each stochastic layer: p(z_l|z_l+1), and "
                                   "q(z_l|x, z_l+1) on the encoder's features beside z_l+1 (also the features' width)",
                              low=1, high=65536)
    prior: str = param("standard", "p(z_L), the top layer's prior: standard normal, or the VampPrior (a mixture "
                                   "of the top posteriors at pseudo_inputs learned pseudo-inputs)",
                       choices=("standard", "vampprior"))
    pseudo_inputs: int = param(PSEUDO_INPUTS, "prior=vampprior: K, the learned pseudo-inputs", low=1, high=100_000)
    prior_draws: int = param(PRIOR_DRAWS, "prior=vampprior: " + PRIOR_DRAWS_HELP, low=0, high=100_000)
    prior_refresh: int = param(PRIOR_REFRESH, "prior=vampprior: " + PRIOR_REFRESH_HELP, low=1, high=100_000)
    # He, not PyTorch's default: under the default the stacked MLPs of the layers learned so slowly that the
    # bundled model trailed the one-layer VAE by 10 nats (docs/model-zoo.md).
    weight_init: str = param("he", INIT_HELP, choices=INITS)
    free_bits: float = param(0.0, "training only: nats of KL each layer carries unpenalised (Kingma et al. 2016's "
                                  "free bits, per layer and batch): keeps the lower layers from switching off early; "
                                  "0: the ELBO", low=0.0, high=1000.0)
    pixel_layers: int = param(0, "gated 3×3 conv layers of pixel_channels at the image's full resolution on top of "
                                 "the decoder's logits (the VampPrior paper's convHVAE p(x|z) has 4 of 64): each "
                                 "pixel reads its neighbours' logits, far costlier per step; 0: none", low=0, high=16)
    pixel_channels: int = param(PIXEL_CHANNELS, "pixel_layers > 0: the channels of each", low=1, high=1024)


def gaussian(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(μ, log σ²) from a head's output [..., 2d], the log-variance clamped as VAE.posterior clamps it."""
    mu, logvar = out.float().chunk(2, dim=-1)
    return mu, logvar.clamp(-30.0, 20.0)


class HVAE(VAE):
    name = "hvae"
    description = ("Hierarchical conv VAE: L stochastic layers, top-down inference; standard or VampPrior prior on "
                   "the top; with pixel_layers, the VampPrior paper's convHVAE")
    Config = HVAEConfig
    train_loss_keys = ("kl_warmup", "free_bits")  # each weighs the training loss only

    def __init__(self, config: HVAEConfig, shape, num_classes: int = 0):
        if config.prior == "standard" and config.pseudo_inputs != PSEUDO_INPUTS:
            raise ConfigError(f"hvae: pseudo_inputs={config.pseudo_inputs} counts the VampPrior's pseudo-inputs, "
                              "and prior is standard", "Add --set prior=vampprior, or leave pseudo_inputs out.")
        for key, default, what in (("prior_draws", PRIOR_DRAWS, "draws"),
                                   ("prior_refresh", PRIOR_REFRESH, "refreshes")):
            if config.prior == "standard" and getattr(config, key) != default:
                raise ConfigError(f"hvae: {key}={getattr(config, key)} {what} the VampPrior's pseudo-inputs, and prior "
                                  "is standard", f"Add --set prior=vampprior, or leave {key} out.")
        if config.pixel_layers == 0 and config.pixel_channels != PIXEL_CHANNELS:
            raise ConfigError(f"hvae: pixel_channels={config.pixel_channels} sets the width of the pixel layers, and "
                              "pixel_layers is 0", "Add --set pixel_layers=N (the paper's convHVAE has 4).")
        check_prior_draws(config.prior_draws, config.pseudo_inputs, config.prior_refresh)
        if config.prior == "vampprior" and config.batch_norm:
            raise ConfigError("hvae: batch_norm would normalise the pseudo-inputs by their own batch's statistics "
                              "(and mix them into the running ones)", "Use --set batch_norm=false.")
        ZooModel.__init__(self, config, shape, num_classes)  # the VAE's nets are not built: these replace them
        d, width, steps = config.latent_dim, config.layer_hidden, config.layers - 1
        self.encoder, geometry = build_encoder(config, self.shape, width)
        # The features' activation stays outside the encoder, so He's init gives its last linear layer gain 1, not
        # the ReLU's √2: measured better (validation −ELBO after 4 epochs, seeds 0-2: 105.84, 106.23, 105.40
        # against 106.51, 106.91, 105.80 with √2; docs/model-zoo.md).
        self.act = activation(config)
        self.top = nn.Linear(width, 2 * d)  # q(z_L | x)
        # Step i of the top-down path goes from z_{L-i} to z_{L-i-1}: q and p of the layer below.
        self.q_from_z = nn.ModuleList(nn.Sequential(nn.Linear(d, width), activation(config)) for _ in range(steps))
        self.q_joint = nn.ModuleList(nn.Sequential(nn.Linear(2 * width, width), activation(config),
                                                   nn.Linear(width, 2 * d)) for _ in range(steps))
        self.p_down = nn.ModuleList(nn.Sequential(nn.Linear(d, width), activation(config), nn.Linear(width, width),
                                                  activation(config), nn.Linear(width, 2 * d)) for _ in range(steps))
        self.decoder = build_decoder(config, geometry, config.layers * d)  # p(x | z_1, ..., z_L)
        self.pixel = (build_pixel_head(self.shape[0], config.pixel_channels, config.pixel_layers, config)
                      if config.pixel_layers else None)
        if self.pixel is not None:  # its gated convs hold 2·pixel_channels full-size maps per decoded image
            widest = 4 * 2 * config.pixel_channels * self.shape[1] * self.shape[2]  # bytes
            self.chunk_images = max(1, min(IWAE_CHUNK_IMAGES, REUSABLE_BYTES // widest))
        init_weights(nn.ModuleList([self.top, self.q_from_z, self.q_joint, self.p_down]), config)
        if config.weight_init == "he":  # the lower layers' q and p start as N(0, I): their KL at 0, not heavy-tailed
            for head in (*(q[-1] for q in self.q_joint), *(p[-1] for p in self.p_down)):
                nn.init.zeros_(head.weight)
        hyper_buffer(self, "beta", config.beta)
        schedule_buffer(self, "warmup", 1.0)  # as in the VAE: before_step warms it up in training
        self.prior = VampPrior(config.pseudo_inputs, self.shape) if config.prior == "vampprior" else None
        self.components = (PriorComponents(self.prior, self.posterior, config.prior_draws, config.prior_refresh,
                                           config.latent_dim) if self.prior is not None else None)
        L, d = config.layers, config.latent_dim
        self.codes_note = (f"the codes are the top layer's, z_{L} ({d}-D, of {L} stochastic layers of {d}): "
                           "decoding one sets the lower layers to their conditional means")

    @classmethod
    def check_data(cls, config, data) -> None:
        if config.prior == "vampprior":
            check_pseudo_inputs(config.pseudo_inputs, data)

    # ---------------------------------------------------------------- the networks
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """h(x) [B, layer_hidden]: the conv encoder's features, read by every layer's posterior."""
        return self.act(self.encoder(x))

    def posterior(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z_L | x): the top layer's (μ, log σ²)."""
        return gaussian(self.top(self.features(x)))

    def code_net(self) -> nn.Sequential:
        """The code is the top layer's mean: the encoder alone ends in the features h(x), before their
        activation and the top layer."""
        return nn.Sequential(*self.encoder, self.act, self.top)

    def down(self, feats: torch.Tensor, z: torch.Tensor, sample: bool = True):
        """The top-down inference path from the top code z [..., B, d] (leading sample dimensions allowed),
        given the features h(x) [B, F]: the codes [z_L, ..., z_1], and per layer below the top (top down)
        log q(z_l | x, z_{l+1}) and log p(z_l | z_{l+1}) at them [..., B]. `sample=False` takes the means."""
        codes, log_q, log_p = [z], [], []
        hx = feats.expand(*z.shape[:-1], feats.shape[-1])
        for q_from_z, q_joint, p_down in zip(self.q_from_z, self.q_joint, self.p_down):
            q_mu, q_logvar = gaussian(q_joint(torch.cat([hx, q_from_z(z)], -1)))
            p_mu, p_logvar = gaussian(p_down(z))
            z = q_mu + (0.5 * q_logvar).exp() * torch.randn_like(q_mu) if sample else q_mu
            codes.append(z)
            log_q.append(log_normal(z, q_mu, q_logvar))
            log_p.append(log_normal(z, p_mu, p_logvar))
        return codes, log_q, log_p

    def generative_down(self, z: torch.Tensor, sample: bool, generator=None) -> list[torch.Tensor]:
        """[z_L, ..., z_1] from the top code z [B, d] through p(z_l | z_{l+1}): drawn, or its means."""
        codes = [z]
        for p_down in self.p_down:
            mu, logvar = gaussian(p_down(z))
            z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, device=mu.device, generator=generator) \
                if sample else mu
            z = z.to(self.dtype)  # (gaussian's float32) in the layers' dtype: a half model's next layer takes it
            codes.append(z)
        return codes

    def decode_logits(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The decoder's logits from all the codes side by side, [N, L·d] (top first): not the top code
        alone (that is `decode`)."""
        logits = self.decoder(z)
        return logits if self.pixel is None else self.pixel(logits)

    def reconstruction(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The decoded posterior means, every layer's mean given the mean above it, in [0, 1]."""
        feats = self.features(x)
        codes, _, _ = self.down(feats, self.posterior_from(feats)[0], sample=False)
        return torch.sigmoid(self.decode_logits(torch.cat(codes, -1)))

    def posterior_from(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return gaussian(self.top(feats))

    # ---------------------------------------------------------------- the top layer's prior
    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z_L) of top codes [..., d]."""
        if self.prior is None:
            return super().log_prior(z)
        return self.components.log_prob(z)

    def before_step(self, step):
        super().before_step(step)
        if self.components is not None:
            self.components.before_step()

    def kl(self, mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The top layer's KL term, log q(z_L|x) − log p(z_L), estimated at the sampled top code."""
        return log_normal(z, mu, logvar) - self.log_prior(z)

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.prior is None:
            return super().prior_sample(n, generator)
        return self.components.sample(n, generator).to(self.dtype)  # the mixture is scored in float32

    def prior_fixed(self):
        return self.components.held() if self.prior is not None else super().prior_fixed()

    def prior_codes(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.prior is None:  # the standard normal: zoo takes its quantiles exactly
            raise NotImplementedError
        return self.prior_sample(n, generator)  # the top layer's VampPrior mixture

    # ---------------------------------------------------------------- training
    def layer_terms(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """−log p(x | z) and the KL term of every layer, top first ([B] each), at one joint sample."""
        feats = self.features(x)
        mu, logvar = self.posterior_from(feats)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        codes, log_q, log_p = self.down(feats, z)
        rec = -self.log_likelihood(self.decode_logits(torch.cat(codes, -1)), x)
        return rec, [self.kl(mu, logvar, z), *(q - p for q, p in zip(log_q, log_p))]

    def _terms(self, x: torch.Tensor, y: torch.Tensor | None = None):
        rec, kls = self.layer_terms(x)
        return rec, torch.stack(kls).sum(0)

    def _losses(self, x: torch.Tensor, weight, free_bits: float = 0.0) -> dict[str, torch.Tensor]:
        """The loss (−ELBO with the KL terms at `weight`), its parts and every layer's KL. With `free_bits` each
        layer's batch-mean KL below that many nats costs nothing: its gradient stops pushing it to the prior."""
        rec, kls = self.layer_terms(x)
        kl = torch.stack(kls).sum(0)
        penalised = sum(k.mean().clamp(min=free_bits) for k in kls) if free_bits > 0 else kl.mean()
        out = {"loss": rec.mean() + weight * penalised, "rec": rec.mean(), "kl": kl.mean()}
        top = self.config.layers
        out.update({f"kl_z{top - i}": k.mean() for i, k in enumerate(kls)})  # which layers carry information
        return out

    def loss(self, batch):
        return self._losses(batch.x, self.warmup * self.beta, self.config.free_bits)

    def validation_step(self, batch):
        out = self._losses(batch.x, self.beta)
        out["neg_elbo"] = out["rec"] + out["kl"]  # the loss at β = 1: comparable across β (loss_keys)
        out["mse"] = F.mse_loss(self.reconstruction(batch.x).float(), batch.x)
        return out

    # ---------------------------------------------------------------- capabilities
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Top codes [B, d] to images: every lower layer the mean of p(z_l | z_{l+1})."""
        return torch.sigmoid(self.decode_logits(torch.cat(self.generative_down(z, sample=False), -1)))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Ancestral sampling: z_L from the prior, each lower layer drawn from p(z_l | z_{l+1})."""
        codes = self.generative_down(self.prior_sample(n, generator), sample=True, generator=generator)
        return torch.sigmoid(self.decode_logits(torch.cat(codes, -1)))

    # ---------------------------------------------------------------- evaluation
    def log_weights(self, x: torch.Tensor, y: torch.Tensor | None, mu: torch.Tensor, logvar: torch.Tensor,
                    eps: torch.Tensor, prior_weight: float = 1.0) -> torch.Tensor:
        """The VAE's log_weights for this model: eps [s, B, d] places the top codes, the layers below are
        drawn from q (the global generator), [s, B] importance log-weights of the joint samples."""
        return self.joint_log_weights(x, self.features(x), mu, logvar, eps, prior_weight)

    def joint_log_weights(self, x, feats, mu, logvar, eps, prior_weight: float = 1.0) -> torch.Tensor:
        """log p(x | z) + w·[log p(z_L) + Σ log p(z_l | z_{l+1}) − Σ log q(z_l | ·)] for s joint samples of
        each image, the top ones z_L = μ + σ·ε (eps [s, B, d]): [s, B]."""
        z = self.codes(mu, logvar, eps)
        codes, log_q, log_p = self.down(feats, z)
        ratio = self.log_prior(z) - log_normal(z, mu, logvar) + sum(p - q for p, q in zip(log_p, log_q))
        return self.codes_log_likelihood(x, None, torch.cat(codes, -1)) + prior_weight * ratio

    @torch.no_grad()
    def iwae_nll(self, x: torch.Tensor, k: int, y: torch.Tensor | None = None,
                 chunk_images: int | None = None) -> torch.Tensor:
        """−log p(x) per image, estimated with k joint samples of all the layers from q (the IWAE bound):
        the encoder runs once, the samples go through the top-down path and the decoder `chunk_images`
        decoded images at a time, and their log-weights are summed as they come (a running logsumexp)."""
        check_samples(k)
        if x.device.type == "cpu":
            keep_freed_cpu_buffers()
        feats = self.features(x)
        mu, logvar = self.posterior_from(feats)
        b, d = mu.shape
        per_chunk = samples_per_chunk(k, b, chunk_images or self.chunk_images)
        with self.prior_fixed():
            draw = lambda s: torch.randn((s, b, d), device=x.device, dtype=mu.dtype)  # noqa: E731
            return importance_nll(lambda s: self.joint_log_weights(x, feats, mu, logvar, draw(s)),
                                  k, per_chunk, b, x.device)


@hookimpl
def zoo_models():
    return [HVAE]
