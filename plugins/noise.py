"""Built-in noise models for denoising: gaussian, salt-and-pepper, occlusion."""

from __future__ import annotations

import torch

from zoo import hookimpl
from zoo.data.noise import NoiseModel


def _rand(shape, like: torch.Tensor, generator):
    return torch.rand(shape, device=like.device, dtype=like.dtype, generator=generator)


class GaussianNoise(NoiseModel):
    name = "gaussian"
    description = "add N(0, sigma²) to every pixel, clipped to [0, 1]"
    params = ("sigma",)
    defaults = (0.3,)
    ranges = {"sigma": (0, 10)}
    vectorized = True

    def __call__(self, x, generator=None, strength=None):
        sigma = self.values["sigma"] if strength is None else strength
        noise = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
        return (x + sigma * noise).clamp(0, 1)


class SaltPepperNoise(NoiseModel):
    name = "salt-pepper"
    description = "set a fraction of the pixels to 0 or 1 (half each)"
    params = ("fraction",)
    defaults = (0.1,)
    ranges = {"fraction": (0, 1)}
    vectorized = True

    def scaled(self, factor):
        return type(self)(min(1.0, self.values["fraction"] * factor))

    def __call__(self, x, generator=None, strength=None):
        b, _, h, w = x.shape
        u = _rand((b, 1, h, w), x, generator)  # the same pixels in every channel
        f = self.values["fraction"] if strength is None else strength
        out = torch.where(u < f / 2, torch.zeros_like(x), x)
        return torch.where((u >= f / 2) & (u < f), torch.ones_like(x), out)


class OcclusionNoise(NoiseModel):
    name = "occlusion"
    description = "black out `count` random square patches of side `size`"
    params = ("size", "count")
    defaults = (8, 1)
    integer = ("size", "count")
    # Each patch is a pass over the batch: a count of a billion ran for a day. A hundred thousand 1-pixel
    # patches black out a 256×256 image (and a run trained with more could no longer be loaded).
    ranges = {"size": (1, float("inf")), "count": (0, 100_000)}

    def on(self, shape):
        if self.values["count"] == 0:  # no patch at all, of any size: one noise (a sweep stops at it)
            return type(self)(1, 0)
        return type(self)(min(self.values["size"], shape[-2], shape[-1]), self.values["count"])

    def __call__(self, x, generator=None):
        b, _, h, w = x.shape
        size, count = min(self.values["size"], h, w), self.values["count"]
        rows = torch.arange(h, device=x.device).view(1, h, 1)
        cols = torch.arange(w, device=x.device).view(1, 1, w)
        keep = torch.ones((b, h, w), dtype=torch.bool, device=x.device)
        for _ in range(count):
            top = (_rand((b,), x, generator) * (h - size + 1)).long().view(b, 1, 1)
            left = (_rand((b,), x, generator) * (w - size + 1)).long().view(b, 1, 1)
            inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
            keep &= ~inside
        return x * keep.unsqueeze(1).to(x.dtype)


@hookimpl
def zoo_noise_models():
    return [GaussianNoise, SaltPepperNoise, OcclusionNoise]
