"""Latent samplers that are learned densities: a masked autoregressive flow (`maf`, Papamakarios et al.
2017) and the two-stage VAE (`two-stage`, Dai & Wipf 2019), each a small network fitted by maximum
likelihood on a run's training codes.

Both standardise the codes (the mean and standard deviation are saved with the weights) and are fitted
by one loop, `fit_nll`: minibatch Adam on a per-code negative log-likelihood, stopped early on a
held-out tenth of the codes, the best weights kept. Every random number of a fit comes from a generator
seeded with the fit's seed, so a refit gives the same sampler; sampling draws only from the caller's
generator. The state is every weight (and the MAF's variable orders) as tensors.
"""

from __future__ import annotations

import copy
import math
from typing import Callable

import torch
from torch import nn

from zoo import hookimpl
from zoo.analysis.latent_samplers import LatentSampler, check_state
from zoo.analysis.metrics import progress_bar
from zoo.errors import RunError
from zoo.plugins.samplers import GaussianMixture, gmm_fits

MIN_CODES = 500        # a learned density needs at least this many codes ...
CODES_PER_DIM = 20     # ... and this many per latent dimension
HELD_OUT = 0.1         # the fraction of the codes that decides when fitting stops
LOG_SCALE_BOUND = 5.0  # a MADE's log-scales are softly bounded to ±5, so that inverting it cannot overflow
# A two-stage VAE whose decoder variance γ (in units of the standardised codes) ends at or above this has
# collapsed: on seven MNIST models' codes γ ended at 0.18-0.22 for the four whose samples scored FID 16-40 and
# at 0.72-0.82 for the three IWAEs' (FID 80-1,360, recall 0.06-0.24; docs/benchmarks.md).
COLLAPSED_GAMMA = 0.5


def min_codes(dim: int) -> int:
    return max(MIN_CODES, CODES_PER_DIM * dim)


def _enough_codes(name: str, codes: torch.Tensor) -> None:
    n, dim = codes.shape
    if n < min_codes(dim):  # the run's training set, not the command, is short of them: exit 1
        # gmm named only where it can fit these codes (a full covariance a component): else it refuses them too
        fitting = "gaussian or gmm" if gmm_fits(codes, GaussianMixture.components) else "gaussian"
        raise RunError(
            f"the '{name}' sampler needs at least {min_codes(dim)} training codes for a latent of size {dim} "
            f"(max({MIN_CODES}, {CODES_PER_DIM} per dimension)); the run has {n}: a network fitted on fewer "
            f"learns the codes themselves, and a tenth of them is held out to decide when fitting stops",
            f"Use the {fitting} sampler, or train the model on more images.")


