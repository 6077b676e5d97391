"""Each image's test metrics, kept beside eval.json (eval-images.safetensors), so that two runs measured on
the same images can be compared image by image (`zoo compare`).

Why image by image: most of the spread of a test metric over the images is which image is hard, not which
model measured it. The −log p(x) of a likelihood model has a standard error of about 0.2 nats over MNIST's
10,000 test images, yet the difference between two such models, taken image by image over the same
images, has one of about 0.03 (docs/model-zoo.md, "How precise these figures are"). Set side by side,
the two figures' own standard errors would call real differences noise.

The file holds one float64 tensor per metric, in the order of the images, and records which evaluation
wrote it: the weights measured, the images and labels measured (their sha256) and eval.json's means. A
reader uses it only while eval.json is that evaluation's.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from zoo.errors import RunError
from zoo.runs.checkpoint import EVAL, WEIGHTS_DIGEST, load_tensors, read_eval, save_tensors
from zoo.runs.files import read_header

IMAGES_FILE = "eval-images.safetensors"
IMAGES_DIGEST = "images_digest"  # eval.json and the file's metadata: which images (and labels) were measured


def hash_images(h: Any, x: torch.Tensor, y: torch.Tensor) -> None:
    """Feed the images and labels an evaluation measures (their types, shapes and bytes) into hash `h`."""
    for t in (x, y):
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())


def images_digest(x: torch.Tensor, y: torch.Tensor) -> str:
    """The sha256 of the images and labels an evaluation measured: two evaluations pair only on equal ones
    (the same dataset, split, binarisation and --limit)."""
    h = hashlib.sha256()
    hash_images(h, x, y)
    return h.hexdigest()


def write(folder: Path, values: dict[str, torch.Tensor], result: dict[str, Any]) -> Path:
    """Save each image's metrics of the evaluation whose eval.json is `result` (written before this file;
    a figure it kept from an earlier evaluation whose values were lost has none here)."""
    path = Path(folder) / IMAGES_FILE
    meta = {"weights": result[WEIGHTS_DIGEST], "images": result[IMAGES_DIGEST],
            "metrics": json.dumps(result["metrics"])}
    save_tensors(path, {k: v.double() for k, v in values.items()}, meta)
    return path


def read(folder: Path, evaluated: dict[str, Any]) -> tuple[dict[str, torch.Tensor], str | None]:
    """The per-image values of the evaluation `evaluated` (a run's current eval.json) records: ({metric:
    values}, None); ({}, None) where there are none (an evaluation by an older zoo); ({}, why) where the
    file cannot be used (damaged, or another evaluation's)."""
    path = Path(folder) / IMAGES_FILE
    if not path.is_file():
        return {}, None
    try:
        tensors, meta = load_tensors(path)
    except (RunError, OSError) as e:
        return {}, f"{IMAGES_FILE} cannot be read ({getattr(e, 'message', None) or e}): ignored"
    n, names = evaluated.get("images"), evaluated.get("metrics", {})
    same = (meta.get("weights") == evaluated.get(WEIGHTS_DIGEST) and meta.get("images") == evaluated.get(IMAGES_DIGEST)
            and meta.get("metrics") == json.dumps(names))
    shapes = all(t.dtype == torch.float64 and tuple(t.shape) == (n,) for t in tensors.values())
    if not same or not set(tensors) <= set(names) or not shapes:  # fewer: figures kept without their values
        return {}, f"{IMAGES_FILE} is not from the evaluation eval.json holds: ignored; run zoo eval again"
    return tensors, None


def current_eval(folder: Path, weights: Path | None = None) -> tuple[dict[str, Any] | None, str | None]:
    """read_eval's eval.json, but (None, why) where its figures are not those its evaluation wrote: the
    per-image file records the figures of the evaluation of the same weights and images, and zoo eval removes
    it before it writes another eval.json, so one that disagrees was edited since (a hand-set figure would be
    published and ranked, beside the real standard error)."""
    evaluated, note = read_eval(folder, weights)
    if evaluated is None:
        return evaluated, note
    try:
        _, meta = read_header(Path(folder) / IMAGES_FILE) if (Path(folder) / IMAGES_FILE).is_file() else (None, {})
        recorded = json.loads(meta["metrics"]) if isinstance(meta, dict) and "metrics" in meta else None
    except (RunError, OSError, ValueError):  # damaged: read() says so; eval.json is not judged by it
        return evaluated, None
    same = meta.get("weights") == evaluated.get(WEIGHTS_DIGEST) and meta.get("images") == evaluated.get(IMAGES_DIGEST)
    if same and isinstance(recorded, dict) and recorded != evaluated["metrics"]:
        return None, (f"{Path(folder) / EVAL} holds other figures than its evaluation wrote ({IMAGES_FILE} records "
                      "them): edited since; ignored; run zoo eval again")
    return evaluated, None


@dataclass(frozen=True)
class Paired:
    """How much `other` is above `reference` on one metric, image by image over the same images."""

    difference: float         # the mean over the images of other's value minus reference's
    standard_error: float     # of that mean: the differences' standard deviation over √images
    images: int

    def to_dict(self) -> dict[str, float | int]:
        return {"difference": self.difference, "standard_error": self.standard_error, "images": self.images}


def paired(reference: torch.Tensor, other: torch.Tensor) -> Paired:
    """The paired difference of two runs' per-image values of one metric over the same images."""
    d = other.double() - reference.double()
    n = d.numel()
    return Paired(float(d.mean()), float(d.std()) / math.sqrt(n) if n > 1 else math.nan, n)
