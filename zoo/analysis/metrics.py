"""Image metrics, per image so they average correctly over batches of any size; and what a long
evaluation loop shows while it runs."""

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


# An evaluation shows a progress bar once it has run this long: a quick one prints nothing extra.
PROGRESS_AFTER_S = 2.0


def progress_bar(total: int, what: str, enabled: bool | None = None, unit: str = "img"):
    """A tqdm bar on stderr for a long evaluation, drawn only after PROGRESS_AFTER_S seconds and
    removed when done (so stdout, e.g. --json, never carries it). `enabled` None: when stderr is a
    terminal, as training's bar."""
    import sys

    from tqdm.auto import tqdm

    show = sys.stderr.isatty() if enabled is None else enabled
    return tqdm(total=total, desc=what, unit=unit, unit_scale=unit == "img", leave=False, file=sys.stderr,
                dynamic_ncols=True, delay=PROGRESS_AFTER_S, disable=not show)


