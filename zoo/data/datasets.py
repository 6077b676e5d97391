"""Data sets by name, as uint8 tensors split train/validation/test by a fixed seed.

The whole set lives on the training device; the engine forms batches by indexing, so there is no
per-sample Python and no DataLoader on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from zoo.data import sources
from zoo.data.idx import IDXError, read_idx
from zoo.errors import DataNotFoundError

SPLIT_SEED = 20221  # fixed: the same split for every run, whatever its training seed
TEST_FRACTION = 0.2  # for sets that come without a test split (digits, folders)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm"}


@dataclass
class ImageData:
    """Images as uint8 [N, C, H, W] and labels as int64 [N] (-1 where there is no label)."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]
    binarize: str = "none"

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def split(self, which: str) -> tuple[torch.Tensor, torch.Tensor]:
        return getattr(self, f"{which}_x"), getattr(self, f"{which}_y")

    def to(self, device) -> "ImageData":
        moved = {k: getattr(self, k).to(device) for k in
                 ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")}
        return replace(self, **moved)

    def info(self) -> dict:
        return {
            "name": self.name,
            "pixels": {"none": "grey levels"}.get(self.binarize, f"binarised ({self.binarize})"),
            "shape": list(self.shape),
            "classes": list(self.classes),
            "sizes": {s: int(getattr(self, f"{s}_x").shape[0]) for s in ("train", "val", "test")},
        }


def _split_off(x: torch.Tensor, y: torch.Tensor, fraction: float, seed: int):
    """Split (x, y) into (rest, held_out) with `fraction` held out, by a fixed permutation."""
    n = x.shape[0]
    k = int(round(n * fraction))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    held, rest = perm[:k], perm[k:]
    return (x[rest], y[rest]), (x[held], y[held])


def _assemble(name, train_x, train_y, test_x, test_y, classes, val_fraction) -> ImageData:
    (tx, ty), (vx, vy) = _split_off(train_x, train_y, val_fraction, SPLIT_SEED)
    return ImageData(name, tx, ty, vx, vy, test_x, test_y, tuple(classes))


BINARIZE_SEED = 31337  # fixed: binarised validation and test sets are the same in every run


def binarized(x: torch.Tensor, seed: int) -> torch.Tensor:
    """uint8 grey levels -> uint8 {0, 255}, each pixel ~ Bernoulli(grey / 255), reproducibly."""
    gen = torch.Generator().manual_seed(seed)
    p = x.float().div(255.0)
    return (torch.rand(p.shape, generator=gen) < p).to(torch.uint8) * 255


def load_dataset(name: str, *, data_dir: str | None = None, val_fraction: float = 0.1,
                 image_size: int = 0, binarize: str = "none", device: str | torch.device = "cpu") -> ImageData:
    """Load a data set by name: mnist, fashion-mnist, kmnist, digits or folder:PATH.

    binarize: "none" keeps grey levels; "static" samples binary pixels once for every split;
    "dynamic" does so once for validation and test (fixed seed) and leaves the training images grey,
    for the engine to resample every batch, as the literature's likelihood figures do."""
    key = name.strip()
    if key.lower().startswith("folder:"):
        data = _load_folder(key[len("folder:"):], val_fraction, image_size)
    elif key.lower() == "digits":
        data = _load_digits(val_fraction)
    elif key.lower() in sources.SETS:
        data = _load_idx_set(sources.SETS[key.lower()], data_dir, val_fraction)
    else:
        known = ", ".join(list(sources.SETS) + ["digits", "folder:PATH"])
        raise DataNotFoundError(f"unknown data set '{name}'", f"Known data sets: {known}.")
    if binarize in ("static", "dynamic"):
        data = replace(data, val_x=binarized(data.val_x, BINARIZE_SEED), test_x=binarized(data.test_x, BINARIZE_SEED + 1))
        if binarize == "static":
            data = replace(data, train_x=binarized(data.train_x, BINARIZE_SEED + 2))
    elif binarize not in ("none", "", None):
        raise DataNotFoundError(f"unknown binarize option '{binarize}'", "Use none, static or dynamic.")
    data.binarize = binarize or "none"
    return data.to(device)


def dataset_names() -> list[str]:
    return list(sources.SETS) + ["digits", "folder:PATH"]


def _load_idx_set(spec: sources.TorchvisionSet, data_dir, val_fraction) -> ImageData:
    files = sources.locate(spec, data_dir)
    try:
        arrays = {k: read_idx(p) for k, p in files.items()}
    except IDXError as e:
        raise DataNotFoundError(f"data set '{spec.name}': {e}", "Replace the damaged file(s).") from None
    for split in ("train", "test"):
        imgs, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if imgs.ndim != 3 or labels.shape[0] != imgs.shape[0]:
            raise DataNotFoundError(f"data set '{spec.name}': {split} images and labels do not match")

    def images(a):
        return torch.from_numpy(a.astype(np.uint8, copy=True)).unsqueeze(1)

    def labels(a):
        return torch.from_numpy(a.astype(np.int64))

    return _assemble(spec.name, images(arrays["train_images"]), labels(arrays["train_labels"]),
                     images(arrays["test_images"]), labels(arrays["test_labels"]), spec.classes, val_fraction)


def _load_digits(val_fraction) -> ImageData:
    """scikit-learn's bundled 8×8 digits (17 grey levels), brought to 28×28 like MNIST."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    x = torch.nn.functional.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
    x = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    y = torch.from_numpy(bunch.target.astype(np.int64))
    (train_x, train_y), (test_x, test_y) = _split_off(x, y, TEST_FRACTION, SPLIT_SEED + 1)
    return _assemble("digits", train_x, train_y, test_x, test_y, [str(i) for i in range(10)], val_fraction)


def _load_folder(path: str, val_fraction: float, image_size: int) -> ImageData:
    """A user's own images: grey or RGB, labelled by sub-folder if they are in sub-folders."""
    from PIL import Image, UnidentifiedImageError

    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataNotFoundError(f"image folder not found: {root}", "Use folder:PATH with an existing folder.")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataNotFoundError(f"no images in {root}",
                                f"zoo reads files ending in {', '.join(sorted(IMAGE_SUFFIXES))}.")
    in_subdirs = all(p.parent != root for p in files)
    classes = sorted({p.relative_to(root).parts[0] for p in files}) if in_subdirs else ["image"]
    pics = []
    for p in files:
        try:
            with Image.open(p) as im:
                im.load()
                pics.append(im.copy())
        except (UnidentifiedImageError, OSError) as e:
            raise DataNotFoundError(f"cannot read image {p}: {e}", "Remove or replace that file.") from None
    grey = all(im.mode in ("1", "L", "LA", "I", "I;16", "F") for im in pics)
    mode = "L" if grey else "RGB"
    size = (image_size, image_size) if image_size else pics[0].size
    arrays = [np.asarray(im.convert(mode).resize(size, Image.BILINEAR), dtype=np.uint8) for im in pics]
    x = torch.from_numpy(np.stack(arrays))
    x = x.unsqueeze(1) if grey else x.permute(0, 3, 1, 2).contiguous()
    index = {c: i for i, c in enumerate(classes)}
    y = torch.tensor([index[p.relative_to(root).parts[0]] if in_subdirs else 0 for p in files], dtype=torch.int64)
    (train_x, train_y), (test_x, test_y) = _split_off(x, y, TEST_FRACTION if len(files) >= 5 else 0.0, SPLIT_SEED + 2)
    if test_x.shape[0] == 0:  # tiny folders: evaluate on the training images
        test_x, test_y = train_x, train_y
    data = _assemble(f"folder:{root}", train_x, train_y, test_x, test_y, classes, val_fraction)
    if data.val_x.shape[0] == 0:
        data = replace(data, val_x=data.train_x, val_y=data.train_y)
    return data
