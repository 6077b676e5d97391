"""What callers hand a Run's methods (images, latent codes, class indices, a generator), checked and brought to
the model: its device and its floating dtype (a model its user made half, bfloat16 or double takes its inputs in
that dtype, as it takes them on its device)."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from zoo.errors import ConfigError
from zoo.model import ZooModel


def described(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).replace('torch.', '')} tensor of shape {list(value.shape)}"
    return f"a {type(value).__name__}"


def dtype_name(model: ZooModel) -> str:
    return str(model.dtype).replace("torch.", "")


@contextlib.contextmanager
def said_in_its_dtype(model: ZooModel):
    """A model its user made half, bfloat16 or double whose own code makes float32 tensors (the noise it draws,
    a prior's table) fails deep in torch: said in one zoo error with the way back. A float32 model's errors, and
    running out of memory, are left as they are."""
    try:
        yield
    except torch.cuda.OutOfMemoryError:
        raise
    except RuntimeError as e:
        if model.dtype == torch.float32:
            raise
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ConfigError(f"model '{model.name}' fails in {dtype_name(model)}, the dtype run.model was converted to "
                          f"(its own computation makes float32 tensors, or torch lacks an operation): {reason[:160]}",
                          "Bring it back with run.model.float() (or zoo.load the run again); encode, classify, "
                          "sample and decode take zoo's models in other float dtypes, a likelihood (nll) does "
                          "not.") from e


def _refuse_meta(value: torch.Tensor, what: str) -> None:
    if value.is_meta:  # a meta tensor has a shape and no values: torch's copy of it fails deep down
        raise ConfigError(f"{what} on the meta device hold no values, got {described(value)}",
                          "Pass tensors that hold data (on the cpu or the run's device).")


def model_images(x: Any, model: ZooModel) -> torch.Tensor:
    """`x` as `model` takes it: a float batch [N, C, H, W] in [0, 1] on its device, in its dtype (uint8 images
    are divided by 255, one image gets a batch of one). Another shape, another integer type, floats outside
    [0, 1] (0..255 floats, NaN) are refused: the model would silently compute garbage."""
    shape = model.shape
    if not isinstance(x, torch.Tensor):
        raise ConfigError(f"images must be a torch tensor, got {described(x)}",
                          "For example run.data('test')[0][:8], "
                          "or zoo.load_images(FOLDER, run.shape, run.device)[0].")
    _refuse_meta(x, "images")
    if x.dim() == len(shape):
        x = x.unsqueeze(0)
    if x.dim() != len(shape) + 1 or tuple(x.shape[1:]) != tuple(shape):
        raise ConfigError(f"model '{model.name}' takes images of shape {list(shape)} "
                          f"(or a batch [N, {', '.join(map(str, shape))}]), got {list(x.shape)}",
                          "Bring them to the run's size and channels first (zoo.load_images does).")
    if x.dtype == torch.uint8:
        return x.to(model.device, model.dtype) / 255.0
    if not x.is_floating_point():
        raise ConfigError(f"images must be uint8 (0..255) or floats in [0, 1], got {described(x)}",
                          "Divide integer pixels by 255 (x.float() / 255), or pass them as uint8.")
    x = x.to(model.device, model.dtype)  # a value beyond the dtype's range becomes inf here: refused below
    if x.numel():
        low, high = (float(v) for v in torch.aminmax(x.float()))  # one pass; a NaN makes both NaN: refused
        if not (0.0 <= low and high <= 1.0):
            raise ConfigError(f"float images must lie in [0, 1] (and be finite), these span "
                              f"{low:.4g} .. {high:.4g}", "Divide 0..255 pixels by 255, or pass them as uint8.")
    return x


def latent_codes(z: Any, width: int | None, model: ZooModel) -> torch.Tensor:
    """Codes [N, width] as `model` decodes them: on its device, in its dtype, every value finite there (a
    float64 code of 1e300 is finite, and infinite in float32: checked after the cast, not before)."""
    if (not isinstance(z, torch.Tensor) or z.dim() != 2 or not z.is_floating_point()
            or (width is not None and z.shape[1] != width)):
        raise ConfigError(f"decode takes latent codes as a float tensor [N, {width or 'D'}], got {described(z)}",
                          "Encode images with run.encode(x) for codes of the right size.")
    _refuse_meta(z, "codes")
    z = z.to(model.device, model.dtype)  # as model_images takes images: float64 too
    if not bool(torch.isfinite(z).all()):
        raise ConfigError(f"decode: the codes hold NaN or infinite values (or values beyond the range of "
                          f"{dtype_name(model)}, the model's dtype)",
                          "Encode images with run.encode(x) for codes the model decodes.")
    return z


def class_indices(labels: Any, classes: list[str], device: torch.device, what: str) -> torch.Tensor:
    """Class indices as a long tensor on `device`: a 1-D tensor or list of whole numbers (none: an empty one)."""
    try:
        labels = torch.as_tensor(labels)
    except (TypeError, ValueError, RuntimeError):
        labels = None
    if labels is not None and labels.dim() == 1 and len(labels) == 0 and not labels.is_meta:
        return torch.zeros(0, dtype=torch.long, device=device)  # [] is float32 to torch: no index, of no type
    if labels is None or labels.dim() != 1 or labels.dtype in (torch.bool, torch.uint8) \
            or labels.is_floating_point() or labels.is_complex():
        raise ConfigError(f"{what} takes class indices: a 1-D tensor or list of whole numbers",
                          f"Classes: 0..{len(classes) - 1} ({', '.join(classes[:10])}).")
    _refuse_meta(labels, "class indices")
    if not (0 <= int(labels.min()) and int(labels.max()) < len(classes)):
        raise ConfigError(f"{what}: a class index outside 0..{len(classes) - 1}")
    return labels.long().to(device)


def check_generator(generator):
    """A sampling method's generator= as given: None or a torch.Generator (an int seed raised a TypeError deep
    down)."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ConfigError(f"generator must be a torch.Generator, not {generator!r:.60}",
                          "For example torch.Generator(device=run.device).manual_seed(0).")
    return generator
