"""A plugin called by zoo, and its answer held to docs/plugins.md's contract: what it raises, and what it hands
back wrong (a tuple for codes, images of another shape or outside [0, 1], codes holding NaN for finite images),
said as a bug of its plugin, naming the package (`PluginError`). Unchecked, such a mistake failed later in a
traceback of zoo's, drew a garbage picture with exit 0, or was blamed on the user's options."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import torch

from zoo.errors import PluginError, ZooError, out_of_memory
from zoo.model import ZooModel
from zoo.registry import PluginEntry, load_registry

SLACK = 1e-3  # a noise model's images a hair outside [0, 1] (float rounding) are its own (zoo.data.noise)
KINDS = (("models", "model"), ("noise_models", "noise model"), ("samplers", "sampler"), ("callbacks", "callback"),
         ("loggers", "logger"))  # the registry's plugin kinds, as a message names them


def plugin_entry(plugin: object) -> tuple[str, PluginEntry] | None:
    """The kind ("noise model", ...) and registry entry of a plugin's object (or class); None where the registry has
    no such class (a model built outside it)."""
    cls = plugin if isinstance(plugin, type) else type(plugin)
    registry = load_registry()
    for attr, kind in KINDS:
        for entry in getattr(registry, attr).values():
            if entry.cls is cls:
                return kind, entry
    return None


def plugin_named(plugin: object) -> str:
    """`KIND 'NAME' (package VERSION)`: a plugin's object (a model, a noise model, a sampler, a callback, a logger,
    or its class) as the registry knows where its class came from."""
    found = plugin_entry(plugin)
    if found is not None:
        kind, entry = found
        return f"{kind} '{entry.name}' ({entry.package} {entry.version})"
    cls = plugin if isinstance(plugin, type) else type(plugin)
    return f"{'model' if issubclass(cls, ZooModel) else 'plugin'} '{getattr(plugin, 'name', cls.__name__)}'"


def plugin_bug(plugin: object, method: str, problem: str) -> PluginError:
    """`plugin`'s `method` broke the contract with `problem`: said as its package's bug, for its author."""
    return PluginError(f"{plugin_named(plugin)}: its {method}() {problem}",
                       "A bug in the plugin (docs/plugins.md): report it to its author. "
                       "(From Python, an exception it raised is this error's __cause__, with its traceback.)")


@contextlib.contextmanager
def blamed(plugin: object, method: str) -> Iterator[None]:
    """What `plugin`'s `method` raises, said as its package's bug; zoo's own errors, a stop and a failed
    allocation (the memory at hand, not a bug) pass as they are."""
    try:
        yield
    except (ZooError, KeyboardInterrupt):
        raise
    except Exception as e:
        if out_of_memory(e) is not None or _converted(plugin, e):
            raise
        raise plugin_bug(plugin, method, f"raised {type(e).__name__}: {str(e)[:300]}") from e


def _converted(plugin: object, e: Exception) -> bool:
    """Whether `e` is a model's that its user converted to another dtype (run.model.half()) failing in it: said
    by zoo.runs.inputs.said_in_its_dtype around the task, with the way back, not as its plugin's bug."""
    return isinstance(plugin, ZooModel) and isinstance(e, RuntimeError) and plugin.dtype != torch.float32


def _tensor(model: ZooModel, method: str, out) -> torch.Tensor:
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        shown = type(out).__name__ if not isinstance(out, torch.Tensor) else f"a {out.dtype} tensor"
        raise plugin_bug(model, method, f"gave {shown}, not a float tensor")
    return out


def images_of(model: ZooModel, method: str, out, n: int) -> torch.Tensor:
    """`out` if it is `n` finite images [n, C, H, W] of the model's shape. Their range is not checked: docs ask
    [0, 1], yet zoo's own autoencoders trained with sigmoid_output=false give values beyond it (its callers clamp)."""
    out = _tensor(model, method, out)
    if tuple(out.shape) != (n, *model.shape):
        raise plugin_bug(model, method, f"gave a tensor of shape {list(out.shape)}, not {n} images "
                                        f"{[n, *model.shape]}")
    if not bool(torch.isfinite(out).all()):  # one read back from the device
        raise plugin_bug(model, method, "gave images holding NaN or infinite values (or its weights are damaged: "
                                        "train it again)")
    return out


def codes_of(model: ZooModel, method: str, out, n: int) -> torch.Tensor:
    """`out` if it is `n` finite codes (one per image, of any shape after the first dimension)."""
    out = _tensor(model, method, out)
    if out.dim() < 2 or out.shape[0] != n:
        raise plugin_bug(model, method, f"gave a tensor of shape {list(out.shape)}, not {n} codes [{n}, D]")
    if not bool(torch.isfinite(out).all()):
        raise plugin_bug(model, method, "gave codes holding NaN or infinite values for finite images "
                                      "(or its weights are damaged: train it again)")
    return out


def per_image(model: ZooModel, method: str, out, n: int, width: int | None = None) -> torch.Tensor:
    """`out` if it holds one value per image [n] (`width` None), or one row [n, width] (a class's logits)."""
    out = _tensor(model, method, out)
    wanted = [n] if width is None else [n, width]
    if list(out.shape) != wanted:
        raise plugin_bug(model, method, f"gave a tensor of shape {list(out.shape)}, not {wanted}")
    return out


def metric_values(model: ZooModel, out, n: int) -> list[tuple[str, torch.Tensor]]:
    """The (name, values) a model's `metrics` gave for a batch of `n` images, if each holds one value per image
    ([n]: a batch mean would be summed as if it were one image)."""
    if not isinstance(out, dict):
        raise plugin_bug(model, "metrics", f"gave {type(out).__name__}, not a dict of per-image tensors")
    for name, values in out.items():
        if not isinstance(values, torch.Tensor) or values.numel() != n:
            what = f"shape {tuple(values.shape)}" if isinstance(values, torch.Tensor) else \
                f"a {type(values).__name__}"
            raise plugin_bug(model, "metrics", f"gave metric '{name}' that is not per image ({what} for {n} "
                                             "images): it must return one value per image, [B] tensors")
    return list(out.items())


def report_of(model: ZooModel, out) -> dict | None:
    """What a model's `evaluation_report` gave, if eval.json can hold it: None, or a dict of JSON values."""
    if out is None:
        return None
    try:
        if not isinstance(out, dict):
            raise TypeError(f"a {type(out).__name__}")
        json.dumps(out)  # as eval.json is written (ckpt.write_json): a NaN goes, a tensor does not
    except (TypeError, ValueError, RecursionError) as e:
        raise plugin_bug(model, "evaluation_report", f"gave what eval.json cannot hold ({e}), not a dict of "
                                                   "numbers, strings, lists and dicts") from None
    return out


def model_preview(model: ZooModel, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """The rows of `model.preview(x)` (its end-of-training picture: a label and images of its shape each), taken
    in eval mode without gradients, the model's mode given back after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), blamed(model, "preview"):
            rows = model.preview(x)
    finally:
        model.train(was_training)
    if not isinstance(rows, (list, tuple)) or not all(
            isinstance(row, (list, tuple)) and len(row) == 2 and isinstance(row[0], str)
            and isinstance(row[1], torch.Tensor) and tuple(row[1].shape[1:]) == tuple(model.shape) for row in rows):
        raise plugin_bug(model, "preview", f"gave {type(rows).__name__} of other rows than (label, images "
                                           f"[k, {', '.join(map(str, model.shape))}]) pairs")
    return list(rows)