def _standardised(codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    mean = codes.mean(0)
    std = codes.std(0).nan_to_num(0.0)
    std = std.clamp_min(max(float(std.max()) * 1e-6, 1e-12))  # a constant dimension stays a constant
    return ((codes - mean) / std).float(), mean, std


def _linear(n_in: int, n_out: int, generator: torch.Generator) -> nn.Linear:
    """nn.Linear with PyTorch's default initialisation drawn from `generator`: built without one (skip_init),
    so that the global generator, the caller's, is not drawn from (nor are a fit's samples changed by it)."""
    layer = torch.nn.utils.skip_init(nn.Linear, n_in, n_out)
    bound = 1.0 / math.sqrt(max(layer.in_features, 1))
    with torch.no_grad():
        layer.weight.copy_(torch.rand(layer.weight.shape, generator=generator) * 2 * bound - bound)
        layer.bias.copy_(torch.rand(layer.bias.shape, generator=generator) * 2 * bound - bound)
    return layer


@torch.enable_grad()  # samplers are fitted on demand, inside `zoo generate`'s no_grad
def fit_nll(net: nn.Module, nll: Callable[[torch.Tensor, torch.Generator], torch.Tensor], data: torch.Tensor,
            seed: int, *, steps: int, batch_size: int = 512, lr: float = 1e-3, check_every: int = 200,
            patience: int = 5, what: str = "fitting a sampler") -> int:
    """Fit `net` by minibatch Adam on the mean of `nll(batch, generator)` (one negative log-likelihood
    per code) over 90 % of `data`, shuffled anew each pass, for at most `steps` steps; every
    `check_every` steps score the held-out 10 %, stop when that has not improved `patience` times in a
    row, and keep the weights that did best there. Returns the number of steps taken. A bar of the steps is
    drawn on a terminal once it takes a few seconds (`what`, its label): a MAF's fit is a minute or more."""
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(data.shape[0], generator=gen)
    n_val = max(1, int(data.shape[0] * HELD_OUT))
    val, train = data[perm[:n_val]], data[perm[n_val:]]
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    best, best_state, waited, step = math.inf, copy.deepcopy(net.state_dict()), 0, 0
    net.train()
    with progress_bar(steps, what, unit="step") as bar:
        while step < steps and waited < patience:
            order = torch.randperm(train.shape[0], generator=gen)
            for i in range(0, train.shape[0], batch_size):
                loss = nll(train[order[i:i + batch_size]], gen).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                bar.update(1)
                if step % check_every == 0 or step == steps:
                    net.eval()
                    with torch.no_grad():  # the same noise at every check, so that checks compare
                        val_gen = torch.Generator().manual_seed(seed + 1)
                        score = float(torch.cat([nll(val[j:j + 4096], val_gen)
                                                 for j in range(0, n_val, 4096)]).mean())
                    net.train()
                    best, best_state, waited = ((score, copy.deepcopy(net.state_dict()), 0) if score < best - 1e-4
                                                else (best, best_state, waited + 1))
                    if step == steps or waited >= patience:
                        break
    net.load_state_dict(best_state)
    net.eval()
    return step


class _LearnedDensity(LatentSampler):
    """What both share: standardised codes, a network fitted by `fit_nll`, its weights as the state."""

    steps: int = 4000       # at most this many Adam steps of `batch_size` codes
    batch_size: int = 512
    lr: float = 1e-3
    width: int = 128        # hidden layers: this wide, or `units_per_dim` per latent dimension if that is more
    units_per_dim: int = 2

    def _net(self, hidden: int, generator: torch.Generator) -> nn.Module:
        raise NotImplementedError

    def _fit(self, codes, seed):
        _enough_codes(self.name, codes)
        data, self.mean, self.std = _standardised(codes)
        self.net = self._net(max(self.width, self.units_per_dim * self.dim), torch.Generator().manual_seed(seed))
        self.steps_taken = fit_nll(self.net, self.net.nll, data, seed, steps=self.steps,
                                   batch_size=self.batch_size, lr=self.lr, what=f"fitting the {self.name} sampler")

    def _from_noise(self, u: torch.Tensor) -> torch.Tensor:
        """Standardised codes from N(0, I) noise u [n, D] (the flow's inverse, the second VAE's decoder)."""
        raise NotImplementedError

    def sample(self, n, generator=None):
        device = self._device(generator)
        u = torch.randn((n, self.dim), generator=generator, device=device)
        with torch.no_grad():
            self.net.to(device)
            return self._to_codes(self._from_noise(u))

    def _to_codes(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.std.float().to(x.device) + self.mean.float().to(x.device)).float()

    def state(self):
        return {"mean": self.mean, "std": self.std,
                **{k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()}}

    def _load_net(self, tensors: dict[str, torch.Tensor], hidden: int) -> None:
        """Build the network for `hidden` and set its weights from `tensors`, every shape checked."""
        if hidden < 1:
            raise ValueError(f"hidden size {hidden}")
        net = self._net(hidden, torch.Generator().manual_seed(0))
        own = net.state_dict()
        shapes = {"mean": (self.dim,), "std": (self.dim,), **{k: tuple(v.shape) for k, v in own.items()}}
        t = check_state(tensors, shapes)
        if (t["std"] <= 0).any():
            raise ValueError("std must be positive")
        net.load_state_dict({k: t[k].to(own[k].dtype) for k in own})
        self.net, self.mean, self.std = net.eval(), t["mean"], t["std"]


# ---------------------------------------------------------------------------------- MAF

class _Made(nn.Module):
    """MADE (Germain et al. 2015): x -> (mu, log-scale), output i depending on x[:i] only."""

    def __init__(self, dim: int, hidden: int, generator: torch.Generator):
        super().__init__()
        self.dim = dim
        degree_in = torch.arange(1, dim + 1)
        degree_h = torch.arange(hidden) % max(dim - 1, 1) + 1
        self.inp, self.mid = _linear(dim, hidden, generator), _linear(hidden, hidden, generator)
        self.out = _linear(hidden, 2 * dim, generator)
        self.register_buffer("mask_inp", (degree_h[:, None] >= degree_in[None, :]).float(), persistent=False)
        self.register_buffer("mask_mid", (degree_h[:, None] >= degree_h[None, :]).float(), persistent=False)
        self.register_buffer("mask_out", (degree_in[:, None] > degree_h[None, :]).float().repeat(2, 1),
                             persistent=False)

    def forward(self, x):
        h = torch.relu(nn.functional.linear(x, self.inp.weight * self.mask_inp, self.inp.bias))
        h = torch.relu(nn.functional.linear(h, self.mid.weight * self.mask_mid, self.mid.bias))
        mu, raw = nn.functional.linear(h, self.out.weight * self.mask_out, self.out.bias).chunk(2, -1)
        return mu, LOG_SCALE_BOUND * torch.tanh(raw / LOG_SCALE_BOUND)

    def inverse(self, u):
        """x from u = (x - mu(x)) exp(-a(x)): `dim` passes, each fixing one more variable."""
        x = torch.zeros_like(u)
        for _ in range(self.dim):
            mu, a = self(x)
            x = u * torch.exp(a) + mu
        return x


class _Maf(nn.Module):
    def __init__(self, dim: int, hidden: int, layers: int, generator: torch.Generator):
        super().__init__()
        self.made = nn.ModuleList([_Made(dim, hidden, generator) for _ in range(layers)])
        # Each layer reads the previous layer's output in reversed order (the first, the codes as they are).
        self.orders = [torch.arange(dim) if i == 0 else torch.arange(dim - 1, -1, -1) for i in range(layers)]

    def log_prob(self, x):
        logdet = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for made, order in zip(self.made, self.orders):
            x = x[:, order.to(x.device)]
            mu, a = made(x)
            x = (x - mu) * torch.exp(-a)
            logdet = logdet - a.sum(-1)
        return logdet - 0.5 * (x ** 2).sum(-1) - 0.5 * x.shape[1] * math.log(2 * math.pi)

    def nll(self, x, generator=None):
        return -self.log_prob(x)

    def inverse(self, u):
        for made, order in zip(reversed(self.made), reversed(self.orders)):
            x = made.inverse(u)
            u = torch.empty_like(x)
            u[:, order.to(x.device)] = x
        return u


class MaskedAutoregressiveFlow(_LearnedDensity):
    name = "maf"
    description = ("a masked autoregressive flow (5 MADE layers, reversed orders) fitted by maximum likelihood "
                   "to the training codes")
    layers = 5
    steps = 4000  # 50 s of one CPU thread for 54,000 codes of size 16 (docs/benchmarks.md)
    # A MADE gives each hidden unit one of dim - 1 degrees. 8 units per dimension (256 for 32-dim codes, 128 up
    # to 16): FID 21.5-44.4 on the six bundled likelihood models' codes against 31.4-66.3 at 2 per dimension;
    # 16 was better on five, worse on hvae-mnist and a latent-16 ConvAE, at twice the fit (docs/benchmarks.md).
    units_per_dim = 8
    lr = 2e-3     # the MNIST ConvAE's held-out codes: mean log p -32.02 (1e-3: -32.20), FID 32.3 (1e-3: 37.6)

    def _net(self, hidden, generator):
        return _Maf(self.dim, hidden, self.layers, generator)

    def _from_noise(self, u: torch.Tensor) -> torch.Tensor:
        return self.net.inverse(u)

    def log_prob(self, codes: torch.Tensor) -> torch.Tensor:
        """The fitted log-density of `codes` [N, D] (in the codes' own units, not the standardised ones)."""
        x = ((codes.to(torch.float64).cpu() - self.mean) / self.std).float()
        with torch.no_grad():
            return self.net.cpu().log_prob(x).double() - torch.log(self.std).sum()

    def state(self):
        return {**super().state(), **{f"order.{i}": o.clone() for i, o in enumerate(self.net.orders)}}

    def _load(self, tensors):
        layers = sum(1 for k in tensors if k.startswith("order."))
        if layers < 1:
            raise KeyError("order.0")
        orders = []
        for i in range(layers):
            order = tensors[f"order.{i}"]
            if tuple(order.shape) != (self.dim,) or not torch.equal(order.sort().values.long(),
                                                                  torch.arange(self.dim)):
                raise ValueError(f"order.{i} is not an order of the {self.dim} variables")
            orders.append(order.long())
        self.layers = layers
        self._load_net(tensors, int(tensors["made.0.inp.weight"].shape[0]))
        self.net.orders = orders


# ---------------------------------------------------------------------------------- two-stage VAE

class _SecondStageVae(nn.Module):
    """A VAE on the codes (Dai & Wipf 2019's second stage): a latent as large as the codes, MLP encoder
    and decoder, and a Gaussian decoder whose variance γ is one learned scalar."""

    def __init__(self, dim: int, hidden: int, depth: int, generator: torch.Generator):
        super().__init__()

        def mlp(out):
            sizes = [dim] + [hidden] * depth
            layers = []
            for a, b in zip(sizes, sizes[1:]):
                layers += [_linear(a, b, generator), nn.ReLU()]
            return nn.Sequential(*layers, _linear(hidden, out, generator))

        self.dim = dim
        self.enc, self.dec = mlp(2 * dim), mlp(dim)
        self.log_gamma = nn.Parameter(torch.zeros(1))

    def nll(self, z, generator):
        """The negative ELBO of each code: KL(q(u|z) || N(0, I)) - E_q log N(z; dec(u), γI)."""
        mu, logvar = self.enc(z).chunk(2, -1)
        u = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=generator)
        kl = 0.5 * (mu ** 2 + logvar.exp() - logvar - 1).sum(-1)
        rec = ((z - self.dec(u)) ** 2).sum(-1) / (2 * self.log_gamma.exp())
        return kl + rec + 0.5 * self.dim * (math.log(2 * math.pi) + self.log_gamma)


