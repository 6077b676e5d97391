"""What zoo checks before it trusts a run's files or allocates a model: the fields and types of a
config.json, the shapes and dtypes a config implies against a weights file's header (read without
loading anything), and the memory a new model would need against the memory at hand.

Every check here runs before a single large tensor exists, so a hostile or careless config cannot
make zoo allocate gigabytes.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Any, BinaryIO

import torch

from zoo.caches import is_managed
from zoo.errors import ConfigError, RunError, ZooError
from zoo.runs.command_folders import results_folder

MAX_HEADER = 100_000_000         # bytes of a safetensors header zoo will read
MAX_CHANNELS = 64
MAX_SIDE = 4096
MISSING_HINT = ("Restore it from a copy, or train the run again (a run whose checkpoint.safetensors is left goes on "
                "from it: zoo train --resume RUN --epochs N, N more than it trained, writes a new model.safetensors).")
# Training holds the weights, their gradients and two Adam moments: about four copies of the weights.
TRAINING_COPIES = 4

DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}


# ----------------------------------------------------------------------------------------- config.json

def _fail(where: str, what: str) -> RunError:
    return RunError(f"{where} is not a zoo run config: {what}",
                    "The folder was not written by `zoo train`, or its config.json was edited or damaged.")


def check_run_config(run: Any, where: str) -> dict[str, Any]:
    """The parsed config.json of a run, with every field zoo reads checked for its type; a RunError
    names the first field that is missing, null or of the wrong type."""
    if not isinstance(run, dict):
        raise _fail(where, f"it holds a {type(run).__name__}, not a table")
    model = run.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _fail(where, "'model' must be the name of a model (a non-empty string)")
    for section in ("config", "train", "data"):
        if not isinstance(run.get(section), dict):
            got = "missing" if section not in run else f"a {type(run[section]).__name__}"
            raise _fail(where, f"'{section}' must be a table, it is {got}")
    shape = run["data"].get("shape")
    if not (isinstance(shape, list) and len(shape) == 3 and all(type(s) is int for s in shape)
            and 1 <= shape[0] <= MAX_CHANNELS and all(1 <= s <= MAX_SIDE for s in shape[1:])):
        raise _fail(where, f"data.shape must be [channels, height, width] (channels 1..{MAX_CHANNELS}, "
                           f"sides 1..{MAX_SIDE}), it is {json.dumps(shape)[:80]}")
    classes = run["data"].get("classes", [])
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes) or len(classes) > 100_000:
        raise _fail(where, "data.classes must be a list of class names")
    plugin = run.get("plugin", {})
    if not isinstance(plugin, dict):
        raise _fail(where, "'plugin' must be a table")
    dataset = run["train"].get("dataset", "")
    if not isinstance(dataset, str):
        raise _fail(where, "train.dataset must be the name of a data set (a string)")
    return run


def check_image_shape(shape: Any, what: str = "shape") -> tuple[int, int, int]:
    """An image shape a user gives (C, H, W) as whole numbers in the ranges config.json allows."""
    if not (isinstance(shape, (tuple, list)) and len(shape) == 3 and all(type(s) is int for s in shape)
            and 1 <= shape[0] <= MAX_CHANNELS and all(1 <= s <= MAX_SIDE for s in shape[1:])):
        raise ConfigError(f"{what} must be (channels, height, width): whole numbers, channels 1..{MAX_CHANNELS} "
                          f"and sides 1..{MAX_SIDE}; got {shape!r:.80}", "For example shape=(1, 28, 28).")
    return tuple(shape)


def run_shape(run: dict[str, Any]) -> tuple[int, int, int]:
    return tuple(run["data"]["shape"])


def run_classes(run: dict[str, Any]) -> int:
    return len(run["data"].get("classes", []))


# ----------------------------------------------------------------------------------------- the model's size

def skeleton(cls: type, config, shape, num_classes: int) -> torch.nn.Module | None:
    """The model built on the meta device: every shape and dtype, no memory. None where a plugin's
    constructor cannot run without real tensors (then the checks below are skipped for it)."""
    try:
        with torch.device("meta"):
            return cls(config, tuple(shape), num_classes)
    except ZooError:
        raise
    except ValueError as e:  # a plugin refusing its configuration in Python's way: said as zoo says it
        raise ConfigError(f"model '{getattr(cls, 'name', cls.__name__)}' refused its configuration: {e}",
                          "Change the setting it names (`zoo info MODEL` lists them). For the plugin's author: "
                          "raise zoo.errors.ConfigError for a configuration it cannot build.") from None
    except Exception:
        return None


def state_spec(module: torch.nn.Module) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    return {k: (tuple(v.shape), v.dtype) for k, v in module.state_dict().items()}


def nbytes(spec: dict[str, tuple[tuple[int, ...], torch.dtype]]) -> int:
    return sum(math.prod(shape) * torch.empty((), dtype=dtype).element_size() for shape, dtype in spec.values())


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**27 else f"{n / 2**20:.1f} MiB"


def available_memory(device: torch.device | str) -> int | None:
    """Bytes that can still be allocated on `device` (None where zoo cannot tell)."""
    device = torch.device(device)
    if device.type == "cuda":
        try:
            free, _ = torch.cuda.mem_get_info(device)
            return int(free)
        except Exception:
            return None
    if device.type == "meta":
        return None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(cls: type, config, shape, num_classes: int, device, *, copies: int = TRAINING_COPIES,
               what: str = "train") -> None:
    """Refuse a model whose weights (times `copies`: gradients and optimizer state) would not fit in the
    memory at hand, before any of it is allocated."""
    meta = skeleton(cls, config, shape, num_classes)
    if meta is None:
        return
    need = nbytes(state_spec(meta)) * copies
    free = available_memory(device)
    if free is not None and need > free:
        raise ConfigError(
            f"this {cls.name} would need about {_gib(need)} on {torch.device(device).type} to {what} "
            f"(its weights are {_gib(need / copies)}), and {_gib(free)} are free",
            "Choose smaller layers (channels, hidden, latent_dim); `zoo info MODEL` lists the sizes.")


# ----------------------------------------------------------------------------------------- weights files

def open_regular(path: Path) -> BinaryIO:
    """Open one of a run's files for reading without blocking: a FIFO or a device would make a plain
    open or read wait forever, so anything but a regular file is refused with a RunError naming it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise RunError(f"{path} is missing", MISSING_HINT) from None
    except OSError as e:
        if e.errno != errno.ENXIO:  # ENXIO: a socket, which cannot be opened at all
            raise
        raise _not_regular(path, os.stat(path).st_mode) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _not_regular(path, mode)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _file_kind(mode: int) -> str:
    """What stands where a file belongs, in words."""
    return ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a file")


