"""Checks shared by the latent-space tools: codes they can use, and whole numbers held in tensors or arrays."""

from __future__ import annotations

import numpy as np
import torch

from zoo.errors import ConfigError, RunError


def check_codes(z: np.ndarray, what: str, where: str, *, need: int, spread: bool) -> None:
    """Refuse codes that `what` (a plot, a projection, a grid, a sampler) cannot use: fewer than `need`, not
    finite, or, with `spread`, all the same. scikit-learn would fail on them (or warn), its t-SNE of identical
    codes even kills the process, and a sampler fitted on them draws one image over and over."""
    n = z.shape[0]
    if n < need:
        raise ConfigError(f"{what} needs at least {need} code{'s' if need > 1 else ''}, got {n} from {where}",
                          "Ask for more images (--n), or use a split or data set with more.")
    if not np.isfinite(z).all():
        raise RunError(f"some codes from {where} are NaN or infinite",
                       "The model's weights may be damaged: retrain it or use an earlier copy of the run.")
    if spread and n and not np.ptp(z, axis=0).any():
        raise RunError(f"all {n} codes from {where} are the same: {what} has no spread to show",
                       "Use more, or more varied, images (or a model trained for longer).")


def as_python(value):
    """A tensor or numpy value of integers as Python holds it: an int (0-D) or a list of ints (1-D), so that
    zoo.interpolate(run, torch.tensor(1), 2) or dims=np.array([0, 1]) read as 1 and [0, 1]. Anything else
    (floats, more dimensions, a str) comes back unchanged, for the caller to refuse with its own words."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, (np.ndarray, np.generic)) and value.dtype.kind in "iu" and value.ndim <= 1:
        return value.tolist()
    return value
