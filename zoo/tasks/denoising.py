"""Denoising: a picture of clean, noisy and denoised images, a user's own images denoised, and the
test error over noise levels and kinds (the noise sweep)."""

from __future__ import annotations

import hashlib
import io
import math
import numbers
import re
import zlib
from os import PathLike
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from zoo.analysis import plots
from zoo.console import to_stderr
from zoo.device import pick_device
from zoo.data.folders import IMAGE_SUFFIXES, MODES, conversion_notes, pixels
from zoo.data.noise import NoiseModel, noise_models, noised, parse_noise
from zoo.interrupts import holding_interrupts
from zoo.errors import ConfigError, DataNotFoundError, PluginError, ZooError
from zoo.registry import load_registry
from zoo.runs import checkpoint as ckpt
from zoo.runs import files as runfiles
from zoo.runs.config import check_count, check_flag, check_seed
from zoo.runs.loading import load
from zoo.runs.lock import results_lock
from zoo.runs.plugin_calls import blamed
from zoo.runs.run import Run, check_split, evaluated
from zoo.runs.training_state import say_if_untrained
from zoo.tasks.evaluation import pictured
from zoo.training.batching import batches


def corruption(run: Run, noise: str | None) -> NoiseModel:
    """The noise named (`noise`), else the corruption the model learned to undo."""
    chosen = parse_noise(noise) if noise is not None else run.model.training_corruption()
    if chosen is None and noise is not None:  # 'none': no corruption to show or sweep
        raise ConfigError(f"--noise {noise!r:.40} names no noise: there is nothing to denoise",
                          f"Name a noise (e.g. --noise gaussian:0.3), or leave --noise out for the one "
                          f"{run.name} was trained with; `zoo reconstruct` shows clean images' reconstructions.")
    if chosen is None:
        raise ConfigError(f"model '{run.name}' was not trained with noise; say which with --noise, "
                          "e.g. --noise gaussian:0.3")
    return chosen


def load_images(folder: str | Path, shape: tuple[int, int, int], device,
                log: Callable[[str], None] = to_stderr) -> tuple[torch.Tensor, list[Path]]:
    """A user's image files as floats in [0, 1], read as a folder data set's are (upright, 16-bit and
    float files scaled to 8 bits; hidden files and folders left out, as a folder data set leaves them) and
    converted to the model's channels and size, each change said through `log`. Its arguments are checked before
    any file is read: `shape` (C, H, W) with 1 or 3 channels (a folder's images are grey or RGB), a device zoo
    knows."""
    if not isinstance(folder, (str, PathLike)) or not str(folder):
        raise ConfigError(f"load_images takes an image file's or a folder's path, not {folder!r:.60}",
                          "For example zoo.load_images('my-images', run.shape, run.device).")
    shape = runfiles.check_image_shape(shape)
    if shape[0] not in MODES:
        raise ConfigError(f"load_images reads images as grey (1 channel) or RGB (3), not {shape[0]} channels",
                          "Pass the run's shape: zoo.load_images(FOLDER, run.shape, run.device).")
    device = pick_device(device)
    root = Path(folder)
    if root.is_file() and root.suffix.lower() not in IMAGE_SUFFIXES:
        raise DataNotFoundError(f"{root} is not an image file zoo reads",
                                f"Give an image ({', '.join(sorted(IMAGE_SUFFIXES))}) or a folder of them.")
    files = sorted(p for p in ([root] if root.is_file() else root.rglob("*"))
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(root).parts)) if root.exists() else []
    if not files:
        raise DataNotFoundError(f"no images found at {root}",
                                f"Give a folder of {', '.join(sorted(IMAGE_SUFFIXES))} files.")
    for note in conversion_notes(root if root.is_dir() else root.parent, files, shape):
        log(f"note: {note}")
    c, h, w = shape
    arrays = []
    for p in files:
        try:
            with Image.open(p) as im:
                arr = pixels(im, p, MODES[c], (w, h))  # as a folder data set's are read
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as e:
            raise DataNotFoundError(f"cannot read image {p}: {e}") from None
        arrays.append(arr[None] if c == 1 else arr.transpose(2, 0, 1))
    return torch.from_numpy(np.stack(arrays)).to(device).float() / 255.0, files


