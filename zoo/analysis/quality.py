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


def compare(fa: np.ndarray, fb: np.ndarray, bar=None) -> dict[str, float]:
    """FID and KID (with the subsets KID was averaged over) between two sets of features."""
    size = kid_subset_size(min(len(fa), len(fb)))
    kid, kid_std = kernel_inception_distance(fa, fb, subset_size=size, bar=bar)
    return {"fid": frechet_distance(fa, fb), "kid": kid, "kid_std": kid_std, "kid_subsets": KID_SUBSETS,
            "kid_subset_size": size}
