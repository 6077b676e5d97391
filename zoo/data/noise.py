"""Noise models: corruptions of images in [0, 1], drawn on the images' device, named like `gaussian:0.3`.

They are pluggable: a plugin returns `NoiseModel` subclasses from the `zoo_noise_models` hook.
"""

from __future__ import annotations

import difflib
from typing import ClassVar

import torch

from zoo.errors import ConfigError
from zoo.plugin_values import spec_numbers
from zoo.registry import failed_plugins, load_registry
from zoo.runs.plugin_calls import SLACK, blamed, plugin_bug


class NoiseModel:
    """A corruption with numeric parameters; `strength` is the one a noise sweep scales."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    params: ClassVar[tuple[str, ...]] = ()          # parameter names, in the order of the spec string
    defaults: ClassVar[tuple[float, ...]] = ()
    integer: ClassVar[tuple[str, ...]] = ()         # parameters that must be whole numbers
    ranges: ClassVar[dict[str, tuple[float, float]]] = {}  # valid (low, high) of a parameter, both included
    # True if __call__ takes `strength=`, a tensor that replaces the first parameter: denoisers that
    # differ only in that level then train together in one vectorised step.
    vectorized: ClassVar[bool] = False

    def __init__(self, *values: float):
        self.values = dict(zip(self.params, spec_numbers(self, values, f"{self.name} noise")))
        with blamed(self, "check"):  # a ValueError of a plugin's check(): its bug, named, not a traceback
            self.check()

    def check(self) -> None:
        """Raise ConfigError for values that break a rule of the noise beyond its `ranges` and `integer`
        (which zoo.plugin_values checks)."""

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def scaled(self, factor: float) -> "NoiseModel":
        """The same noise with its first parameter multiplied by `factor` (for sweeps)."""
        first, *rest = self.values.values()
        value = first * factor
        if self.params[0] in self.integer:
            value = int(round(value))
        return type(self)(value, *rest)

    def on(self, shape: tuple[int, ...]) -> "NoiseModel":
        """The noise as it acts on images of `shape` (..., height, width): itself, unless a parameter is cut
        to the image (an occlusion patch larger than the image covers all of it), so that a sweep knows two
        levels that corrupt alike for one."""
        return self

    @property
    def spec(self) -> str:
        return self.name + ":" + ":".join(f"{v:g}" for v in self.values.values())

    def __repr__(self) -> str:
        return self.spec


def noised(noise: NoiseModel, x: torch.Tensor, generator: torch.Generator | None = None, *,
           strength: torch.Tensor | None = None, values: bool = True) -> torch.Tensor:
    """`x` corrupted by `noise` (with `strength`, a vectorized noise's level), held to the contract: float images of
    x's shape and device, finite and in [0, 1]. What the noise raises or hands back wrong is said as its plugin's
    bug (zoo.runs.plugin_calls), not left to fail later as the user's images. Every corruption goes through here:
    a DAE's training, evaluation and preview, zoo denoise, the noise sweep. `values=False` checks the type, shape
    and device alone (no device sync), for steps where a check of the values cannot run (vmapped, recorded in a
    CUDA graph): the DAE checks them once on training images before its first step."""
    with blamed(noise, "__call__"):
        out = noise(x, generator) if strength is None else noise(x, generator, strength=strength)
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        shown = f"a {out.dtype} tensor" if isinstance(out, torch.Tensor) else type(out).__name__
        raise plugin_bug(noise, "__call__", f"gave {shown}, not float images")
    if out.shape != x.shape:
        raise plugin_bug(noise, "__call__", f"gave shape {tuple(out.shape)} for images of shape {tuple(x.shape)}: "
                                            "the corrupted images are x's shape")
    if out.device != x.device:
        raise plugin_bug(noise, "__call__", f"gave images on {out.device} for images on {x.device}")
    if values and out.numel():
        if not bool(torch.isfinite(out).all()):
            raise plugin_bug(noise, "__call__", "gave images holding NaN or infinite values")
        low, high = float(out.min()), float(out.max())
        if low < -SLACK or high > 1 + SLACK:
            raise plugin_bug(noise, "__call__", f"gave images with values from {low:.4g} to {high:.4g}, not in [0, 1]")
    return out


def noise_models() -> dict[str, type[NoiseModel]]:
    return {name: e.cls for name, e in load_registry().noise_models.items()}


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def parse_noise(spec: str | NoiseModel | None) -> NoiseModel | None:
    """'gaussian:0.3' -> GaussianNoise(0.3); 'none' or '' -> None."""
    if spec is None or isinstance(spec, NoiseModel):
        return spec
    if not isinstance(spec, str):
        raise ConfigError(f"a noise is named by a text such as 'gaussian:0.3', not {spec!r:.60}")
    spec = spec.strip()
    if spec.lower() in ("", "none", "off"):
        return None
    name, *raw = spec.split(":")
    available = noise_models()
    cls = available.get(name.lower())
    if cls is None:
        close = difflib.get_close_matches(name, list(available), n=3, cutoff=0.5)
        level = _number(name)  # a bare level ("0.3"): the kind is missing
        raise ConfigError(f"unknown noise '{name}'" + (": a noise is KIND:LEVEL" if level else ""),
                          (f"Did you mean: {', '.join(close)}? " if close else "")
                          + (f"For example gaussian:{name}. " if level else "")
                          + "Known: " + ", ".join(f"{n}:{':'.join(c.params)}" for n, c in sorted(available.items()))
                          + "." + failed_plugins())  # a plugin's noise may be among them
    return cls(*[v for v in raw if v != ""])  # text: checked and made numbers by zoo.plugin_values
