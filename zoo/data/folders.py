"""A user's own folder of images (folder:PATH) read into tensors: its layout (root/IMAGE or
root/CLASS/IMAGE), the channels and size its images are read at, and the notes on what that changed.
How a folder is split into train, validation and test is zoo.data.datasets.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from zoo.data.image_files import GREY_MODES, SIXTEEN_BIT, eight_bit, is_zoo_output, open_image
from zoo.errors import ConfigError, DataNotFoundError

# .jfif and .jpe are JPEG files under other common names (they were skipped without a word)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".jfif", ".jpe", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm"}
# Image files zoo does not read, named in a note where a folder holds them (they were dropped without a word)
UNREAD_SUFFIXES = {".pbm", ".pnm", ".dib", ".tga", ".ico", ".psd", ".jp2", ".j2k", ".avif", ".heic", ".heif",
                   ".apng", ".qoi", ".svg", ".dng", ".raw"}
MODES = {1: "L", 3: "RGB"}  # channels -> the PIL mode a folder's images are converted to
# The largest size a folder's images are read at, image_size's own limit (zoo.runs.config.TrainConfig): the most
# common size of a folder of photos (2000×2000) built a model the machine's memory could not hold (SIGKILL)
LARGEST_SIZE = 1024


def few(names, k: int = 5) -> str:
    """A few names for a message: 'a, b, c and 7 more'."""
    names = [str(n) for n in names]
    more = f" and {len(names) - k} more" if len(names) > k else ""
    return ", ".join(names[:k]) + more


def read_folder(root: Path, image_size: int,
                shape: tuple[int, int, int] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, list[str], list[str], list[str]]:
    """A user's own images, grey or RGB: root/CLASS/IMAGE (labelled by class folder) or root/IMAGE
    (one class, 'image'). Channels and size are decided from every file's header, never the first
    file's alone; with `shape` (C, H, W), every image is converted to exactly that. Returns the images
    (uint8 [N, C, H, W]), their labels (int64 [N]), the class names, notes on what reading changed, and each
    image's file (relative to root, as `zoo eval --per-image` names it)."""
    if root.exists() and not root.is_dir():  # "not found" of a file that is there reads as a wrong path
        raise DataNotFoundError(f"{root} is a file, not a folder of images",
                                "Use folder:PATH with the folder that holds the images (or their class folders).")
    if not root.is_dir():
        raise DataNotFoundError(f"image folder not found: {root}", "Use folder:PATH with an existing folder.")
    files, labels, classes, zoos = _folder_layout(root)
    heard: dict[Path, list[str]] = {}  # Pillow's warnings, by file
    if shape is not None:
        mode, size, notes = _run_format(shape), (int(shape[2]), int(shape[1])), []
    else:
        heads = [_image_header(p, heard) for p in files]
        mode, mode_note = _folder_mode(root, files, [m for m, _ in heads])
        size, size_note = _folder_size(root, files, [wh for _, wh in heads], image_size)
        notes = [n for n in (_zoo_note(root, zoos), _unread_note(root, files), mode_note,
                             _depth_note(root, files, [m for m, _ in heads]), size_note) if n]
    x = _folder_pixels(files, mode, size, heard)
    if shape is None:
        notes += _content_notes(root, files, [m for m, _ in heads], x, heard)
    notes += [n for n in (_heard_note(root, heard),) if n]
    y = torch.tensor(labels, dtype=torch.int64)
    return x, y, classes, notes, [p.relative_to(root).as_posix() for p in files]


