"""Reading the IDX files of MNIST-style data sets, gzipped or not."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from zoo.errors import DataNotFoundError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class IDXError(ValueError):
    pass


def read_idx(path: str | Path) -> np.ndarray:
    """Return the array stored in an IDX file (`.gz` is decompressed transparently)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as e:
        raise IDXError(f"{path}: cannot read ({e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise IDXError(f"{path}: not an IDX file")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:  # "expected 0 bytes of data, found -6": the header itself is cut short
        raise IDXError(f"{path}: truncated: its header names {ndim} dimension(s), which take {header} bytes, and the "
                       f"file holds {len(data)} bytes")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(_DTYPES[data[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(data) - header != expected:
        raise IDXError(f"{path}: truncated or corrupt (expected {expected} bytes of data, found {len(data) - header})")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)


SPLIT_HINT = "Replace the file(s) with the set's own: four IDX files of one set (images [N, H, W], labels [N])."


def read_idx_set(name: str, num_classes: int, files: dict[str, Path]) -> dict[str, np.ndarray]:
    """The four arrays of an MNIST-style set (train_images, train_labels, test_images, test_labels), each
    split refused, naming the file, where it is not N >= 1 images [N, H, W] of 8-bit pixels and N labels [N]
    within the set's classes, or where its images are not the other split's size: a file of no images left a
    traceback after training, a 0-D file an IndexError, labels [N, 1] a classifier's crash."""
    try:
        arrays = {k: read_idx(p) for k, p in files.items()}
    except IDXError as e:
        raise DataNotFoundError(f"data set '{name}': {e}", "Replace the damaged file(s).") from None
    for split in ("train", "test"):
        problem = _split_problem(name, num_classes, files, split, arrays[f"{split}_images"], arrays[f"{split}_labels"])
        if problem:
            raise DataNotFoundError(f"data set '{name}': {problem[0]}", problem[1])
    train, test = arrays["train_images"].shape[1:], arrays["test_images"].shape[1:]
    if train != test:
        raise DataNotFoundError(f"data set '{name}': the training images are {_dims(train)}, the test images "
                                f"{_dims(test)} ({files['test_images']})",
                                "A data set's splits hold images of one size: replace the file(s) with the set's own.")
    return arrays


def _split_problem(name: str, num_classes: int, files: dict, split: str, imgs, labels) -> tuple[str, str] | None:
    """(what is wrong, what to do) with a split's arrays, or None. Besides the shapes, what the IDX format allows
    but these sets never hold: pixels other than 8-bit (a float or 16-bit file cast to 8 bits would turn into
    blank or wrapped images), labels outside the set's classes."""
    images, labelled = files[f"{split}_images"], files[f"{split}_labels"]
    if imgs.ndim != 3:
        return (f"{images} holds a {imgs.ndim}-D array {list(imgs.shape)}; an images file holds [N, H, W] "
                "(N images of H×W pixels)", SPLIT_HINT)
    if labels.ndim != 1:
        return f"{labelled} holds a {labels.ndim}-D array {list(labels.shape)}; a labels file holds [N]", SPLIT_HINT
    if imgs.shape[0] == 0 or 0 in imgs.shape[1:]:
        held = "no images" if imgs.shape[0] == 0 else f"images of {_dims(imgs.shape[1:])} pixels"
        return f"{images} holds {held}", SPLIT_HINT
    if labels.shape[0] != imgs.shape[0]:
        return (f"{split} images and labels do not match: {labelled} holds {labels.shape[0]:,} labels for the "
                f"{imgs.shape[0]:,} images of {images}", SPLIT_HINT)
    if imgs.dtype != np.uint8:
        return (f"{images} holds {imgs.dtype.name} pixels; {name}'s files hold 8-bit ones (0 to 255)",
                "Convert the images to 8 bits (uint8), or use a folder of images (--dataset folder:PATH), which "
                "converts them.")
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if bad.size:
        return (f"{labelled} holds the label {int(bad[0])}, outside {name}'s {num_classes} classes "
                f"(0 to {num_classes - 1})", "Replace the file with the set's own labels.")
    return None


def _dims(shape) -> str:
    return "×".join(str(int(v)) for v in shape)
