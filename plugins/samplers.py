"""Built-in latent samplers: standard-normal, gaussian (full covariance), gmm (Gaussian mixture).

Fitted parameters are kept in float64 and sampled in float32; every random draw comes from the
caller's torch.Generator, on its device, so the same seed gives the same codes.
"""

from __future__ import annotations

import torch

from zoo import hookimpl
from zoo.analysis.latent_samplers import LatentSampler, check_state
from zoo.errors import CapabilityError

JITTER = 1e-6  # added to covariance diagonals (relative to their mean variance) so Cholesky never fails


def _cholesky(cov: torch.Tensor) -> torch.Tensor:
    """Lower Cholesky factor of a (batch of) covariance(s), with growing jitter if it is singular."""
    d = cov.shape[-1]
    eye = torch.eye(d, dtype=cov.dtype)
    scale = float(cov.diagonal(dim1=-2, dim2=-1).mean().clamp_min(1e-12))
    for k in range(8):
        L, info = torch.linalg.cholesky_ex(cov + (JITTER * 10 ** k) * scale * eye)
        if int(info.max()) == 0:
            return L
    raise ValueError("covariance is not positive definite")


def gmm_components(codes: torch.Tensor, components: int = 10) -> int:
    """The components the gmm sampler fits to `codes` [N, D]: `components`, fewer where a component would get
    fewer than two codes, or two distinct ones (k-means starts EM, and warns of fewer distinct points than
    clusters)."""
    return max(1, min(components, codes.shape[0] // 2, len(torch.unique(codes, dim=0)) // 2))


def gmm_fits(codes: torch.Tensor, components: int = 10) -> bool:
    """Whether the gmm sampler can fit `codes` [N, D]: at least as many codes a component as dimensions, from
    which a full covariance can be estimated."""
    return codes.shape[0] >= gmm_components(codes, components) * codes.shape[1]


class StandardNormal(LatentSampler):
    name = "standard-normal"
    description = "N(0, I): what a VAE's prior would be; for comparison with the fitted samplers"
    needs_fit = False

    def sample(self, n, generator=None):
        return torch.randn((n, self.dim), generator=generator, device=self._device(generator))


class Gaussian(LatentSampler):
    name = "gaussian"
    description = "one Gaussian with the mean and full covariance of the training codes"

    def _fit(self, codes, seed):
        self.mean = codes.mean(0)
        centred = codes - self.mean
        cov = centred.T @ centred / max(codes.shape[0] - 1, 1)
        self.chol = _cholesky(cov)

    def sample(self, n, generator=None):
        device = self._device(generator)
        eps = torch.randn((n, self.dim), generator=generator, device=device)
        return self.mean.float().to(device) + eps @ self.chol.float().to(device).T

    def state(self):
        return {"mean": self.mean, "cholesky": self.chol}

    def _load(self, tensors):
        t = check_state(tensors, {"mean": (self.dim,), "cholesky": (self.dim, self.dim)})
        self.mean, self.chol = t["mean"], t["cholesky"]


class GaussianMixture(LatentSampler):
    name = "gmm"
    description = "a mixture of 10 full-covariance Gaussians fitted by EM (scikit-learn) to the training codes"
    components = 10

    def _fit(self, codes, seed):
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.mixture import GaussianMixture as SkGMM

        n, d = codes.shape
        k = gmm_components(codes, self.components)
        if not gmm_fits(codes, self.components):  # no covariance to estimate, and EM on k d×d
            # covariances runs for long in much memory (10 of 4096-D: 1.3 GB each step)
            raise CapabilityError(f"the gmm sampler fits {k} full {d}×{d} covariances to {n:,} training codes: about "
                              f"{n // k:,} a component, fewer than its {d} dimensions, which no covariance can be "
                              "estimated from", "Use --sampler gaussian (one covariance) or standard-normal, or a "
                              "model with a smaller latent_dim (or more training images).")
        with warnings.catch_warnings(record=True) as caught:  # EM's own doubts: said as a zoo warning
            warnings.simplefilter("always", ConvergenceWarning)
            # scikit-learn adds reg_covar in absolute units: relative to the codes' variance, as the gaussian
            # sampler's jitter is (codes of std 1e-3 were drawn 56 % wider than they are)
            scale = float(codes.var(0).mean()) if n > 1 else 1.0
            gmm = SkGMM(n_components=k, covariance_type="full", reg_covar=1e-6 * (scale or 1.0), max_iter=200,
                        n_init=1, random_state=seed).fit(codes.numpy())
        self.doubts = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
        self.weights = torch.from_numpy(gmm.weights_).to(torch.float64)
        self.means = torch.from_numpy(gmm.means_).to(torch.float64)
        self.chol = _cholesky(torch.from_numpy(gmm.covariances_).to(torch.float64))

    def fit_warning(self) -> str:
        k = int(self.weights.shape[0])
        said = [f"the gmm sampler's fit (scikit-learn): {doubt}" for doubt in getattr(self, "doubts", [])]
        if k < self.components:
            said.insert(0, f"the gmm sampler has {k} component{'s' * (k != 1)}, not {self.components}: it was "
                           f"fitted on fewer than {2 * self.components} training codes (or distinct ones), and a "
                           "component needs two at least")
        return "; ".join(said)

    def sample(self, n, generator=None):
        device = self._device(generator)
        comp = torch.multinomial(self.weights.float().to(device), n, replacement=True, generator=generator)
        eps = torch.randn((n, self.dim), generator=generator, device=device)
        chol = self.chol.float().to(device)[comp]                       # [n, D, D]
        return self.means.float().to(device)[comp] + (chol @ eps.unsqueeze(-1)).squeeze(-1)

    def state(self):
        return {"weights": self.weights, "means": self.means, "cholesky": self.chol}

    def _load(self, tensors):
        k = tensors["weights"].shape[0]
        t = check_state(tensors, {"weights": (k,), "means": (k, self.dim), "cholesky": (k, self.dim, self.dim)})
        if k < 1 or (t["weights"] < 0).any() or float(t["weights"].sum()) <= 0:
            raise ValueError("mixture weights must be non-negative and not all zero")
        self.weights, self.means, self.chol = t["weights"], t["means"], t["cholesky"]


@hookimpl
def zoo_samplers():
    return [StandardNormal, Gaussian, GaussianMixture]