def _folder_layout(root: Path) -> tuple[list[Path], list[int], list[str], list[Path]]:
    """Image files, their labels, the class names of a folder data set, and zoo's own folders skipped in it.

    Two layouts only, since anything else would silently drop or merge labels: images straight in
    `root` (one class), or in class folders root/CLASS/IMAGE. Hidden files and folders (.DS_Store,
    .ipynb_checkpoints) are tools' files and are skipped, as are zoo's own outputs (_zoo_made); other files
    that are not images are ignored."""
    entries = _visible(root)
    zoos = [p for p in entries if p.is_dir() and _zoo_made(p)]
    entries = [p for p in entries if p not in zoos]
    loose = [p for p in entries if _is_image(p)]
    folders = [p for p in entries if p.is_dir() and _holds_images(p)]
    _refuse_strays(root, loose, folders)
    if loose:
        return loose, [0] * len(loose), ["image"], zoos
    if not folders:
        raise DataNotFoundError(f"no images in {root}",
                                f"zoo reads files ending in {', '.join(sorted(IMAGE_SUFFIXES))}.")
    inner = [p for folder in folders for p in _visible(folder) if p.is_dir()]
    zoos += [p for p in inner if _zoo_made(p)]
    _refuse_nested(root, [p for p in inner if p not in zoos and _holds_images(p)])
    _refuse_empty_classes(root, [p for p in entries if p.is_dir() and p not in folders])
    files, labels = [], []
    for label, folder in enumerate(folders):
        own = [p for p in _visible(folder) if _is_image(p)]
        files += own
        labels += [label] * len(own)
    return files, labels, [p.name for p in folders], zoos


def _zoo_made(folder: Path) -> bool:
    """Whether a folder beside the images is zoo's, not the user's: a run or ./zoo-outputs/ (is_zoo_output), or
    one holding runs and no image outside them (runs/ of `zoo train` started in the image folder), or a runs/
    holding no file (left by a start that failed)."""
    if is_zoo_output(folder):
        return True
    runs = files = False
    for top, dirs, names in os.walk(folder):
        if any(not n.startswith(".") and _is_image(Path(top) / n) for n in names):
            return False
        files = files or any(not n.startswith(".") for n in names)  # the user's notes.txt: not an empty runs/
        ours = [d for d in dirs if not d.startswith(".") and is_zoo_output(Path(top) / d)]
        runs = runs or bool(ours)
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ours]
    return runs or (folder.name == "runs" and not files)


def _zoo_note(root: Path, zoos: list[Path]) -> str:
    """Zoo's own folders skipped in a folder data set, said once (when its channels and size are decided)."""
    if not zoos:
        return ""
    return (f"{root} holds zoo's own output folder(s), not read as images: {_names(root, zoos)} (a run's loss.png "
            "and reconstructions.png are not your pictures). Pass --out outside the image folder to keep them apart.")


def _refuse_strays(root: Path, loose: list[Path], folders: list[Path]) -> None:
    """Images beside class folders would have no label (they used to drop every folder's label)."""
    if loose and folders:
        raise DataNotFoundError(
            f"{root} holds both class folders ({few([p.name for p in folders])}) and {len(loose)} image(s) "
            f"outside them ({few([p.name for p in loose], 3)}): those images would have no label",
            "Move them into a class folder or remove them. zoo labels an image by the folder it is in.")


def _refuse_nested(root: Path, nested: list[Path]) -> None:
    """Images in a folder inside a class folder: whose class are they? (root/train/cats, root/cats/kittens)"""
    if nested:
        where = few([str(p.relative_to(root)) for p in nested], 3)
        raise DataNotFoundError(
            f"images in folders inside class folders of {root}: {where}. zoo labels an image by the folder "
            f"directly under {root} that it is in (folder/CLASS/IMAGE), so the inner folders' names would be lost",
            "Point folder: at the folder whose sub-folders are the classes, or move those images up into "
            "their class folder.")


def _refuse_empty_classes(root: Path, empty: list[Path]) -> None:
    """A class folder without images would silently be no class at all."""
    if empty:
        raise DataNotFoundError(
            f"class folder(s) of {root} with no images: {few([p.name for p in empty])}",
            f"Add images (files ending in {', '.join(sorted(IMAGE_SUFFIXES))}) or remove those folders; "
            "a folder whose name starts with '.' is skipped.")


def _unread_note(root: Path, files: list[Path]) -> str:
    """A note naming the files beside the images read that look like images but are not read: UNREAD_SUFFIXES
    and links named like images that lead nowhere. Other files (notes.txt, labels.csv) go unsaid."""
    folders = sorted({p.parent for p in files})  # the class folders, or root for loose images
    unread = [p for folder in folders for p in _visible(folder) if not p.is_dir() and not _is_image(p)
              and p.suffix.lower() in IMAGE_SUFFIXES | UNREAD_SUFFIXES]
    if not unread:
        return ""
    return (f"{root} holds {len(unread)} file(s) that are not read as images ({_names(root, unread)}): zoo reads "
            f"files ending in {', '.join(sorted(IMAGE_SUFFIXES))} (a link that leads nowhere is skipped). Convert "
            "them to one of those to use them.")


