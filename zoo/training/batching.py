"""Batches of images for training and evaluation: formed by indexing device-resident uint8 tensors and
brought to floats in [0, 1] (optionally binarised) only a batch at a time."""

from __future__ import annotations

import torch

from zoo.model import Batch


def to_batch(xb: torch.Tensor, yb: torch.Tensor, binarize: bool = False, channels_last: bool = False) -> Batch:
    """uint8 images -> a `Batch` of floats in [0, 1]; with `binarize`, pixels ~ Bernoulli(grey level)."""
    xf = xb.float().div_(255.0)
    if binarize:
        xf = torch.bernoulli(xf)
    if channels_last and xf.dim() == 4:
        xf = xf.contiguous(memory_format=torch.channels_last)
    return Batch(xf, yb)


def batches(x: torch.Tensor, y: torch.Tensor, size: int, order: torch.Tensor | None = None,
            binarize: bool = False, channels_last: bool = False):
    """Yield `Batch`es of floats in [0, 1] by indexing uint8 tensors (on their device);
    with `binarize`, pixels are resampled ~ Bernoulli(grey level) for every batch."""
    n = x.shape[0]
    for start in range(0, n, size):
        if order is None:
            xb, yb = x[start:start + size], y[start:start + size]
        else:
            idx = order[start:start + size]
            xb, yb = x[idx], y[idx]
        yield to_batch(xb, yb, binarize, channels_last)


def growing_spans(n: int, largest: int = 1024):
    """(start, stop) of batches of 16, 32, 64, ... images up to `largest`, over n images: a costly metric
    (an IWAE bound) moves a progress bar soon after it starts, a cheap one soon runs at full size. The
    sizes are fixed, never timed, so a seeded evaluation draws the same random numbers for the same
    images every time, and can stop and go on at any batch's end."""
    size, start = 16, 0
    while start < n:
        yield start, min(start + size, n)
        start += size
        size = min(2 * size, largest)