@evaluated
@torch.no_grad()
def denoise(source, *, noise: str | None = None, n: int = 16, out: str | Path | None = None,
            input: str | Path | None = None, split: str = "test", seed: int = 0, data_dir: str | None = None,
            device: str | None = None, log: Callable[[str], None] = to_stderr) -> Path:
    """A picture of clean, noisy and denoised images (the first `n` of the split); returns its path.

    With `input` (an image file or a folder of them, searched recursively), a user's own images instead:
    every one is denoised (noised first with `noise`, if given) and written as a PNG at the model's image
    size, under its own name with .png (and its subfolder), into the picture's folder of files: its name
    without .png plus _files (RUN/denoised-INPUT_files/ beside RUN/denoised-INPUT.png, INPUT the input
    folder's name or the file's stem; a browser's "page.html" and "page_files/"), so that a picture named
    like the input folder keeps apart from it; default_output names another input of the same name apart, and
    an --out whose files' folder holds another input's files is refused. The picture shows
    the first `n`. The files' folder may not be the input folder or inside it (a later run would read the
    outputs as inputs); `log` says where the files went."""
    seed = check_seed(seed)
    if input is not None and (not isinstance(input, (str, PathLike)) or not str(input)):
        raise ConfigError(f"input is an image file's or a folder's path, not {input!r:.60}",
                          "To denoise images you hold as a tensor: run = zoo.load(RUN); run.reconstruct(x) "
                          "(x floats in [0, 1], shaped as run.shape).")
    run = load(source, device=device)
    run.require("reconstruct")
    n = check_count(n, "--n (n=)", 1, 1024)
    gen = torch.Generator(device=run.device).manual_seed(seed)
    # Two denoisings of inputs of one name at once each chose the same default name and wrote into one folder:
    # the second now waits, and then sees the first's outputs (default_output names it apart).
    # (the folder the outputs go to: --out's, or the run's outputs folder, named only when it is used)
    place = Path(out).absolute().parent if isinstance(out, (str, PathLike)) and str(out) else None
    lock = results_lock(place or run.output_dir) if input is not None else None
    try:
        # A user's images get a picture named after them: a later denoising of the test set (denoised.png)
        # does not replace it, nor leave it beside files of another input.
        out = runfiles.picture_output(out, own=run.folder)
        say_if_untrained(run.folder, "these denoised images are of")
        if input is None:
            chosen = corruption(run, noise)
            out = out or run.output_dir / denoised_name(run, chosen, split)
            clean = pictured(run, split, data_dir, n)
            per_row = _picture_fits(3, clean.shape[0], run.shape)  # before any work
            noisy = noised(chosen, clean, gen)
            rows = [("clean", clean), (f"noisy ({chosen})", noisy), ("denoised", run.reconstruct(noisy))]
            return plots.image_rows(rows, out, title=f"{run.name}: denoising {chosen} on {split} images",
                                    per_row=per_row)

        # The files' folder and names, checked before anything is written: never the input folder, never two
        # inputs to one name.
        out = out or default_output(run.output_dir, Path(input), log)
        root = Path(input)
        folder = out.with_name(out.stem + "_files")
        x, files = load_images(root, run.shape, run.device, log)
        inputs = {p.resolve() for p in files}
        if out.resolve() in inputs or (root.is_dir() and root.resolve() in out.resolve().parents):
            what = "one of the input images" if out.resolve() in inputs else "inside the input folder"
            raise ConfigError(f"--out {out} is {what} {root}: it would replace an input, or be read as one next time",
                              "Name the picture elsewhere with --out.")
        in_folder = (root if root.is_dir() else root.parent).resolve()
        where = folder.resolve()
        if where == in_folder or (root.is_dir() and in_folder in where.parents):
            raise ConfigError(f"the denoised files would be written into {folder}, "
                              f"{'the input folder' if where == in_folder else 'inside the input folder'} {root}",
                              "Name the picture elsewhere with --out (the files go beside it, into NAME_files/ "
                              "for NAME.png).")
        names = [p.relative_to(root).with_suffix(".png") if root.is_dir() else Path(p.stem + ".png") for p in files]
        seen: dict[Path, Path] = {}
        for p, name in zip(files, names):
            if name in seen:
                raise ConfigError(f"{seen[name]} and {p} would both be written as {folder / name}",
                                  "Rename one of them (the denoised files keep the inputs' names, with .png).")
            seen[name] = p
        other = other_input(out, root)
        if other and folder.is_dir() and any(folder.iterdir()):  # mixed with, or replacing, another input's files
            raise ConfigError(f"{folder} holds the denoised files of another input ({other}): this input's would be "
                              "written among them, and same-named ones replaced",
                              f"Name another picture with --out, or delete {folder} and {out} first.")
        targets = [runfiles.check_output(folder / name, own=run.folder) for name in names]
        per_row = _picture_fits(2 + (noise is not None), min(n, len(files)), run.shape)  # before any work

        rows = [("input", x[:n])]
        if noise is not None:
            chosen = corruption(run, noise)
            x = noised(chosen, x, gen)
            rows.append((f"noisy ({chosen})", x[:n]))
        denoised = torch.cat([run.reconstruct(b).float().clamp(0, 1) for b in x.split(256)])
        rows.append(("denoised", denoised[:n]))
        shown = f"the first {n} of {len(files)}" if len(files) > n else f"{len(files)}"
        # The picture first: it records which input its files' folder holds (INPUT_STAMP), so that files written
        # before a stop are this input's when the same command comes again, never "another input's".
        # the picture and its files as one: a stop midway left a folder of this run's and an earlier run's files
        # beside a picture of this one (held, it stops once they are written)
        with holding_interrupts():
            picture = plots.image_rows(rows, out, title=f"{run.name}: {shown} image(s) from {input}, denoised",
                                       stamps={INPUT_STAMP: str(root.resolve())}, per_row=per_row)
            pixels = (denoised * 255).round().to(torch.uint8).cpu().numpy()
            for target, arr in zip(targets, pixels):
                buf = io.BytesIO()
                Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)).save(buf, format="PNG")
                ckpt.atomic_write(target, buf.getvalue())
        c, h, w = run.shape
        log(f"wrote {len(files)} denoised image{'s' if len(files) != 1 else ''} ({w}×{h}, the model's size) "
            f"to {folder}/, named as the inputs")
        return picture
    finally:
        if lock is not None:
            lock.release()