def _visible(folder: Path) -> list[Path]:
    """The entries of a folder, sorted, without hidden ones (names starting with '.')."""
    try:
        return sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError as e:
        raise DataNotFoundError(f"cannot read folder {folder}: {e.strerror or e}") from None


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def _holds_images(folder: Path) -> bool:
    """Whether a folder holds an image at any depth (hidden files and folders, and zoo's own outputs, aside)."""
    if is_zoo_output(folder):
        return False
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".") and not is_zoo_output(Path(root) / d)]
        # by name and as a file, as _is_image collects them: a broken link named x.png made a class of no images
        if any(not n.startswith(".") and _is_image(Path(root) / n) for n in names):
            return True
    return False


def _image_header(path: Path, heard: dict | None = None) -> tuple[str, tuple[int, int]]:
    """An image's PIL mode and upright (width, height), from its header only: Image.open reads no pixels,
    so every file can be looked at before deciding the data set's channels and size. A palette image
    whose palette holds only greys (a grey GIF) counts as grey ("L"): it counted as colour; one with a
    transparent entry counts as having an alpha channel ("LA", or "PA" for colours), as its transparency is
    dropped alike (it counted as colour however grey)."""
    with open_image(path, heard) as im:
        mode = im.mode
        if mode == "P":
            palette = np.asarray(im.getpalette() or [0, 0, 0], dtype=np.int16)
            palette = palette[:len(palette) // 3 * 3].reshape(-1, 3)
            grey = bool((palette == palette[:, :1]).all())
            mode = ("L" if grey else "P") + ("A" if "transparency" in im.info else "")
        return mode, _upright_size(im)


ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}


def _see_through(path: Path, heard: dict | None = None) -> bool:
    """Whether an image with an alpha channel is transparent anywhere (an opaque one loses nothing with it)."""
    with open_image(path, heard) as im:  # a palette's transparent entry is an alpha channel once converted
        return (im.convert("RGBA") if im.mode == "P" else im).getchannel("A").getextrema()[0] < 255


def _content_notes(root: Path, files: list[Path], modes: list[str], x: torch.Tensor, heard: dict) -> list[str]:
    """Notes on images that hold little to learn, as read: a transparency channel dropped (a shape drawn in
    it alone reads as a blank image), one flat level throughout, values of 0 and 1 (masks saved as 0/1,
    which read as black; or 8-bit values saved in 16-bit files, black once divided by 257)."""
    notes = []
    alpha = [p for p, m in zip(files, modes) if m in ALPHA_MODES and _see_through(p, heard)]
    if alpha:
        notes.append(f"{root} holds {len(alpha)} image(s) with a transparency (alpha) channel "
                     f"({_names(root, alpha)}): zoo reads their colour or grey levels and drops the alpha, so a "
                     "shape drawn in the alpha alone reads as a blank image")
    dark = [p for i, (p, m) in enumerate(zip(files, modes)) if m in SIXTEEN_BIT and int(x[i].max()) <= 1]
    if dark:  # numpy uint16 arrays of 0..255, OpenCV, scanners: said as masks saved as 0/1, a wrong diagnosis
        notes.append(f"{len(dark)} 16-bit image(s) of {root} ({_names(root, dark)}) hold no value above 385 (of "
                     "0..65535): read as value/257 they are black (0 or 1 of 0..255). 8-bit values (0..255) saved in "
                     "16-bit files? Save them as 8-bit images, or scale them to 0..65535")
    low, high = (int(x.min()), int(x.max())) if x.numel() else (0, 0)
    if low == high:
        notes.append(f"every pixel of every image in {root} is {low} (of 0..255), as read: there is nothing to learn")
    elif high <= 1 and len(dark) < len(files):
        notes.append(f"the images in {root} hold the values 0 and 1 only (of 0..255), which read as black: masks "
                     "saved as 0/1? Save them as 0/255")
    return notes


