"""Image metrics, per image so they average correctly over batches of any size."""

import torch
import torch.nn.functional as F


def reconstruction_metrics(x: torch.Tensor, recon: torch.Tensor) -> dict[str, torch.Tensor]:
    """MSE, binary cross-entropy (per pixel) and PSNR in dB (peak 1.0) for each image."""
    recon = recon.float().clamp(0, 1)
    x = x.float()
    dims = tuple(range(1, x.dim()))
    mse = (recon - x).pow(2).mean(dims)
    bce = F.binary_cross_entropy(recon.clamp(1e-6, 1 - 1e-6), x, reduction="none").mean(dims)
    psnr = 10 * torch.log10(1.0 / mse.clamp_min(1e-10))
    return {"mse": mse, "bce": bce, "psnr": psnr}
