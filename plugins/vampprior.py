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

from zoo import hookimpl, param
from zoo.errors import ConfigError
from zoo.plugins.vae import LOG_2PI, VAE, VAEConfig

PSEUDO_MEAN, PSEUDO_STD = 0.05, 0.01  # the paper's initialisation of the pseudo-inputs on MNIST


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
    def log_prob(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """log (1/K) Σ_k N(z; μ_k, σ_k²) for codes z [..., d], given the K components' μ, logvar [K, d].
        The squared distances to every component come from two matrix products, so no [N, K, d] tensor is
        ever made (N·K·d would be 500 MB for an IWAE chunk against 500 components)."""
        lead, d = z.shape[:-1], z.shape[-1]
        flat = z.reshape(-1, d)
        inv = torch.exp(-logvar)                                            # [K, d]
        quad = (flat * flat) @ inv.T - 2.0 * flat @ (mu * inv).T + (mu * mu * inv).sum(-1)  # [N, K]
        log_comp = -0.5 * (quad + logvar.sum(-1) + d * LOG_2PI)
        return (torch.logsumexp(log_comp, dim=-1) - math.log(mu.shape[0])).reshape(lead)

    @staticmethod
    def sample(n: int, mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None):
        """n codes: a component chosen uniformly, then a draw from its Gaussian."""
        pick = torch.randint(0, mu.shape[0], (n,), device=mu.device, generator=generator)
        eps = torch.randn((n, mu.shape[1]), device=mu.device, generator=generator)
        return mu[pick] + (0.5 * logvar[pick]).exp() * eps


class FixedComponents:
    """The prior's components computed once, for a block of evaluation without gradients (an IWAE bound
    scores thousands of codes against the same pseudo-inputs)."""

    def __init__(self, compute: Callable[[], tuple[torch.Tensor, torch.Tensor]]):
        self.compute = compute
        self.fixed: tuple[torch.Tensor, torch.Tensor] | None = None

    def get(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.fixed if self.fixed is not None else self.compute()

    @contextlib.contextmanager
    def held(self):
        with torch.no_grad():
            self.fixed = self.compute()
        try:
            yield
        finally:
            self.fixed = None


@dataclass
class VampConfig(VAEConfig):
    pseudo_inputs: int = param(500, "K: learned pseudo-inputs whose posteriors make the prior (a mixture of K)",
                               low=1, high=100_000)


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
        super().__init__(config, shape, num_classes)
        self.prior = VampPrior(config.pseudo_inputs, self.shape)
        self.components = FixedComponents(lambda: self.posterior(self.prior.inputs()))

    @classmethod
    def check_data(cls, config, data) -> None:
        check_pseudo_inputs(config.pseudo_inputs, data)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        return self.prior.log_prob(z, *self.components.get())

    def kl(self, mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log q(z|x) − log p(z) at the sampled code: an unbiased estimate of the KL term."""
        return log_normal(z, mu, logvar) - self.log_prior(z)

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        with torch.no_grad():
            return self.prior.sample(n, *self.components.get(), generator=generator)

    def prior_fixed(self):
        return self.components.held()


@hookimpl
def zoo_models():
    return [VampPriorVAE]