def denoised_name(run: Run, chosen: NoiseModel, split: str) -> str:
    """The picture of a split's denoising when no --out is given: denoised.png for the noise the model was trained
    with on the test split, else named by the other noise and split (denoised-salt-pepper_0.2-train.png), so that
    one denoising does not replace another's picture (as zoo reconstruct's and zoo generate's keep apart)."""
    trained = run.model.training_corruption()
    tags = [chosen.spec] if trained is None or chosen.spec != trained.spec else []
    tags += [] if check_split(split) == "test" else [split]
    return "-".join(["denoised", *(re.sub(r"[^A-Za-z0-9_.-]+", "_", t) for t in tags)]) + ".png"


def _picture_fits(rows: int, shown: int, shape) -> int:
    """The images a line of the picture of `rows` rows of `shown` images each holds (16, more for many images, so
    that --n 1024 of 28-pixel images fits), checked before any work: a picture that would show them as smudges
    is refused then, not after every image was denoised."""
    per_row = min(shown, max(16, math.ceil(math.sqrt(rows * shown))))
    plots.check_tiles(rows * shown, rows * -(-shown // per_row), per_row, rows, shape,
                      f"Show fewer images: --n (n=) below {shown}.")
    return per_row


INPUT_STAMP = "zoo-input"  # PNG text of a picture of denoised files: the resolved input they were made from


def input_label(root: Path) -> str:
    """What a user's images are called in the names of their outputs: the folder's name, or the file's stem."""
    return (root.resolve().name if root.is_dir() else root.stem) or "input"


def other_input(picture: Path, root: Path) -> str | None:
    """The input whose outputs `picture` (or its files' folder) holds where that is not `root` (resolved, as
    its INPUT_STAMP keeps it; "an unknown input" for outputs without one); None when they are root's, or
    there are none."""
    if not picture.exists() and not picture.with_name(picture.stem + "_files").exists():
        return None
    made_from = plots.png_stamp(picture, INPUT_STAMP)
    return None if made_from == str(root.resolve()) else made_from or "an unknown input"


def default_output(folder: Path, root: Path, log: Callable[[str], None]) -> Path:
    """The picture of `root`'s denoised images when no --out is given: FOLDER/denoised-INPUT.png (input_label),
    or, where that name holds another input's outputs (other/myimg after myimg), denoised-INPUT-DIGEST.png,
    DIGEST of the input's resolved path, so that one input's outputs neither mix with nor replace another's."""
    plain = folder / f"denoised-{input_label(root)}.png"
    other = other_input(plain, root)
    if other is None:
        return plain
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]
    own = plain.with_name(f"{plain.stem}-{digest}.png")
    log(f"note: {plain.name} holds the denoised images of another input ({other}): these go to {own.name}")
    return own


