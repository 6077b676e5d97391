"""Opening a user's image files: one clear error naming a file Pillow cannot read, Pillow's warnings kept with
the file they concern, and grey levels deeper than 8 bits brought to 8 bits. Also what marks a folder as zoo's
own output (a run folder, ./zoo-outputs/), which a folder data set does not read as images."""

from __future__ import annotations

import struct
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from zoo.errors import DataNotFoundError

# What Pillow raises for a file it cannot read besides OSError (not an image, truncated, a decompression bomb): its
# plugins raise ValueError (a PNG's cut IHDR chunk, a BMP's palette size, a TIFF's dimensions, a PPM's garbled size),
# SyntaxError, EOFError, IndexError or struct.error for a damaged header. Each was a raw traceback.
DAMAGED = (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error)


@contextmanager
def open_image(path: Path, heard: dict[Path, list[str]] | None = None):
    """The file as a PIL image; one PIL cannot read (not an image, damaged, a decompression bomb) is one
    clear error naming it, whether it fails at the header or later, at the pixels. With `heard`, the warnings
    Pillow gives while it is read (a decompression bomb's size, a damaged TIFF tag) are kept there under the
    file, for a note naming it, instead of printing as Python warnings that name Pillow's source."""
    from PIL import Image

    with warnings.catch_warnings(record=heard is not None) as caught:
        if heard is not None:
            warnings.simplefilter("always")
        try:
            with Image.open(path) as im:
                yield im
        except (Image.DecompressionBombError, *DAMAGED) as e:
            raise DataNotFoundError(f"cannot read image {path}: {e}", "Remove or replace that file.") from None
        finally:
            for w in caught or ():
                said = heard.setdefault(Path(path), [])
                if str(w.message) not in said:
                    said.append(str(w.message))


GREY_MODES = {"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"}  # PIL modes without colour
# Grey images deeper than 8 bits, brought to 8-bit levels by scaling (PIL's convert("L") clips them: 30000
# became 255). 16-bit integers (and 32-bit "I" ones whose values lie in 0..65535) are divided by 257 and
# rounded (65535 -> 255); floats ("F") must lie in [0, 1] and are multiplied by 255 and rounded. Others
# (a float image outside [0, 1], an integer one beyond 0..65535) are refused, naming the file and its
# range: no scale would be right for every file of a folder. PIL reads 16-bit colour images as 8-bit RGB.
SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


def eight_bit(im, path: Path):
    """`im` with 16-bit or float grey levels scaled to an 8-bit "L" image (see SIXTEEN_BIT); others as they are."""
    from PIL import Image

    if im.mode not in SIXTEEN_BIT and im.mode != "F":
        return im
    a = np.asarray(im, dtype=np.float64)
    low, high = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if im.mode == "F":
        if not np.isfinite(a).all():
            raise DataNotFoundError(f"{path} is a float image holding NaN or infinite values: zoo reads float "
                                    "images whose values lie in [0, 1]", "Replace them, or save it as an 8-bit image.")
        if not (low >= 0.0 and high <= 1.0):
            raise DataNotFoundError(
                f"{path} is a float image with values from {low:g} to {high:g}: zoo reads float images "
                "whose values lie in [0, 1]", "Scale it to [0, 1], or save it as an 8- or 16-bit image.")
        return Image.fromarray(np.rint(a * 255.0).astype(np.uint8), "L")
    if low < 0 or high > 65535:
        raise DataNotFoundError(
            f"{path} is a 32-bit integer image with values from {low:g} to {high:g}: zoo reads integer "
            "images whose values lie in 0..65535 (16-bit)", "Save it as an 8- or 16-bit image.")
    return Image.fromarray(np.rint(a / 257.0).astype(np.uint8), "L")


OUTPUTS = "zoo-outputs"  # where zoo writes the results of a model the user does not own (zoo.runs.loading.OUTPUTS)
RUN_MARKS = ("model.safetensors", "checkpoint.safetensors", "metrics.jsonl", ".zoo.lock")  # beside its config.json


def is_zoo_output(folder: Path) -> bool:
    """Whether `folder` is one zoo wrote: a run (its config.json beside its weights, metrics or lock) or
    ./zoo-outputs/. A run trained from inside its image folder (`cd pictures && zoo train ... folder:.`) writes
    loss.png and reconstructions.png there: read as images, they made `runs` a class of the user's data."""
    if folder.name == OUTPUTS:
        return True
    return (folder / "config.json").is_file() and any((folder / m).exists() for m in RUN_MARKS)
