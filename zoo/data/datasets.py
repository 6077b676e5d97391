"""Data sets by name, as uint8 tensors split train/validation/test by a fixed seed.

The whole set lives on the training device; the engine forms batches by indexing, so there is no
per-sample Python and no DataLoader on the hot path.

How the splits are made. MNIST, Fashion-MNIST and KMNIST keep their own test split. digits and a folder
(folder:PATH) have none, so 20% of their images (TEST_FRACTION, rounded; none for a folder of fewer than
5 images) are held out for test. Then `val_fraction` (default 10%) of the remaining images is held out
for validation; 50 images give 36 / 4 / 10. Both are drawn by permutations with fixed seeds (SPLIT_SEED),
never the run's seed: the same files give the same splits in every run. A folder's files are taken in
sorted order (class folders by name, files by name within each), so its splits depend on the list of
file names only. Adding, removing or renaming a file redraws the whole permutation, so the new test split
overlaps the old training images: evaluate a run on the folder as it was trained. A folder split that
gets no image reuses the training images instead (ImageData.reused, and caveat() says so).

A folder's images are read as grey (1 channel) if every file is grey, else as RGB (3 channels); at
`image_size` if set, else at the most common size among all the files (refused where no two files share a
size, or where that size is over 1024 pixels a side: set image_size then). Where a folder mixes grey and
colour files, or sizes, `ImageData.notes` says so and names the files (`zoo train` prints the notes,
config.json keeps them as data.notes). A folder's class names are its class folders' names, in label
order: `ImageData.classes[label]`, recorded in a run's config.json as data.classes.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from zoo.data import sources
from zoo.data.folders import few, read_folder
from zoo.data.idx import read_idx_set
from zoo.device import pick_device
from zoo.errors import ConfigError, DataNotFoundError

SPLIT_SEED = 20221  # fixed: the same split for every run, whatever its training seed
TEST_FRACTION = 0.2  # for sets that come without a test split (digits, folders)
FOLDER_PREFIX = "folder:"


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
    # split -> "train" where a tiny folder has too few images for that split and reuses the training
    # images instead: figures on that split then measure fit, not generalisation.
    reused: dict[str, str] = field(default_factory=dict)
    # What reading a folder changed in some of its files (colour or size), or a split asked for and left empty.
    notes: tuple[str, ...] = ()
    # split -> each image's file, relative to the folder (a folder's images only: a named set has none).
    files: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])

    def __repr__(self) -> str:
        """Short: the dataclass's own printed six tensors and every file's name (25,777 characters for a folder of
        1,000 images), in a notebook cell."""
        sizes = ", ".join(f"{s}={getattr(self, f'{s}_x').shape[0]}" for s in ("train", "val", "test"))
        binarize = f", binarize={self.binarize!r}" if self.binarize not in ("none", "", None) else ""
        return f"ImageData(name={self.name!r}, shape={self.shape}, {sizes}, classes={self.num_classes}{binarize})"

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def split(self, which: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, labels) of the split "train", "val" or "test"."""
        if which not in ("train", "val", "test"):
            raise ConfigError(f"unknown split {which!r:.40}", "Use train, val or test.")
        return getattr(self, f"{which}_x"), getattr(self, f"{which}_y")

    def measured(self, which: str) -> tuple[torch.Tensor, torch.Tensor]:
        """A split as a model is measured on it: for a dynamically binarised one, the training images
        binarised once with a fixed seed, as the validation and test images are (training draws anew)."""
        x, y = self.split(which)
        if which == "train" and self.binarize == "dynamic":
            x = binarized(x.cpu(), BINARIZE_SEED + 2).to(x.device)
        return x, y

    def to(self, device) -> "ImageData":
        moved = {k: getattr(self, k).to(device) for k in
                 ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")}
        return replace(self, **moved)

    def pixels(self) -> str:
        """What a pixel holds, in words: 8-bit grey or colour levels, or binarised."""
        levels = "grey levels" if self.shape[0] == 1 else "colour levels (RGB)"
        return levels if self.binarize == "none" else f"binarised ({self.binarize})"

    def info(self) -> dict:
        info = {
            "name": self.name,
            "pixels": self.pixels(),
            "shape": list(self.shape),
            "classes": list(self.classes),
            "sizes": {s: int(getattr(self, f"{s}_x").shape[0]) for s in ("train", "val", "test")},
            "digests": {s: self.digest(s) for s in ("train", "val", "test")},
        }
        if self.reused:
            info["reused"] = dict(self.reused)
            info["caveat"] = self.caveat()
        if self.notes:
            info["notes"] = list(self.notes)
        return info

    def digest(self, which: str) -> str:
        """A short sha256 of a split's images and labels as read: a run's config.json records it, so that
        files of the same count but other images (another --data-dir, a folder's files replaced) are told
        apart when the run is resumed or evaluated."""
        h = hashlib.sha256()
        for t in self.split(which):
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    def caveat(self) -> str:
        """One sentence on the splits that reuse the training images ("" when none does)."""
        if not self.reused:
            return ""
        splits = " and ".join({"val": "validation", "test": "test"}[s] for s in sorted(self.reused, reverse=True))
        return (f"{self.name} has too few images for a separate {splits} split: it reuses the training images, "
                f"so {splits} figures measure fit to them, not generalisation")


def _split_off(x: torch.Tensor, y: torch.Tensor, fraction: float, seed: int):
    """Split (x, y) into (rest, held_out) with `fraction` held out, by a fixed permutation."""
    n = x.shape[0]
    k = int(round(n * fraction))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    held, rest = perm[:k], perm[k:]
    return (x[rest], y[rest]), (x[held], y[held])


def _assemble(name, train_x, train_y, test_x, test_y, classes, val_fraction) -> ImageData:
    (tx, ty), (vx, vy) = _split_off(train_x, train_y, val_fraction, SPLIT_SEED)
    notes = (f"val_fraction {val_fraction:g} of {train_x.shape[0]:,} images is no image: there is no validation "
             "split, and early stopping and the best epoch follow the training loss",) \
        if val_fraction > 0 and not vx.shape[0] else ()  # asked for, and silently none
    return ImageData(name, tx, ty, vx, vy, test_x, test_y, tuple(classes), notes=notes)


def class_name(classes, label: int) -> str:
    """The name of class `label`; "unlabelled" for a label outside the classes (an image without a class)."""
    return classes[label] if 0 <= label < len(classes) else "unlabelled"


BINARIZE_SEED = 31337  # fixed: binarised validation and test sets are the same in every run


def binarized(x: torch.Tensor, seed: int) -> torch.Tensor:
    """uint8 grey levels -> uint8 {0, 255}, each pixel ~ Bernoulli(grey / 255), reproducibly."""
    gen = torch.Generator().manual_seed(seed)
    p = x.float().div(255.0)
    return (torch.rand(p.shape, generator=gen) < p).to(torch.uint8) * 255


def load_dataset(name: str, *, data_dir: str | None = None, val_fraction: float = 0.1,
                 image_size: int = 0, binarize: str = "none", device: str | torch.device = "cpu",
                 shape: tuple[int, int, int] | None = None, classes: tuple[str, ...] | None = None) -> ImageData:
    """Load a data set by name: mnist, fashion-mnist, kmnist, digits or folder:PATH.

    binarize: "none" keeps grey levels; "static" samples binary pixels once for every split;
    "dynamic" does so once for validation and test (fixed seed) and leaves the training images grey,
    for the engine to resample every batch, as the literature's likelihood figures do.

    shape and classes: what a run was trained on (C, H, W and the class names). A folder's images are
    converted to exactly that shape (it wins over image_size); any other mismatch is refused here,
    rather than crashing in the model or mislabelling images later."""
    device = pick_device("cpu" if device is None else device)  # a device missing here: one clear error, at once
    key = name.strip()
    if _is_folder(key):
        data = _load_folder(_folder_root(key), val_fraction, image_size, shape)
    elif key.lower() == "digits":
        data = _load_digits(val_fraction)
    elif key.lower() in sources.SETS:
        data = _load_idx_set(sources.SETS[key.lower()], data_dir, val_fraction)
    else:
        known = ", ".join(list(sources.SETS) + ["digits", "folder:PATH"])
        folder = Path(key).expanduser()
        raise DataNotFoundError(f"unknown data set '{name}'", f"Known data sets: {known}."
                                + (f" For the images in the folder {key}, say so: folder:{key}"
                                   if key and folder.is_dir() else ""))
    data = _check_expected(data, shape, classes)
    return with_binarization(data, binarize).to(device)


def with_binarization(data: ImageData, binarize: str) -> ImageData:
    """Grey-level `data` binarised as `binarize` says: "static" samples binary pixels once for every
    split, "dynamic" once for validation and test (the engine resamples the grey training images every
    batch), each split with its own fixed seed; "none" keeps grey levels."""
    if binarize not in ("static", "dynamic", "none", "", None):
        raise DataNotFoundError(f"unknown binarize option '{binarize}'", "Use none, static or dynamic.")
    if data.binarize not in ("none", "", None):
        raise ValueError(f"{data.name} is binarised already ({data.binarize})")  # a caller's bug, not a user's
    fixed = lambda x, seed: binarized(x.cpu(), seed).to(x.device)  # noqa: E731  (the seed's draws are the CPU's)
    if binarize in ("static", "dynamic"):
        data = replace(data, val_x=fixed(data.val_x, BINARIZE_SEED), test_x=fixed(data.test_x, BINARIZE_SEED + 1))
        if binarize == "static":
            data = replace(data, train_x=fixed(data.train_x, BINARIZE_SEED + 2))
    return replace(data, binarize=binarize or "none")


def canonical_dataset_name(name: str) -> str:
    """The name a run records: folder:PATH with PATH absolute (so the run can be evaluated from any
    working directory), a known set's name in lower case, anything else unchanged."""
    key = name.strip()
    if _is_folder(key):
        return f"{FOLDER_PREFIX}{_folder_root(key)}"
    if key.lower() in sources.SETS or key.lower() == "digits":
        return key.lower()
    return name


def canonical_data_dir(data_dir: str) -> str:
    """The data_dir a run records: absolute, so its data are found from any working directory (a relative
    one, read from elsewhere, fell back to $ZOO_DATA_DIR's files of the same name without a word); ""
    (none) unchanged. One that is no folder is refused: the data set's files were then read from
    $ZOO_DATA_DIR or the cache without a word, and the run recorded the folder it was never trained from."""
    if not (data_dir and str(data_dir).strip()):
        return data_dir
    path = Path(data_dir).expanduser().absolute()
    if not path.is_dir():
        raise ConfigError(f"data_dir {path}: {'not a folder' if path.exists() else 'no such folder'}",
                          "Point --data-dir (data_dir=) at the folder that holds the data set's files, or leave it "
                          "empty (--set data_dir=) to look in $ZOO_DATA_DIR, the user cache and /usr/share/datasets.")
    return str(path)


def relocated(dataset: str, data_dir: str | Path) -> tuple[str, str]:
    """(dataset, data_dir) of a run's data where `data_dir` says they are now: a folder run's folder itself
    (folder:DATA_DIR; its data_dir stays empty), else the set's files looked for under DATA_DIR first."""
    if _is_folder(dataset.strip()):
        return canonical_dataset_name(FOLDER_PREFIX + str(data_dir)), ""
    return dataset, canonical_data_dir(str(data_dir))


def folder_of(dataset: str) -> Path | None:
    """The absolute folder of a folder:PATH data set (None for a named set): whether it is still there tells a
    folder that moved (--data-dir finds it again) from one whose files or classes changed."""
    key = dataset.strip()
    return _folder_root(key) if _is_folder(key) and key[len(FOLDER_PREFIX):].strip() else None


def _is_folder(key: str) -> bool:
    return key.lower().startswith(FOLDER_PREFIX)


def _folder_root(key: str) -> Path:
    """The absolute folder of a folder:PATH name. An empty PATH is refused: it would silently mean
    the working directory."""
    path = key[len(FOLDER_PREFIX):].strip()
    if not path:
        raise DataNotFoundError("folder: needs the path of a folder of images, e.g. folder:~/pictures",
                                "For the working directory, say so: folder:.")
    return Path(path).expanduser().resolve()


def _check_expected(data: ImageData, shape, classes) -> ImageData:
    """`data`, refused where it no longer matches the shape or the classes a run was trained on. Class folders
    renamed only in their Unicode normalisation (a folder copied from macOS, NFD, of a run trained on NFC
    names) are the same classes in the same order: taken, under the run's names."""
    if shape is not None and tuple(data.shape) != tuple(shape):
        raise DataNotFoundError(f"{data.name} has images of shape {_dims(data.shape)}, but the run was trained on "
                                f"{_dims(shape)}", "Evaluate the run on the data set it was trained on.")
    if classes is None or tuple(data.classes) == tuple(classes):
        return data
    if [_nfc(c) for c in data.classes] == [_nfc(c) for c in classes]:
        return replace(data, classes=tuple(classes))
    changed = [(a, b) for a, b in zip(data.classes, classes) if a != b]
    # Names that may print alike (invisible or non-ASCII characters, spaces at an end), or lists that do (a long
    # list's tail): the differing names as Python writes them, so that the difference is seen
    unseen = changed if few(data.classes) == few(classes) else \
        [(a, b) for a, b in changed if any(not n.isascii() or not n.isprintable() or n != n.strip() for n in (a, b))]
    exact = f" (as Python writes them: {few([f'{ascii(a)} where it was {ascii(b)}' for a, b in unseen], 3)})" \
        if unseen else ""
    held = "no class folders (its images are one class)" if tuple(data.classes) == ("image",) else \
        f"the classes {few(data.classes)}"
    raise DataNotFoundError(f"{data.name} has {held}, but the run was trained on "
                            f"{few(classes)}{exact}: its labels would not mean the same",
                            "Evaluate the run on the data set it was trained on (restore its class folders).")


def _nfc(name: str) -> str:
    return unicodedata.normalize("NFC", str(name))


def _dims(shape) -> str:
    return "×".join(str(int(v)) for v in shape)


def dataset_names() -> list[str]:
    return list(sources.SETS) + ["digits", f"{FOLDER_PREFIX}PATH"]


def _load_idx_set(spec: sources.TorchvisionSet, data_dir, val_fraction) -> ImageData:
    arrays = read_idx_set(spec.name, len(spec.classes), sources.locate(spec, data_dir))

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


def _load_folder(root: Path, val_fraction: float, image_size: int,
                 shape: tuple[int, int, int] | None = None) -> ImageData:
    """A user's own images (zoo.data.folders.read_folder), split: TEST_FRACTION held out for test (none
    for fewer than 5 images); a split that gets no image reuses the training images, and says so."""
    x, y, classes, notes, files = read_folder(root, image_size, shape)
    n = x.shape[0]
    fraction = TEST_FRACTION if n >= 5 else 0.0
    (train_x, train_y), (test_x, test_y) = _split_off(x, y, fraction, SPLIT_SEED + 2)
    # The same permutations over the files' indices: which file each image of a split is
    (rest, _), (test_i, _) = _split_off(torch.arange(n), y, fraction, SPLIT_SEED + 2)
    (train_i, _), (val_i, _) = _split_off(rest, train_y, val_fraction, SPLIT_SEED)
    reused = {}
    if test_x.shape[0] == 0:  # a tiny folder: the test split reuses the training images, and says so
        test_x, test_y, reused["test"], test_i = train_x, train_y, "train", rest
    data = _assemble(f"{FOLDER_PREFIX}{root}", train_x, train_y, test_x, test_y, classes, val_fraction)
    if data.val_x.shape[0] == 0 and val_fraction > 0:  # val_fraction 0 asks for none, as for MNIST: none
        data = replace(data, val_x=data.train_x, val_y=data.train_y)
        reused["val"], val_i = "train", train_i
    names = {s: tuple(files[i] for i in index.tolist()) for s, index in
             (("train", train_i), ("val", val_i), ("test", test_i))}
    return replace(data, reused=reused, notes=tuple(notes), files=names)