@evaluated
@torch.no_grad()
def noise_sweep(source, *, baseline=None, noise: str | None = None, factors=(1, 2, 3, 4, 5), split: str = "test",
                seed: int = 0, data_dir: str | None = None, device: str | None = None,
                save: bool = True) -> dict[str, Any]:
    """Test MSE at 1x..5x a noise (`noise`, else the one the model was trained with) and under the other
    noise kinds, beside an optional baseline run fed exactly the same noisy images. Written to
    noise_sweep.json and noise_sweep.png; `trained_noise` says what the model was trained with (None:
    clean images), `noise` what was swept."""
    seed = check_seed(seed)
    check_flag(save, "save")
    factors = _check_factors(factors)
    run = load(source, device=device)
    run.require("reconstruct")
    if save:
        run.check_saveable()
    base = load(baseline, device=str(run.device)) if baseline is not None else None
    if base is not None:
        base.require("reconstruct")
        if tuple(base.shape) != tuple(run.shape):
            raise ConfigError(f"the baseline's images are {base.shape}, the model's {run.shape}")
    trained = corruption(run, noise)
    levels, notes = _ladder(trained, factors, tuple(run.shape))
    theirs, ours = (r.record["train"].get("dataset") for r in (base or run, run))
    if theirs != ours:  # a comparison the user may mean, but never one to take for like with like
        notes.append(f"the baseline {base.source} was trained on {theirs}, the model on {ours}: both are fed "
                     f"{ours}'s images")
    levels += _other_noises(trained, notes)
    for note in notes:
        to_stderr(f"note: {note}")
    x, y = run.data(split, data_dir)
    rows = []
    for level, factor in levels:
        row = _row(run, base, level, factor, (x, y), seed, notes)
        if row is not None:  # None: another kind's plugin failed, said in notes
            rows.append(row)
    learned = run.model.training_corruption()
    trained_spec = learned.spec if learned is not None else None
    result = {"model": run.record["model"], "run": run.source,
              "baseline": base.source if base is not None else None,
              "noise": trained.spec, "trained_noise": trained_spec, "split": split, "images": int(x.shape[0]),
              "rows": rows, **({"notes": notes} if notes else {})}
    if save:  # the pair is one sweep's: two sweeps ending together wrote one's figures beside the other's picture
        with results_lock(run.output_dir):
            ckpt.write_json(run.output_dir / "noise_sweep.json", result)
            plots.noise_sweep(result, run.output_dir / "noise_sweep.png")
        result["written"] = [str(run.output_dir / "noise_sweep.json"), str(run.output_dir / "noise_sweep.png")]
    return result


def _package(noise: NoiseModel | type[NoiseModel]) -> str:
    """' (package NAME VERSION)' of an installed noise model, for a message blaming its plugin."""
    entry = load_registry().noise_models.get(noise.name)
    return f" (package {entry.package} {entry.version})" if entry is not None else ""


