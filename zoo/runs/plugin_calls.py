"""A plugin's model called for a Run, and its answer held to docs/plugins.md's contract: what it raises, and
what it hands back wrong (a tuple for codes, images of another shape or outside [0, 1], codes holding NaN
for finite images), said as a bug of its plugin, naming the package. Unchecked, such a mistake failed later
in a traceback of zoo's, drew a garbage picture with exit 0, or was blamed on the user's options."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from zoo.errors import PluginError, ZooError, out_of_memory
from zoo.model import ZooModel
from zoo.registry import load_registry

SLACK = 1e-3  # images a hair outside [0, 1] (float rounding of a sigmoid or tanh) are a model's own


def plugin_named(model: ZooModel) -> str:
    """`model 'NAME' (package VERSION)` as the registry knows where its class came from."""
    entry = load_registry().models.get(model.name)
    if entry is None or entry.cls is not type(model):
        return f"model '{model.name}'"
    return f"model '{model.name}' ({entry.package} {entry.version})"


def _refused(model: ZooModel, method: str, problem: str) -> PluginError:
    return PluginError(f"{plugin_named(model)}: its {method}() {problem}",
                       "A bug in the model's plugin (docs/plugins.md, section 2): report it to its author. "
                       "From Python, the exception's __cause__ holds the plugin's own traceback.")


@contextlib.contextmanager
def blamed(model: ZooModel, method: str) -> Iterator[None]:
    """What `model`'s `method` raises, said as its plugin's bug; zoo's own errors, a stop and a failed
    allocation (the memory at hand, not a bug) pass as they are."""
    try:
        yield
    except (ZooError, KeyboardInterrupt):
        raise
    except Exception as e:
        if out_of_memory(e) is not None:
            raise
        raise _refused(model, method, f"raised {type(e).__name__}: {str(e)[:300]}") from e


def _tensor(model: ZooModel, method: str, out) -> torch.Tensor:
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        shown = type(out).__name__ if not isinstance(out, torch.Tensor) else f"a {out.dtype} tensor"
        raise _refused(model, method, f"gave {shown}, not a float tensor")
    return out


def images_of(model: ZooModel, method: str, out, n: int) -> torch.Tensor:
    """`out` if it is `n` images [n, C, H, W] of the model's shape with values in [0, 1]."""
    out = _tensor(model, method, out)
    if tuple(out.shape) != (n, *model.shape):
        raise _refused(model, method, f"gave a tensor of shape {list(out.shape)}, not {n} images "
                                      f"{[n, *model.shape]}")
    if n and not (float(out.min()) >= -SLACK and float(out.max()) <= 1 + SLACK):  # NaN fails both
        low, high = float(out.min()), float(out.max())
        raise _refused(model, method, f"gave images with values from {low:.4g} to {high:.4g} (or NaN), "
                                      "not in [0, 1]")
    return out


def codes_of(model: ZooModel, method: str, out, n: int) -> torch.Tensor:
    """`out` if it is `n` finite codes (one per image, of any shape after the first dimension)."""
    out = _tensor(model, method, out)
    if out.dim() < 2 or out.shape[0] != n:
        raise _refused(model, method, f"gave a tensor of shape {list(out.shape)}, not {n} codes [{n}, D]")
    if not bool(torch.isfinite(out).all()):
        raise _refused(model, method, "gave codes holding NaN or infinite values for finite images "
                                      "(or its weights are damaged: train it again)")
    return out


def per_image(model: ZooModel, method: str, out, n: int, width: int | None = None) -> torch.Tensor:
    """`out` if it holds one value per image [n] (`width` None), or one row [n, width] (a class's logits)."""
    out = _tensor(model, method, out)
    wanted = [n] if width is None else [n, width]
    if list(out.shape) != wanted:
        raise _refused(model, method, f"gave a tensor of shape {list(out.shape)}, not {wanted}")
    return out
