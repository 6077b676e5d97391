"""Sample quality in the feature space of a small classifier trained on the same data set.

Inception weights cannot be downloaded here, so zoo measures generated images with the penultimate
layer of its own classifier ("classifier-feature FID"). The numbers are comparable between runs that
use the same named feature network, and not comparable with Inception FID.
"""

from __future__ import annotations

import numpy as np
import torch


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


def kernel_inception_distance(a: np.ndarray, b: np.ndarray, subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
    """Unbiased MMD² with the cubic polynomial kernel, mean and std over random subsets (Bińkowski et al.)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    rng = np.random.default_rng(seed)
    m = min(subset_size, len(a), len(b))
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
    return float(np.mean(values)), float(np.std(values))


@torch.no_grad()
def embed(feature_net, images: torch.Tensor, batch: int = 1000) -> np.ndarray:
    """Features of images (floats in [0, 1], or uint8) from the feature network's penultimate layer."""
    out = []
    for start in range(0, images.shape[0], batch):
        x = images[start:start + batch].to(feature_net.device)
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        out.append(feature_net.embed(x).float().cpu())
    return torch.cat(out).numpy()


def compare(feature_net, generated: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    fa, fb = embed(feature_net, generated), embed(feature_net, reference)
    kid, kid_std = kernel_inception_distance(fa, fb)
    return {"fid": frechet_distance(fa, fb), "kid": kid, "kid_std": kid_std}