def _row(run: Run, base: Run | None, level: NoiseModel, factor: float | None, data, seed: int,
         notes: list[str]) -> dict[str, Any] | None:
    """The sweep's row of `level` (`factor` × the noise swept; None: another installed kind at its defaults) on
    `data`'s images; None where that other kind's plugin fails, said in `notes`: one broken noise model fails
    no DAE's sweep, while the noise swept fails it."""
    x, y = data
    # a level's draws follow its noise, not its place in the list: factors=(2,) gives the × 2 row again
    gen = torch.Generator(device=run.device).manual_seed(seed + zlib.crc32(level.spec.encode()))
    sums = {"model": 0.0, "baseline": 0.0, "noisy": 0.0}
    for batch in batches(x, y, 1024):
        try:
            noisy = noised(level, batch.x, gen)
        except PluginError as e:
            if factor is not None:
                raise
            notes.append(f"{e.message}: left out of the sweep")
            to_stderr(f"note: {notes[-1]}")
            return None
        sums["noisy"] += float((noisy - batch.x).pow(2).mean((1, 2, 3)).double().sum())
        sums["model"] += float((run.reconstruct(noisy) - batch.x).pow(2).mean((1, 2, 3)).double().sum())
        if base is not None:
            sums["baseline"] += float((base.reconstruct(noisy) - batch.x).pow(2).mean((1, 2, 3)).double().sum())
    n = x.shape[0]
    return {"noise": level.spec, "factor": factor, "noisy_mse": sums["noisy"] / n, "model_mse": sums["model"] / n,
            "baseline_mse": sums["baseline"] / n if base is not None else None}


def _other_noises(trained: NoiseModel, notes: list[str]) -> list[tuple[NoiseModel, None]]:
    """The sweep's rows of the other installed noise kinds, each at its defaults; one that cannot be made so (a
    plugin's without `defaults`, or one whose constructor fails) is left out, said in `notes`, rather than failing
    the sweep (of every DAE, zoo's own noises' included)."""
    levels = []
    for name, cls in sorted(noise_models().items()):
        if name == trained.name:
            continue
        try:
            with blamed(cls, "__init__"):
                levels.append((cls(), None))
        except ConfigError as e:
            notes.append(f"noise model '{name}'{_package(cls)} has no level to "
                         f"sweep by default ({e.message}): left out; --noise {name}:VALUES sweeps it")
        except ZooError as e:  # its bug (a PluginError: what it raised, named): the sweep goes on without it
            notes.append(f"{e.message}: left out of the sweep")
    return levels


def _ladder(noise: NoiseModel, factors: list[float],
            shape: tuple[int, ...]) -> tuple[list[tuple[NoiseModel, float]], list[str]]:
    """The sweep's levels: `noise` scaled by each factor, up to the noise's limit. A level past its range
    (gaussian:3 × 4 is a sigma of 12) or one the noise holds at its limit (salt-pepper:0.5 × 3 is
    salt-pepper:1, as × 2 is; an occlusion patch as large as the `shape` images) ends the ladder, said in a
    note, instead of failing the sweep or plotting one noise as several."""
    levels: list[tuple[NoiseModel, float]] = []
    for f in factors:
        try:
            level = noise.scaled(f)
        except ConfigError as e:
            if not levels:
                raise ConfigError(f"{noise.spec} × {f:g}: {e.message}", "Sweep smaller factors (factors= in "
                                  "Python) or a weaker --noise.") from None
            return levels, [f"{noise.spec} × {f:g} is past the noise's range ({e.message}): the sweep stops at "
                            f"× {levels[-1][1]:g}"]
        acts = level.on(shape).spec
        same = next((g for lv, g in levels if lv.on(shape).spec == acts), None)
        if same is not None:
            where = "" if acts == level.spec else f" on {shape[-2]}×{shape[-1]} images"
            return levels, [f"{noise.spec} × {f:g} is {acts}{where}, as × {same:g} is (the noise grows no "
                            f"further): the sweep stops at × {levels[-1][1]:g}"]
        levels.append((level, f))
    return levels, []


def _check_factors(factors) -> list[float]:
    """The strengths a noise sweep scales the noise by: one or more finite numbers above 0."""
    try:  # a list, a tuple, a range, a numpy array: any numbers one after another; never a text
        values = None if isinstance(factors, (str, bytes)) else list(factors)
    except TypeError:
        values = None
    if not values or any(isinstance(f, bool) or not isinstance(f, numbers.Real) or not 0 < f < math.inf
                         for f in values):
        raise ConfigError(f"factors are one or more numbers above 0 that scale the noise, not {factors!r:.60}",
                          "For example factors=(1, 2, 3, 4, 5), the default.")
    return [float(f) if not isinstance(f, int) else f for f in values]
