"""Image metrics, per image so they average correctly over batches of any size; and what a long
evaluation loop shows while it runs."""

import contextlib
import contextvars

import torch
import torch.nn.functional as F


def reconstruction_metrics(x: torch.Tensor, recon: torch.Tensor) -> dict[str, torch.Tensor]:
    """MSE, binary cross-entropy (per pixel) and PSNR in dB (peak 1.0) for each image, of `recon` clipped to
    [0, 1]: the images it stands for, as a picture shows them (a model without a sigmoid output can give values
    outside, which its training's validation loss counts, so the two can differ)."""
    recon = recon.float().clamp(0, 1)
    x = x.float()
    dims = tuple(range(1, x.dim()))
    mse = (recon - x).pow(2).mean(dims)
    bce = F.binary_cross_entropy(recon.clamp(1e-6, 1 - 1e-6), x, reduction="none").mean(dims)
    psnr = 10 * torch.log10(1.0 / mse.clamp_min(1e-10))
    return {"mse": mse, "bce": bce, "psnr": psnr}


# An evaluation shows a progress bar once it has run this long: a quick one prints nothing extra.
PROGRESS_AFTER_S = 2.0


# What a bar with `enabled` None does inside `bars_shown`: a command's --progress/--no-progress reaches the bars
# of what it calls (a sampler's fit, a plugin's) without passing through their signatures.
_BARS_SHOWN: contextvars.ContextVar[bool | None] = contextvars.ContextVar("bars_shown", default=None)


@contextlib.contextmanager
def bars_shown(enabled: bool | None):
    """Within the block, progress bars not told otherwise are shown (True), hidden (False), or (None) shown
    on a terminal."""
    token = _BARS_SHOWN.set(enabled)
    try:
        yield
    finally:
        _BARS_SHOWN.reset(token)


def progress_bar(total: int, what: str, enabled: bool | None = None, unit: str = "img"):
    """A tqdm bar on stderr for a long evaluation, drawn only after PROGRESS_AFTER_S seconds and
    removed when done (so stdout, e.g. --json, never carries it). `enabled` None: as the enclosing
    `bars_shown` says, else when stderr is a terminal, as training's bar."""
    import sys

    from tqdm.auto import tqdm

    if enabled is None:
        enabled = _BARS_SHOWN.get()
    show = sys.stderr.isatty() if enabled is None else enabled
    return tqdm(total=total, desc=what, unit=unit, unit_scale=unit == "img", leave=False, file=sys.stderr,
                dynamic_ncols=True, delay=PROGRESS_AFTER_S, disable=not show)