class TwoStageVae(_LearnedDensity):
    """Samples are the decoder's means, as in the paper: they leave out the decoder's noise (variance γ),
    which is small where the codes lie near a lower-dimensional set, as an autoencoder's do; on codes
    that fill their space the samples are narrower than the codes (higher precision, lower recall)."""

    name = "two-stage"
    description = ("the two-stage VAE (Dai & Wipf 2019): a second VAE, with a learned decoder variance, fitted "
                   "to the training codes; samples are its decoder's means of N(0, I) draws")
    depth = 3
    steps = 6000  # 108 s of one CPU thread for 54,000 codes of size 16 (docs/benchmarks.md)
    width = 256   # the MNIST ConvAE's FID: 13.9 (at width 128: 18.1)
    lr = 1e-3     # at 3e-3 γ stayed large (0.43 against 0.20) and the samples collapsed: FID 45.5, recall 0.06

    def _net(self, hidden, generator):
        return _SecondStageVae(self.dim, hidden, self.depth, generator)

    def _from_noise(self, u: torch.Tensor) -> torch.Tensor:
        return self.net.dec(u)

    def _load(self, tensors):
        self._load_net(tensors, int(tensors["enc.0.weight"].shape[0]))

    def fit_warning(self) -> str:
        gamma = float(self.net.log_gamma.detach().exp())
        if gamma < COLLAPSED_GAMMA:
            return ""
        return (f"the two-stage sampler's decoder variance ended at {gamma:.2f} of the codes' (a fit that samples "
                "well ends near 0.2): its second VAE left most of its units idle, so its samples, the decoder's "
                "means, bunch together (as it did on every IWAE's codes measured): use the gmm sampler "
                "(docs/model-zoo.md, \"Sampling the likelihood models\").")


@hookimpl
def zoo_samplers():
    return [MaskedAutoregressiveFlow, TwoStageVae]