def _not_regular(path: Path, mode: int) -> RunError:
    if stat.S_ISDIR(mode):
        return RunError(f"{path} is a folder, not a file", "The run folder is damaged.")
    return RunError(f"{path} is not a regular file ({_file_kind(mode)}); zoo reads only the files it wrote",
                    "Remove it, or put back the file zoo wrote there (from a copy).")


def read_header(path: Path) -> tuple[dict[str, tuple[tuple[int, ...], str]], dict[str, str]]:
    """The tensors a safetensors file declares (name -> (shape, dtype name)) and its metadata, read
    from the header alone."""
    path = Path(path)
    try:
        with open_regular(path) as fh:
            head = fh.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if n < 2 or n > MAX_HEADER:
                raise ValueError("no safetensors header")
            header = json.loads(fh.read(n))
    except FileNotFoundError:
        raise RunError(f"{path} is missing", MISSING_HINT) from None
    except (ValueError, UnicodeDecodeError, RecursionError, IsADirectoryError) as e:
        raise RunError(f"{path} is truncated or corrupt ({e})",
                       "Delete the run or restore the file; zoo only reads intact safetensors files.") from None
    if not isinstance(header, dict):
        raise RunError(f"{path} is corrupt (its header is not a table)")
    meta = header.pop("__metadata__", None) or {}
    data_bytes = path.stat().st_size - 8 - n
    tensors, end = {}, 0
    for name, info in header.items():
        shape = info.get("shape") if isinstance(info, dict) else None
        dtype = info.get("dtype") if isinstance(info, dict) else None
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(shape, list) and all(type(s) is int and s >= 0 for s in shape) and dtype in DTYPES
                and isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
            raise RunError(f"{path} is corrupt (tensor {name!r} has no valid shape, dtype and offsets)")
        numel = 1
        for s in shape:
            numel *= s
        size = numel * torch.empty((), dtype=DTYPES[dtype]).element_size()
        if offsets[1] - offsets[0] != size or not 0 <= offsets[0] <= offsets[1] <= data_bytes:
            # a header may not declare tensors larger than the file holds
            raise RunError(f"{path} is truncated or corrupt (tensor {name!r} does not fit in the file)",
                           "Delete the run or restore the file; zoo only reads intact safetensors files.")
        tensors[name] = (tuple(shape), dtype)
        end = max(end, offsets[1])
    if end != data_bytes:  # bytes no tensor accounts for: appended junk, or a file grown on purpose
        raise RunError(f"{path} is corrupt ({data_bytes - end:,} bytes past its tensors)",
                       "Delete the run or restore the file; zoo only reads intact safetensors files.")
    return tensors, meta if isinstance(meta, dict) else {}


