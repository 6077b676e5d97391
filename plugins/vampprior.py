"""VampPrior VAE (Tomczak & Welling 2018): the prior is the mixture of the encoder's own posteriors at K
learned pseudo-inputs,

    p(z) = (1/K) Σ_k q(z | u_k),

so the prior learns where the codes of real images lie instead of pulling them to N(0, I). The pseudo-inputs
u_k are images (clipped to [0, 1], as the paper's hard-tanh does), initialised near grey 0.05 as in the
paper's MNIST experiments, and trained with everything else. There is no closed-form KL to this prior: the
loss estimates it from the sampled code, log q(z|x) − log p(z). Sampling picks a pseudo-input at random
and draws from its posterior.

`VampPrior` is the prior alone (the pseudo-inputs and the mixture's density), so that other models can
use it: the hierarchical VAE puts it on its top layer.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from zoo import hookimpl, param, step_state_buffer
from zoo.errors import ConfigError
from zoo.plugins.conv import INIT_HELP, INITS
from zoo.plugins.vae import LOG_2PI, VAE, VAEConfig

PSEUDO_MEAN, PSEUDO_STD = 0.05, 0.01  # the paper's initialisation of the pseudo-inputs on MNIST
PRIOR_DRAWS = 0
PRIOR_DRAWS_HELP = ("pseudo-inputs drawn each training step to carry the prior's gradient to the encoder and to "
                    "them, by their share of the batch's codes (an unbiased estimate, cheaper); 0: all, exactly")
PRIOR_REFRESH = 1
PRIOR_REFRESH_HELP = ("prior_draws > 0: training steps between encodings of every pseudo-input (without gradient, "
                      "the prior's value); in between the last ones are reused, each drawn one updated as it is "
                      "encoded again: components a few steps stale, far cheaper steps; 1: every step")
Encode = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # images -> the posterior's (μ, logvar)


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; μ, diag(exp(logvar))) summed over the last dimension (shapes broadcast)."""
    return -0.5 * (((z - mu) ** 2) * torch.exp(-logvar) + logvar + LOG_2PI).sum(-1)


