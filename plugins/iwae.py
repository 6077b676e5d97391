"""IWAE: the VAE trained on the importance-weighted bound (Burda et al. 2015), and the variants of
Rainforth et al. 2018 as options of the same model, not copies.

With K importance samples z_k ~ q(z|x) and weights w_k = p(x, z_k) / q(z_k|x), the training loss is
−log (1/K) Σ_k w_k per image: a tighter bound on log p(x) than the ELBO (K = 1 is the VAE), at K decoder
passes per image.

- `bound = iwae`: that bound with `k` samples.
- `bound = miwae`: the mean of `m` independent IWAE-K bounds (M·K decoder passes): the encoder's gradient
  keeps its signal, which fades as K grows for the plain IWAE.
- `bound = ciwae`: `ciwae_beta`·ELBO + (1 − `ciwae_beta`)·IWAE-K over the same K samples. The default 0.5 is
  pythae's; Rainforth et al.'s 84.57 nats on MNIST (and pythae's reproduction of it) are at 0.05.
- `bound = piwae`: each network its own bound over the same M·K samples: the decoder climbs the IWAE-(M·K)
  bound (the tighter one makes the better model), the encoder the MIWAE(M, K) bound (whose gradient keeps
  its signal). One forward pass serves both: the encoder's path sees the decoder only through one
  vector-Jacobian product (MIWAE's weights on ∂log p(x|z)/∂z), so neither network gets the other's
  gradient (`split_log_weights`).

β and `kl_warmup` weigh log p(z) − log q(z|x) inside each weight as they weigh the KL term of the VAE
(with β = 1 and the warm-up over, the bound is exact); the figures named `iwae_kK` and `neg_elbo` are
always the true bounds (a prior weight of 1), so with β ≠ 1 or during the warm-up they differ from `loss`.
Everything else (the nets, `zoo eval --iwae-k`, sampling from the prior) is the VAE's.
"""

from __future__ import annotations

import math
import resource
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from zoo import hookimpl, param
from zoo.errors import ConfigError
from zoo.plugins.vae import VAE, VAEConfig
from zoo.runs.files import available_memory, skeleton


CIWAE_BETA = 0.5  # the ELBO's default share in the CIWAE loss
GROUPED = ("miwae", "piwae")  # the bounds that draw M groups of K samples
# A training step keeps, for the backward pass, what autograd saves of every decoded sample; that is counted
# on the meta device, tensor by tensor (one that two operations save counts twice), and the step's peak is
# taken as this many times the count. Measured on the CPU (the default nets, 28×28, k·B of 6,400 to 25,600):
# peaks of 0.6 times the count, so 1.0 leaves room for the allocator and the backward pass's gradients.
ACTIVATION_FACTOR = 1.0


@dataclass
class IWAEConfig(VAEConfig):
    bound: str = param("iwae", "training bound: iwae (IWAE-K), miwae (mean of m IWAE-K bounds), ciwae "
                               "(ciwae_beta·ELBO + (1 − ciwae_beta)·IWAE-K), piwae (decoder: IWAE-(m·k), "
                               "encoder: MIWAE(m, k))", choices=("iwae", "miwae", "ciwae", "piwae"))
    k: int = param(5, "importance samples per image in each bound (K; decoder passes per image: K, or M·K)",
                   low=1, high=5000)
    m: int = param(1, "miwae, piwae: independent IWAE-K bounds averaged per image (M)", low=1, high=1000)
    ciwae_beta: float = param(CIWAE_BETA, "ciwae: the ELBO's share of the loss (0: IWAE-K, 1: ELBO)", low=0.0, high=1.0)


