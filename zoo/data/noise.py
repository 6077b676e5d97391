"""Noise models: corruptions of images in [0, 1], drawn on the images' device, named like `gaussian:0.3`.

They are pluggable: a plugin returns `NoiseModel` subclasses from the `zoo_noise_models` hook.
"""

from __future__ import annotations

import difflib
from typing import ClassVar

import torch

from zoo.errors import ConfigError
from zoo.plugin_values import spec_numbers
from zoo.registry import load_registry


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
                          + "Known: " + ", ".join(f"{n}:{':'.join(c.params)}" for n, c in sorted(available.items())))
    return cls(*[v for v in raw if v != ""])  # text: checked and made numbers by zoo.plugin_values