class VampPrior(nn.Module):
    """K pseudo-inputs [K, C, H, W] and the density of the mixture of posteriors at them."""

    def __init__(self, count: int, shape: tuple[int, int, int]):
        super().__init__()
        self.pseudo = nn.Parameter(torch.empty((count, *shape)).normal_(PSEUDO_MEAN, PSEUDO_STD))

    def inputs(self) -> torch.Tensor:
        return self.pseudo.clamp(0.0, 1.0)

    @staticmethod
    def log_components(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """log N(z_n; μ_k, σ_k²) [N, K] for codes z [N, d] and components' μ, logvar [K, d]. The squared
        distances come from two matrix products, so no [N, K, d] tensor is ever made (N·K·d would be 500 MB
        for an IWAE chunk against 500 components)."""
        d = z.shape[-1]
        inv = torch.exp(-logvar)                                                    # [K, d]
        quad = (z * z) @ inv.T - 2.0 * z @ (mu * inv).T + (mu * mu * inv).sum(-1)   # [N, K]
        return -0.5 * (quad + logvar.sum(-1) + d * LOG_2PI)

    @classmethod
    def log_prob(cls, z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """log (1/K) Σ_k N(z; μ_k, σ_k²) for codes z [..., d], given the K components' μ, logvar [K, d]."""
        log_comp = cls.log_components(z.reshape(-1, z.shape[-1]), mu, logvar)
        return (torch.logsumexp(log_comp, dim=-1) - math.log(mu.shape[0])).reshape(z.shape[:-1])

    def log_prob_drawn(self, z: torch.Tensor, encode: Encode, draws: int,
                       cache: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """log p(z) for codes z [..., d], exact in value and in its gradient to z, with the gradient to the
        components (the encoder and the pseudo-inputs) estimated from `draws` of them instead of all K.

        ∇ log p(z_n) through the components is Σ_k r_nk ∇ log N(z_n; μ_k, σ_k²), r_nk the responsibility of
        component k for code n. Components are drawn with replacement by their share of the batch's N codes,
        m_k = Σ_n r_nk, and each draw of k is weighted N/(draws·m_k): its expected count times that weight is
        1, so the estimate is unbiased. All K are still encoded, without gradient (a forward pass is about a
        third of a forward and backward); only the drawn ones are encoded again with it.

        With a `cache` (μ, logvar [K, d] encoded some steps ago) no pseudo-input is encoded without gradient:
        the value and the gradient to z come from the cache, and the drawn ones' new posteriors are written
        into it (in place)."""
        inputs = self.inputs()
        if cache is None:
            with torch.no_grad():
                mu, logvar = encode(inputs)
        else:
            mu, logvar = cache
        flat = z.reshape(-1, z.shape[-1])
        log_comp = self.log_components(flat, mu, logvar)                # [N, K]: the gradient to z only
        value = torch.logsumexp(log_comp, dim=-1) - math.log(mu.shape[0])
        with torch.no_grad():
            share = torch.softmax(log_comp, dim=-1)                     # r [N, K]
            mass = share.sum(0)                                         # m [K], summing to N
            # Inverse-CDF draws: fixed shapes and no host sync, so a CUDA graph can record them (multinomial
            # cannot be captured on every torch version).
            cdf = mass.cumsum(0)
            u = torch.rand(draws, device=cdf.device, dtype=cdf.dtype) * cdf[-1]
            picks = torch.searchsorted(cdf, u, right=True).clamp_(max=mass.shape[0] - 1)
            weight = share[:, picks] * (flat.shape[0] / draws / mass[picks])   # [N, draws]
        fresh = encode(inputs[picks])
        drawn = self.log_components(flat.detach(), *fresh)                     # [N, draws]: the gradient to them
        if cache is not None:
            with torch.no_grad():
                for held, new in zip(cache, fresh):
                    held.index_copy_(0, picks, new.to(held.dtype))
        surrogate = (weight * drawn).sum(-1)
        return (value + surrogate - surrogate.detach()).reshape(z.shape[:-1])

    @staticmethod
    def sample(n: int, mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None):
        """n codes: a component chosen uniformly, then a draw from its Gaussian."""
        pick = torch.randint(0, mu.shape[0], (n,), device=mu.device, generator=generator)
        eps = torch.randn((n, mu.shape[1]), device=mu.device, generator=generator).to(mu.dtype)
        return mu[pick] + (0.5 * logvar[pick]).exp() * eps


class PriorComponents:
    """A model's VampPrior at work: its components are the model's posteriors at the pseudo-inputs
    (`encode`), computed with every step's gradient (exactly, or estimated from `draws` of them while
    training), or once for a block of evaluation without gradients (`held`: an IWAE bound scores thousands
    of codes against the same pseudo-inputs).

    With `refresh` > 1 (and draws) a training step encodes only the drawn pseudo-inputs: `before_step`
    encodes all of them every `refresh` steps into a cache on the prior (a `step_state_buffer`, so a
    recorded CUDA graph reads it anew), which the steps in between reuse and update."""

    def __init__(self, prior: VampPrior, encode: Encode, draws: int = 0, refresh: int = PRIOR_REFRESH,
                 latent_dim: int = 0):
        self.prior, self.encode, self.draws, self.refresh = prior, encode, draws, refresh
        self.fixed: tuple[torch.Tensor, torch.Tensor] | None = None
        self.since_refresh: int | None = None  # steps since the cache was filled; None: not yet (or resumed)
        if refresh > 1:
            count = prior.pseudo.shape[0]
            step_state_buffer(prior, "cached_mu", (count, latent_dim))
            step_state_buffer(prior, "cached_logvar", (count, latent_dim))

    def get(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The components' (μ, logvar) [K, d]."""
        return self.fixed if self.fixed is not None else self.encode(self.prior.inputs())

    def before_step(self) -> None:
        """Encode every pseudo-input into the cache when `refresh` steps have passed (or none is there yet)."""
        if self.refresh == 1:
            return
        if self.since_refresh is None or self.since_refresh >= self.refresh:
            with torch.no_grad():
                for held, new in zip((self.prior.cached_mu, self.prior.cached_logvar), self.get()):
                    held.copy_(new)
            self.since_refresh = 0
        self.since_refresh += 1

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        if self.fixed is None and self.draws and torch.is_grad_enabled():
            if self.refresh > 1 and self.since_refresh is None:  # a step taken outside the engine's loop
                self.before_step()
            cache = (self.prior.cached_mu, self.prior.cached_logvar) if self.refresh > 1 else None
            return self.prior.log_prob_drawn(z, self.encode, self.draws, cache)
        return self.prior.log_prob(z, *self.get())

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        with torch.no_grad():
            return self.prior.sample(n, *self.get(), generator=generator)

    @contextlib.contextmanager
    def held(self):
        with torch.no_grad():
            self.fixed = self.get()
        try:
            yield
        finally:
            self.fixed = None


@dataclass
class VampConfig(VAEConfig):
    pseudo_inputs: int = param(500, "K: learned pseudo-inputs whose posteriors make the prior (a mixture of K)",
                               low=1, high=100_000)
    prior_draws: int = param(PRIOR_DRAWS, PRIOR_DRAWS_HELP, low=0, high=100_000)
    prior_refresh: int = param(PRIOR_REFRESH, PRIOR_REFRESH_HELP, low=1, high=100_000)
    # He, not PyTorch's default: without batch norm (which the pseudo-inputs forbid) the default shrinks the
    # signal; the bundled model went from 87.69 to 85.48 nats after 40 epochs with it (docs/model-zoo.md).
    weight_init: str = param("he", INIT_HELP, choices=INITS)


def check_prior_draws(draws: int, count: int, refresh: int = PRIOR_REFRESH) -> None:
    """Drawing as many pseudo-inputs as there are costs more than taking them all exactly; a cache refreshed
    every few steps needs drawn pseudo-inputs to carry the prior's gradient in between."""
    if draws > count:
        raise ConfigError(f"prior_draws={draws} is more than the pseudo_inputs={count}",
                          f"Use at most {count}, or 0 to take every pseudo-input exactly.")
    if refresh > 1 and draws == 0:
        raise ConfigError(f"prior_refresh={refresh} reuses the components between steps, and prior_draws is 0 (every "
                          "pseudo-input encoded exactly at every step)",
                          "Add --set prior_draws=N (e.g. 128), or leave prior_refresh out.")


def check_pseudo_inputs(count: int, data) -> None:
    """More pseudo-inputs than training images cannot be learned: the prior would memorise the set."""
    n = int(data.train_x.shape[0])
    if count > n:
        raise ConfigError(f"pseudo_inputs={count} is more than the {n} training images",
                          f"Use at most {n} (the paper uses 500 for MNIST's 50,000): --set pseudo_inputs=N.")


class VampPriorVAE(VAE):
    name = "vampprior"
    description = "VAE with the VampPrior: a mixture of the posteriors at K learned pseudo-inputs as the prior"
    Config = VampConfig

    def __init__(self, config: VampConfig, shape, num_classes: int = 0):
        if config.batch_norm:
            raise ConfigError("vampprior: batch_norm would normalise the pseudo-inputs by their own batch's "
                              "statistics (and mix them into the running ones)", "Use --set batch_norm=false.")
        check_prior_draws(config.prior_draws, config.pseudo_inputs, config.prior_refresh)
        super().__init__(config, shape, num_classes)
        self.prior = VampPrior(config.pseudo_inputs, self.shape)
        self.components = PriorComponents(self.prior, self.posterior, config.prior_draws, config.prior_refresh,
                                          config.latent_dim)

    @classmethod
    def check_data(cls, config, data) -> None:
        check_pseudo_inputs(config.pseudo_inputs, data)

    def before_step(self, step):
        super().before_step(step)
        self.components.before_step()

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        return self.components.log_prob(z)

    def kl(self, mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log q(z|x) − log p(z) at the sampled code: an unbiased estimate of the KL term."""
        return log_normal(z, mu, logvar) - self.log_prior(z)

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.components.sample(n, generator).to(self.dtype)  # the mixture is scored in float32

    def prior_codes(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.prior_sample(n, generator)  # a mixture: its quantiles are no N(0, 1)'s

    def prior_fixed(self):
        return self.components.held()


@hookimpl
def zoo_models():
    return [VampPriorVAE]
