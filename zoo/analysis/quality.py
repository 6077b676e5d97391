"""Sample quality in the feature space of a small classifier trained on the same data set.

Inception weights cannot be downloaded here, so zoo measures generated images with the penultimate
layer of its own classifier ("classifier-feature FID"). The numbers are comparable between runs that
use the same named feature network, and not comparable with Inception FID.
"""

from __future__ import annotations

import numpy as np
import torch

from zoo.errors import ConfigError


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||² + Tr(S_a + S_b - 2 (S_a S_b)^½), via symmetric eigen-decompositions."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.linalg.eigvalsh(root_a @ s_b @ root_a)
    trace_sqrt = np.sqrt(np.clip(cross, 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * trace_sqrt)


KID_SUBSETS = 100        # random subsets KID is averaged over, as Bińkowski et al., torch-fidelity, torchmetrics
KID_SUBSET_SIZE = 1000   # their images per subset; zoo takes fewer when the sets are small (kid_subset_size)


def kid_subset_size(n: int) -> int:
    """Images per KID subset for sets of `n` images: KID_SUBSET_SIZE, but at most half of n. Subsets of
    all n images would all be the same set, and their spread (KID's ±) exactly 0, whatever the data."""
    return min(KID_SUBSET_SIZE, n // 2)


def kernel_inception_distance(a: np.ndarray, b: np.ndarray, subsets: int = KID_SUBSETS,
                              subset_size: int | None = None, seed: int = 0, bar=None) -> tuple[float, float]:
    """Unbiased MMD² with the cubic polynomial kernel, mean and std over random subsets (Bińkowski et al.).
    `subset_size` None: kid_subset_size of the smaller set; `bar` (a progress bar) advances per subset."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    rng = np.random.default_rng(seed)
    n = min(len(a), len(b))
    m = kid_subset_size(n) if subset_size is None else min(subset_size, n)
    if m < 2:
        raise ConfigError(f"KID needs at least 4 images in each set, got {n}",
                          "Compare more images: raise --fid-n, or use a data set with more test images.")
    d = a.shape[1]
    values = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        values.append((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                      - 2 * kxy.mean())
        if bar is not None:
            bar.update()
    return float(np.mean(values)), float(np.std(values))


PR_NEIGHBOURS = 3  # k of the k-NN manifolds, as Kynkäänniemi et al. 2019


def _kth_neighbour_radii(x: torch.Tensor, k: int, rows: int) -> torch.Tensor:
    """Distance from each point of `x` to its k-th nearest other point of `x`."""
    radii = []
    for start in range(0, len(x), rows):
        d = torch.cdist(x[start:start + rows], x)
        radii.append(d.kthvalue(k + 1, dim=1).values)  # the point itself is its own nearest, at 0
    return torch.cat(radii)


def _covered(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, rows: int) -> torch.Tensor:
    """For each point: whether it lies within the radius of some centre (the centres' k-NN manifold)."""
    inside = []
    for start in range(0, len(points), rows):
        d = torch.cdist(points[start:start + rows], centres)
        inside.append((d <= radii[None, :]).any(dim=1))
    return torch.cat(inside)


@torch.no_grad()
def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = PR_NEIGHBOURS,
                     rows: int = 1000) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019): precision is the fraction of generated
    points inside the real points' k-NN manifold (the union of balls reaching each real point's k-th
    nearest real neighbour), recall the fraction of real points inside the generated one. Precision
    says how many samples look real, recall how much of the data the samples cover."""
    real_t, fake_t = torch.as_tensor(real, dtype=torch.float32), torch.as_tensor(fake, dtype=torch.float32)
    if min(len(real_t), len(fake_t)) <= k:
        raise ConfigError(f"precision and recall need more than {k} images in each set",
                          "Compare more images: raise --fid-n.")
    precision = _covered(fake_t, real_t, _kth_neighbour_radii(real_t, k, rows), rows).float().mean()
    recall = _covered(real_t, fake_t, _kth_neighbour_radii(fake_t, k, rows), rows).float().mean()
    return float(precision), float(recall)


@torch.no_grad()
def embed(feature_net, images: torch.Tensor, batch: int = 1000, bar=None) -> np.ndarray:
    """Features of images (floats in [0, 1], or uint8) from the feature network's penultimate layer;
    `bar` (a progress bar) advances per batch."""
    out = []
    for start in range(0, images.shape[0], batch):
        x = images[start:start + batch].to(feature_net.device)
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        out.append(feature_net.embed(x).float().cpu())
        if bar is not None:
            bar.update()
    return torch.cat(out).numpy()


def spread_ratio(fa: np.ndarray, fb: np.ndarray) -> float:
    """How widely the features `fa` spread, as a share of how widely `fb` do: the traces of their covariances
    (NaN where either holds a value that is not a finite number, or too few rows to spread)."""
    if len(fa) < 2 or len(fb) < 2 or not (np.isfinite(fa).all() and np.isfinite(fb).all()):
        return float("nan")
    reference = float(np.trace(np.atleast_2d(np.cov(fb.T))))
    return float(np.trace(np.atleast_2d(np.cov(fa.T)))) / reference if reference > 0 else 1.0


def compare(fa: np.ndarray, fb: np.ndarray, bar=None) -> dict[str, float]:
    """FID, KID (with the subsets KID was averaged over), precision and recall of the images `fa` against
    the reference images `fb`, from their features."""
    size = kid_subset_size(min(len(fa), len(fb)))
    kid, kid_std = kernel_inception_distance(fa, fb, subset_size=size, bar=bar)
    precision, recall = precision_recall(fb, fa)
    return {"fid": frechet_distance(fa, fb), "kid": kid, "kid_std": kid_std, "kid_subsets": KID_SUBSETS,
            "kid_subset_size": size, "precision": precision, "recall": recall, "pr_neighbours": PR_NEIGHBOURS}
