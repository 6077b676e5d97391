"""Online k-means of images: the clusters a self-conditioned GAN (plugins/gan.py, `clusters`) takes as
its condition, found without labels while it trains."""

from __future__ import annotations

import torch
from torch import nn


class OnlineKMeans(nn.Module):
    """k centres of flattened images, learned one batch at a time (mini-batch k-means, Sculley 2010):
    each centre is the running mean of every image assigned to it so far, so it settles within the first
    epoch and then barely moves, which keeps the meaning of a cluster stable for the networks that use it.
    A centre with no image yet takes one of the current batch's, so no centre starts or stays empty.
    Nothing here reads a value back to the host: a training step never waits for it."""

    def __init__(self, k: int, features: int):
        super().__init__()
        self.register_buffer("centres", torch.zeros(k, features))
        self.register_buffer("counts", torch.zeros(k))  # images assigned to each centre so far

    def assign(self, images: torch.Tensor) -> torch.Tensor:
        """The index of the nearest centre of each image: int64 [B]."""
        return torch.cdist(images.flatten(1).to(self.centres.dtype), self.centres).argmin(1)

    @torch.no_grad()
    def update(self, images: torch.Tensor) -> torch.Tensor:
        """Assign a training batch and move the centres toward it; returns the assignments."""
        flat = images.flatten(1).to(self.centres.dtype)
        k = self.centres.shape[0]
        seeds = flat[torch.arange(k, device=flat.device) % flat.shape[0]]
        self.centres.copy_(torch.where((self.counts == 0)[:, None], seeds, self.centres))
        ids = self.assign(flat)
        n = torch.bincount(ids, minlength=k).to(flat.dtype)
        sums = torch.zeros_like(self.centres).index_add_(0, ids, flat)
        self.counts.add_(n)
        self.centres.add_((sums - n[:, None] * self.centres) / self.counts.clamp(min=1)[:, None])
        return ids

    def draw(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """`n` clusters drawn by how many training images each holds (uniformly before any training)."""
        weights = torch.where(self.counts.sum() > 0, self.counts, torch.ones_like(self.counts))
        return torch.multinomial(weights, n, replacement=True, generator=generator)