# EXIF orientations (a camera's "this photo was taken turned"): 1 is upright; 5 to 8 turn it by a quarter,
# so the upright picture's width is the stored height. Photos are read upright, as viewers show them (and
# as Hugging Face datasets and torchvision.io's apply_exif_orientation read them).
SIDEWAYS = {5, 6, 7, 8}
EXIF_ORIENTATION = 0x0112


def _upright_size(im) -> tuple[int, int]:
    """(width, height) once turned upright (`pixels`), from the header."""
    w, h = im.size
    return (h, w) if _orientation(im) in SIDEWAYS else (w, h)


def _orientation(im) -> int:
    """The EXIF orientation zoo applies: 1 (none) for a TIFF, whose orientation tag Pillow handles itself
    when it reads one (recent versions turn it while loading), so it is never applied twice."""
    if im.format == "TIFF":
        return 1
    try:
        return int(im.getexif().get(EXIF_ORIENTATION, 1))
    except Exception:  # noqa: BLE001 - damaged EXIF data: the pixels as stored
        return 1


def pixels(im, path: Path, mode: str, size: tuple[int, int]) -> np.ndarray:
    """uint8 [H, W] or [H, W, 3]: `im` upright (its EXIF orientation applied), scaled to 8 bits
    (`eight_bit`), converted to `mode` ("L" or "RGB") and resized to `size` (W, H)."""
    from PIL import Image, ImageOps

    if _orientation(im) != 1:
        im = ImageOps.exif_transpose(im)
    return np.asarray(eight_bit(im, path).convert(mode).resize(size, Image.BILINEAR), dtype=np.uint8)


def _folder_mode(root: Path, files: list[Path], modes: list[str]) -> tuple[str, str]:
    """"L" if every image is grey, else "RGB" (grey converts to RGB without loss, as torchvision reads
    every image), with a note naming the files that decided it when the folder mixes the two."""
    colour = [p for p, m in zip(files, modes) if m not in GREY_MODES]
    if not colour:
        return "L", ""
    if len(colour) == len(files):
        return "RGB", ""
    grey = [p for p, m in zip(files, modes) if m in GREY_MODES]
    return "RGB", (f"{root} mixes colour and grey images ({len(colour)} colour: {_names(root, colour)}; "
                   f"{len(grey)} grey: {_names(root, grey)}): all are read as RGB (3 channels). "
                   "For grey images, convert the colour files to grey or remove them.")


def _depth_note(root: Path, files: list[Path], modes: list[str]) -> str:
    """A note naming the 16-bit and float images and how they are scaled to 8-bit grey levels."""
    deep = [(p, "16-bit" if m in SIXTEEN_BIT else "float") for p, m in zip(files, modes)
            if m in SIXTEEN_BIT or m == "F"]
    if not deep:
        return ""
    kinds = {k: [p for p, kind in deep if kind == k] for k in ("16-bit", "float")}
    rules = {"16-bit": "16-bit values divided by 257", "float": "float values (in [0, 1]) multiplied by 255"}
    said = [f"{len(ps)} {k} ({_names(root, ps)})" for k, ps in kinds.items() if ps]
    how = " and ".join(rules[k] for k, ps in kinds.items() if ps)
    return (f"{root} holds images deeper than 8 bits: {'; '.join(said)}. They are read as 8-bit grey levels: "
            f"{how}, rounded.")


SIZE_HINT = (f"Choose the size: --set image_size=N (image_size=N in Python), N up to {LARGEST_SIZE}; every image is "
             "resized to N×N. A model's memory grows with N², so start small (e.g. 64).")