class IWAE(VAE):
    name = "iwae"
    description = "Importance-weighted autoencoder: the VAE trained on the IWAE-K bound (or MIWAE, PIWAE, CIWAE)"
    Config = IWAEConfig
    # Each changes the bound the loss is (a larger K or PIWAE's IWAE-(M·K) is a tighter number, not a
    # better model); the −ELBO (β = 1) compares any two, and the IWAE-K figure (at a prior weight of 1,
    # whatever the bound trained) any two of the same K.
    loss_keys = {**VAE.loss_keys, "k": ("neg_elbo", "mse"),
                 **{key: ("neg_elbo", "iwae_k*", "mse") for key in ("beta", "bound", "m", "ciwae_beta")}}

    def __init__(self, config: IWAEConfig, shape, num_classes: int = 0):
        # A setting of another bound would be silently ignored: say so instead.
        if config.m != 1 and config.bound not in GROUPED:
            raise ConfigError(f"iwae: m={config.m} counts the bounds of MIWAE (and PIWAE's encoder), and bound is "
                              f"{config.bound}", "Add --set bound=miwae or bound=piwae, or leave m out.")
        if config.ciwae_beta != CIWAE_BETA and config.bound != "ciwae":
            raise ConfigError(f"iwae: ciwae_beta={config.ciwae_beta:g} weighs the ELBO in CIWAE, and bound is "
                              f"{config.bound}", "Add --set bound=ciwae, or leave ciwae_beta out.")
        super().__init__(config, shape, num_classes)

    def samples_per_image(self) -> int:
        return self.config.k * (self.config.m if self.config.bound in GROUPED else 1)

    def check_training(self, train, data) -> None:
        """Refuse a k × batch_size whose training step cannot fit in the memory at hand, before the first
        step (and before a new run's folder is kept): autograd holds what the decoder saves for every one
        of the k (M·K) samples of every image of a batch until the backward pass, so chunking the decoder
        passes bounds the buffers but not that. Evaluation (no gradients) is chunked and needs no check."""
        free = memory_at_hand(self.device)
        per_sample = self.saved_bytes_per_sample()
        if free is None or per_sample is None:
            return
        batch = max(1, min(int(train.batch_size), int(data.train_x.shape[0])))
        samples = self.samples_per_image()
        need = ACTIVATION_FACTOR * per_sample * samples * batch
        if need <= free:
            return
        c = self.config
        groups = samples // c.k
        fits_k = int(free // (ACTIVATION_FACTOR * per_sample * groups * batch))
        fits_batch = int(free // (ACTIVATION_FACTOR * per_sample * samples))
        what = f"k={c.k}" + (f" × m={c.m}" if groups > 1 else "") + " samples"
        hint = (f"With batch_size {batch}, k={fits_k} is the largest that fits (--set k={fits_k}); "
                if fits_k >= 1 else f"No k fits with batch_size {batch}; ")
        hint += (f"with {what}, a batch_size of {fits_batch} fits (--batch-size {fits_batch})." if fits_batch >= 1
                 else "a smaller model (channels, hidden) is needed for these samples.")
        name = self.name if c.bound == "iwae" else f"{self.name} ({c.bound})"
        raise ConfigError(
            f"{name}: {what} per image × batch_size {batch} would hold about {_gib(need)} of decoder "
            f"activations in one training step, and {_gib(free)} are free on {self.device.type}", hint)

    def saved_bytes_per_sample(self) -> float | None:
        """Bytes autograd keeps for one sample of one image through the IWAE's log-weights, measured on a
        copy of the model on the meta device (no memory) as the difference between 2 and 4 samples, so
        the weights saved once per pass are not counted; None where the model does not build there."""
        meta = skeleton(type(self), self.config, self.shape, self.num_classes)
        if meta is None:
            return None
        meta.train()
        d, sizes = self.config.latent_dim, []
        for n in (2, 4):
            saved = []

            def pack(t: torch.Tensor) -> torch.Tensor:
                saved.append(t.numel() * t.element_size())
                return t

            mu = torch.zeros(n, d, device="meta", requires_grad=True)
            logvar = torch.zeros(n, d, device="meta", requires_grad=True)
            x = torch.zeros(n, *self.shape, device="meta")
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                meta.log_weights(x, None, mu, logvar, torch.zeros(1, n, d, device="meta"))
            sizes.append(sum(saved))
        return max(0.0, (sizes[1] - sizes[0]) / 2) + x[0].numel() * 4  # and its logits' own output

    def bound_terms(self, x: torch.Tensor, y: torch.Tensor | None, prior_weight) -> dict[str, torch.Tensor]:
        """Per image: the training bound (in nats, higher is better; `prior_weight`, β and the warm-up's
        share, weighs log p(z) − log q(z|x) inside each weight), and, as figures without gradients, the
        IWAE-K (MIWAE's mean over M) and the ELBO of the same samples at a prior weight of 1: the true
        bounds on log p(x) their names say, whatever β is and wherever the warm-up stands."""
        mu, logvar = self.posterior(x, y)
        c = self.config
        groups = c.m if c.bound in GROUPED else 1
        eps = torch.randn((groups * c.k, *mu.shape), device=mu.device, dtype=mu.dtype)
        split = c.bound == "piwae" and torch.is_grad_enabled()  # PIWAE's two gradients
        if split:
            for_decoder, for_encoder, through_decoder, exact = self.split_log_weights(
                x, y, mu, logvar, eps, prior_weight)
        else:  # VAE.log_weights, in its two parts
            z = self.codes(mu, logvar, eps)
            log_px, ratio = self.codes_log_likelihood(x, y, z), self.log_prior_ratio(z, logvar, eps)
            for_decoder = for_encoder = log_px + prior_weight * ratio
            exact = log_px.detach() + ratio.detach()
        log_w = for_encoder.view(groups, c.k, -1)
        iwae = (torch.logsumexp(log_w, 1) - math.log(c.k)).mean(0)        # [B]: MIWAE's mean over M
        elbo = log_w.mean((0, 1))
        if c.bound == "ciwae":
            bound = c.ciwae_beta * elbo + (1 - c.ciwae_beta) * iwae
        elif split:
            # The value is IWAE-(M·K); the encoder's gradient is MIWAE's alone: through the prior terms
            # (`iwae`) and through the decoder (`through_decoder`), both of value 0 here.
            bound = (torch.logsumexp(for_decoder, 0) - math.log(groups * c.k)
                     + (iwae - iwae.detach()) + (through_decoder - through_decoder.detach()))
        elif c.bound == "piwae":
            bound = torch.logsumexp(for_decoder, 0) - math.log(groups * c.k)
        else:
            bound = iwae
        exact = exact.view(groups, c.k, -1)  # with a prior weight ≠ 1 neither figure above bounds log p(x)
        return {"bound": bound, "iwae": (torch.logsumexp(exact, 1) - math.log(c.k)).mean(0),
                "elbo": exact.mean((0, 1))}

    def split_log_weights(self, x, y, mu, logvar, eps, prior_weight):
        """PIWAE's two gradients from one decoder pass. Returns the log-weights [s, B] twice, equal in value
        (the first passes gradients to the decoder only, the second to the encoder through its prior terms
        only), [B] terms whose gradient is the rest of MIWAE's for the encoder, and the log-weights at a prior
        weight of 1, without gradients (the figures bound_terms reports). The encoder's terms: each code z = μ + σ·ε
        moved along ∂/∂z of Σ_j w_j log p(x_j|z_j), w_j being MIWAE's own weight on sample j (its share of
        its group's softmax, over M). That vector-Jacobian product is exact with a batch-normalised decoder
        too, where a code also moves every other sample's log p(x|z) through the batch's statistics (the
        unweighted ∂log p(x|z)/∂z used before counted those moves at the wrong weights, and PIWAE with batch
        norm diverged)."""
        c = self.config
        z = self.codes(mu, logvar, eps)
        z_in = z.detach().requires_grad_()
        log_px = self.codes_log_likelihood(x, y, z_in)
        ratio = self.log_prior_ratio(z, logvar, eps)
        prior = prior_weight * ratio
        for_decoder = log_px + prior.detach()
        for_encoder = log_px.detach() + prior
        groups = z.shape[0] // c.k
        weights = torch.softmax(for_encoder.detach().view(groups, c.k, -1), 1).view_as(log_px) / groups
        (along,) = torch.autograd.grad(log_px, z_in, grad_outputs=weights, retain_graph=True)
        return for_decoder, for_encoder, (z * along).sum((0, 2)), log_px.detach() + ratio.detach()

    def loss(self, batch):
        terms = self.bound_terms(batch.x, batch.y, self.warmup * self.beta)
        return {"loss": -terms["bound"].mean(), f"iwae_k{self.config.k}": -terms["iwae"].mean(),
                "neg_elbo": -terms["elbo"].mean()}

    def validation_step(self, batch):
        """The loss is the training bound (β and the warm-up at their end), so early stopping watches what is
        trained; the IWAE-K and the −ELBO are the true bounds (β = 1) whatever β is, as their names say."""
        terms = self.bound_terms(batch.x, batch.y, self.beta)
        recon = self.reconstruction(batch.x, batch.y)
        return {"loss": -terms["bound"].mean(), f"iwae_k{self.config.k}": -terms["iwae"].mean(),
                "neg_elbo": -terms["elbo"].mean(), "mse": F.mse_loss(recon.float(), batch.x)}


def memory_at_hand(device: torch.device) -> int | None:
    """Bytes that can still be allocated on `device`; on the CPU also within the process's address-space
    limit (ulimit -v), which /proc/meminfo does not know of."""
    free = available_memory(device)
    if device.type != "cpu":
        return free
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    if limit == resource.RLIM_INFINITY:
        return free
    try:
        with open("/proc/self/statm") as fh:
            used = int(fh.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return free
    room = max(0, limit - used)
    return room if free is None else min(free, room)


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**27 else f"{n / 2**20:.0f} MiB"


@hookimpl
def zoo_models():
    return [IWAE]
