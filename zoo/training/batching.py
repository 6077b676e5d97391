"""Batches of images for training and evaluation: formed by indexing device-resident uint8 tensors and
brought to floats in [0, 1] (optionally binarised) only a batch at a time."""

from __future__ import annotations

import torch

from zoo.errors import ConfigError
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


def check_batch_norm(model, batch_size: int, n: int) -> None:
    """Refuse a training whose batches (the last of an epoch included) would hold a single image where the model
    batch-normalises one value per channel of an image (a linear layer, a 1×1 feature map): torch fails there at
    the first step ("Expected more than 1 value per channel"), after the run's folder was made, and a resume
    failed alike."""
    size = max(1, min(int(batch_size), n))
    if 1 not in {size, n % size if size < n else 0} or not _one_value_per_channel(model):
        return
    raise ConfigError(f"batch norm cannot normalise a batch of one image (one value per channel): {n} training "
                      f"images in batches of {batch_size} leave one", "Use a batch size of 2 or more that leaves no "
                      "last batch of one image (--batch-size), or train without batch norm (--set batch_norm=false).")


NORMS = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)


def _one_value_per_channel(model) -> bool:
    """Whether a batch norm the model's encoder or decoder passes an image through sees one value per channel
    of it; a linear layer's, where the model cannot encode or decode (its layers are not reached here)."""
    norms = [m for m in model.modules() if isinstance(m, NORMS)]
    if not norms:
        return False
    if not (model.can("encode") and model.can("decode")):
        return any(isinstance(m, torch.nn.BatchNorm1d) for m in norms)
    seen: list[int] = []
    hooks = [m.register_forward_pre_hook(lambda mod, args: seen.append(args[0][0].numel() // args[0].shape[1]))
             for m in norms]
    was = model.training
    try:
        model.eval()
        with torch.no_grad():
            model.decode(model.encode(torch.zeros((1, *model.shape), device=model.device)))
    except Exception:  # a model whose codes need more than an image (a class): its plugin's checks stand
        return False
    finally:
        model.train(was)
        for hook in hooks:
            hook.remove()
    return 1 in seen