def _kind(dtype: torch.dtype) -> str:
    return "float" if dtype.is_floating_point else ("bool" if dtype == torch.bool else "int")


def check_weights_fit(spec: dict[str, tuple[tuple[int, ...], torch.dtype]],
                      declared: dict[str, tuple[tuple[int, ...], str]], source: Path | str) -> None:
    """The tensors a weights file declares must be exactly those the model has: the same names and
    shapes, and dtypes of the same kind (floats for floats; integers exactly)."""
    missing = sorted(set(spec) - set(declared))
    unexpected = sorted(set(declared) - set(spec))
    wrong_shape = sorted(k for k in set(spec) & set(declared) if spec[k][0] != declared[k][0])
    wrong_type = []
    for k in sorted(set(spec) & set(declared)):
        got = DTYPES.get(declared[k][1])
        want = spec[k][1]
        if got is None or _kind(got) != _kind(want) or (_kind(want) != "float" and got != want):
            wrong_type.append(f"{k} ({declared[k][1]}, the model has {str(want).replace('torch.', '')})")
    if missing or unexpected or wrong_shape or wrong_type:
        details = []
        for label, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape),
                             ("wrong dtype", wrong_type)):
            if names:
                details.append(f"{label} {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}")
        raise RunError(f"{source} does not fit the model described by its config.json ({'; '.join(details)})",
                       "The weights come from another model or configuration.")


# ----------------------------------------------------------------------------------------- outputs

# Latent samplers fitted on a run's training codes, saved beside its weights (zoo.analysis.latent_samplers).
SAMPLER_FILE = re.compile(r"sampler-([A-Za-z0-9][A-Za-z0-9._-]*)\.safetensors")


def sampler_file(name: str) -> str:
    """The file a run keeps its fitted sampler `name` in."""
    return f"sampler-{name}.safetensors"


def sampler_name(filename: str) -> str | None:
    """The sampler a run's file holds (None: not a sampler file)."""
    match = SAMPLER_FILE.fullmatch(filename)
    return match[1] if match else None


def sampler_names(folder: Path) -> list[str]:
    """The samplers saved in a run folder, by name."""
    names = (sampler_name(p.name) for p in Path(folder).glob("sampler-*.safetensors") if p.is_file())
    return sorted(n for n in names if n)


PUSHED_MANIFEST = ".zoo-pushed.json"   # in a folder hub: the mark of a push, the files it wrote and their sha256s
# A run's own records: no output of a command may take their place.
RUN_RECORDS = ("config.json", "model.safetensors", "checkpoint.safetensors", "metrics.jsonl", "README.md",
               "eval.json", "eval-images.safetensors", PUSHED_MANIFEST, "loss.png")
# Files of a run named by what they hold: its latent samplers, each evaluation's progress.
RECORD_PREFIXES = ("sampler-", "eval-progress")
# The picture a model's training ends with is reconstructions.png where it reconstructs, else samples.png (a GAN's,
# zoo/training/pictures.py), which its card shows: a record of the run then, and zoo generate's grid there is
# samples-prior.png.
TRAINING_SAMPLES, TRAINING_RECONSTRUCTIONS = "samples.png", "reconstructions.png"


def is_run_record(root: Path, name: str) -> bool:
    """Whether `name` in run folder `root` is one of the run's own records: RUN_RECORDS, its samplers and
    evaluations' progress, its training's reconstructions.png (which its card shows), and a samples.png there of
    a run whose training picture is not reconstructions.png (a VAE stopped before its end has neither: a
    samples.png asked for there replaces nothing of its training)."""
    return name in RUN_RECORDS or (name.startswith(RECORD_PREFIXES) and name.endswith(".safetensors")) or \
        (name == TRAINING_RECONSTRUCTIONS and (root / name).is_file()) or \
        (name == TRAINING_SAMPLES and (root / name).is_file() and not (root / TRAINING_RECONSTRUCTIONS).is_file())