def _folder_size(root: Path, files: list[Path], sizes: list[tuple[int, int]],
                 image_size: int) -> tuple[tuple[int, int], str]:
    """(width, height): image_size if set, else the most common size of all the files (the larger on a
    tie: where no two files share a size, the largest), with a note naming the files resized to it. Refused,
    before any pixel is read, where that size is beyond LARGEST_SIZE, which image_size itself may not ask for (a
    folder of photos was read at 2000×2000, and the training killed for its memory)."""
    if image_size:
        return (image_size, image_size), ""
    counts = Counter(sizes)
    size = max(counts, key=lambda wh: (counts[wh], wh[0] * wh[1], wh))
    if max(size) > LARGEST_SIZE:
        raise DataNotFoundError(f"the images of {root} would be read at their most common size, {_wh(size)} "
                                f"({counts[size]} of {len(files)} files): over {LARGEST_SIZE} pixels a side, the "
                                "largest size zoo reads a folder's images at", SIZE_HINT)
    if len(counts) == 1:
        return size, ""
    other = [p for p, wh in zip(files, sizes) if wh != size]
    tied = [_wh(wh) for wh in counts if counts[wh] == counts[size] and wh != size]
    tie = f", as many as {few(tied, 3)}: the larger is taken" if tied else ""
    return size, (f"{root} has images of {len(counts)} sizes: all are read at {_wh(size)}, the most common "
                  f"({counts[size]} of {len(files)} files{tie}); the other {len(other)} are resized "
                  f"({_names(root, other)}). To choose the size, set image_size (e.g. --set image_size=32).")


def _run_format(shape: tuple[int, int, int]) -> str:
    """The PIL mode of a run's (C, H, W): its model takes only that many channels."""
    channels = int(shape[0])
    if channels not in MODES:
        raise ConfigError(f"folder images can be grey (1 channel) or RGB (3), not {channels} channels")
    return MODES[channels]


def conversion_notes(base: Path, files: list[Path], shape: tuple[int, int, int]) -> list[str]:
    """What reading `files` (under the folder `base`) as images of `shape` (C, H, W) changes, for a command that
    reads a user's own images at a model's format (zoo denoise --input), as training says it of a folder."""
    heard: dict[Path, list[str]] = {}
    modes, sizes = zip(*(_image_header(p, heard) for p in files)) if files else ((), ())
    c, h, w = shape
    notes = []
    colour = [p for p, m in zip(files, modes) if m not in GREY_MODES]
    if c == 1 and colour:
        notes.append(f"{len(colour)} colour image(s) ({_names(base, colour)}) are read as grey: the model takes "
                     "grey images")
    alpha = [p for p, m in zip(files, modes) if m in ALPHA_MODES and _see_through(p, heard)]
    if alpha:
        notes.append(f"{len(alpha)} image(s) ({_names(base, alpha)}) have a transparency (alpha) channel, which is "
                     "dropped: a shape drawn in the alpha alone reads as a blank image")
    notes += [n for n in (_depth_note(base, files, list(modes)),) if n]
    other = [(p, wh) for p, wh in zip(files, sizes) if wh != (w, h)]
    if other:
        notes.append(f"{len(other)} image(s) are not {_wh((w, h))}, the model's size (e.g. "
                     f"{other[0][0].relative_to(base)}: {_wh(other[0][1])}): they are resized to it, stretched "
                     "where their shape differs")
    return notes + [n for n in (_heard_note(base, heard),) if n]


def _names(root: Path, files: list[Path]) -> str:
    """A few of `files`, relative to root, for a message."""
    return few([str(p.relative_to(root)) for p in files], 3)


def _wh(size: tuple[int, int]) -> str:
    return f"{size[0]}×{size[1]}"


def _heard_note(root: Path, heard: dict[Path, list[str]]) -> str:
    """Pillow's warnings (open_image), each with the file it concerns: they printed as Python warnings naming
    Pillow's source, not the file, which a folder of thousands gave no way to find."""
    if not heard:
        return ""
    said = [f"{p.relative_to(root) if p.is_relative_to(root) else p}: {'; '.join(m)}" for p, m in heard.items()]
    return f"Pillow warned of {len(heard)} file(s) of {root} as it read them: {few(said, 3)}"


def _folder_pixels(files: list[Path], mode: str, size: tuple[int, int], heard: dict) -> torch.Tensor:
    """uint8 [N, C, H, W]: every file as `pixels` makes it, one at a time into one array (a folder's
    decoded images are never all held twice)."""
    width, height = size
    x = np.empty((len(files), height, width) + ((3,) if mode == "RGB" else ()), dtype=np.uint8)
    for i, path in enumerate(files):
        with open_image(path, heard) as im:
            x[i] = pixels(im, path, mode, size)
    t = torch.from_numpy(x)
    return t.unsqueeze(1) if mode == "L" else t.permute(0, 3, 1, 2).contiguous()