def check_replaceable(folder: Path, names) -> None:
    """Refuse, before any work is done, a command that would end by writing one of `names` into
    `folder` where a folder, a FIFO or a device stands (zoo writes by renaming a new file into place):
    a refusal after the work would leave the rest of its files written."""
    for name in names:
        path = Path(folder) / name
        if path.is_symlink() or not path.exists():
            continue
        if not path.is_file():
            mode = path.stat().st_mode
            kind = "is a folder" if stat.S_ISDIR(mode) else f"is not a regular file ({_file_kind(mode)})"
            raise RunError(f"{path} {kind}, where zoo writes its {name}; nothing was done",
                           "Remove it (or put back the file zoo wrote there), then try again.")


def run_root(folder: Path) -> Path | None:
    """The run folder `folder` is or lies in (the nearest one holding a config.json), else None."""
    for candidate in (folder, *folder.parents):
        if (candidate / "config.json").is_file():
            return candidate
    return None


def check_output(path: str | Path, own: str | Path | None = None, flag: str = "--out") -> Path:
    """A file a user named for a command's output (--out): refused where writing it would replace a
    run's own records (its weights, checkpoint, config, metrics, training curve, samplers), any existing
    file in a run other than `own` (the run the command reads; its sub-folders, such as progress/,
    included), any existing file in a zoo search's study or a zoo cv's folder (its results), or a file in
    zoo's or the Hugging Face Hub's caches or the bundled weights. The folder is
    resolved first (`..`, links), so no spelling of the path gets past these checks. `flag`: the option that
    named it, for the messages."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise ConfigError(f"{flag} names a file by its path, not {path!r:.60}", "For example out='pictures/x.png'.")
    path = Path(path)
    folder = path.absolute().parent.resolve()
    target = folder / path.name
    root = run_root(folder)
    mine = root is not None and own is not None and Path(own).absolute().resolve() == root
    if root == folder and is_run_record(root, path.name):
        whose = "the run's own" if mine or own is None else f"another run's ({root})"
        raise ConfigError(f"{flag} {path} would replace {whose} {path.name}",
                          "Write the output elsewhere (another name or folder).")
    # a search's study or a cv's folder: every file there is one of its results (trials.csv, history.png, cv.png)
    other = results_folder(folder)
    if (other or root is not None and not mine) and (target.exists() or target.is_symlink()):
        whose = f"{other} ({folder})" if other else f"another run ({root})"
        raise ConfigError(f"{flag} {path} would replace {path.name} of {whose}",
                          "Write the output elsewhere (another name or folder).")
    if root is not None and (root / PUSHED_MANIFEST).is_file():  # a file there would be published as if pushed
        raise ConfigError(f"{flag} {path} is inside a folder hub's entry ({root}): only zoo push writes there",
                          "Write the output elsewhere (its results from a read-only command go to ./zoo-outputs/).")
    if is_managed(folder):
        raise ConfigError(f"{flag} {path} is inside a folder zoo or the Hugging Face Hub manages "
                          "(a verified cache or the bundled weights)", "Write the output elsewhere.")
    return path


def picture_output(out: str | Path | None, *, tensors: bool = False, own: str | Path | None = None,
                   flag: str = "--out") -> Path | None:
    """The picture file the user named with --out, checked like any output (check_output; `own`: the run
    the command reads) and refused unless it ends in .png, the format zoo writes (a .jpg or .txt name
    holding PNG bytes would mislead every later reader); None when none was named, for the command's
    default. `tensors`: .safetensors is accepted too (zoo generate writes the images themselves there); `flag`: the
    option that named it, for the messages."""
    if out is None or out == "":
        return None
    path = check_output(out, own, flag)
    if path.suffix.lower() != ".png" and not (tensors and is_tensor_file(path)):
        also = " (a picture) or .safetensors (the images as a tensor)" if tensors else ""
        raise ConfigError(f"{flag} {path}: zoo writes pictures as PNG; give a name ending in .png{also}")
    return path


def is_tensor_file(path: Path | None) -> bool:
    """Whether an output named `path` is a tensor file (.safetensors, in any case: x.SAFETENSORS too), not a
    picture: the one test of the format, for picture_output and the commands that write either."""
    return path is not None and path.suffix.lower() == ".safetensors"


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks (a weights file may be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
