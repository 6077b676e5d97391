"""Run folders on disk: config.json, model.safetensors, checkpoint.safetensors, metrics.jsonl.

Every file is written to a temporary name and renamed into place, so a process killed at any moment
leaves the previous complete version. Every safetensors file zoo writes carries the sha256 of its
tensors in its metadata (`zoo_sha256`), checked whenever it is read: a damaged file is refused, never
loaded. Only safetensors are ever read: zoo never unpickles anything. What checkpoint.safetensors holds,
and how a run resumes from it, is zoo.runs.training_state.

A run's files are opened without blocking and only read if they are regular files (open_regular): a FIFO
or a device in a run folder is refused with one message, never waited on. eval.json records the weights it
measured and a digest of the config.json fields that shape what it measures, and counts only while
model.safetensors holds those weights and config.json those fields (read_eval).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save_file as st_save_file

from zoo.errors import ConfigError, RunError
from zoo.runs.files import DTYPES, check_weights_fit, open_regular, read_header, state_spec
from zoo.runs.metrics_log import best_row, metrics_line, metrics_rows, read_metrics  # noqa: F401 (ckpt.X)

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
CHECKPOINT = "checkpoint.safetensors"
METRICS = "metrics.jsonl"
EVAL = "eval.json"
CARD = "README.md"
DIGEST_KEY = "zoo_sha256"   # safetensors metadata: the sha256 of the file's tensors (tensor_digest)
WEIGHTS_DIGEST = "weights_digest"  # eval.json: the weights it measured (weights_digest of model.safetensors)
CONFIG_DIGEST = "config_digest"  # eval.json: what shaped the evaluation in config.json (measured_config_digest)
TMP_SUFFIX = ".tmp"          # atomic_write's temporary files: .NAME.XXXX.tmp
# the train fields that choose the images an evaluation reads (data_dir only says where they lie here)
MEASURED_TRAIN_KEYS = ("dataset", "binarize", "image_size")


def atomic_write(path: Path, data: bytes | str, errors: str = "surrogateescape") -> None:
    """Write `data` to `path` through a temporary file renamed into place: readers and a kill see the
    old file or the new one, never a mixture. Only a regular file (or nothing) is ever replaced: a
    device, a pipe or a folder at `path` is refused, not swapped for a file. Text is written as UTF-8;
    a file name that is not UTF-8 (Latin-1 bytes, which Python holds as surrogates) is written back as
    its own bytes (`errors`: surrogateescape; a card, read as UTF-8 text, takes backslashreplace)."""
    with atomic_file(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data.encode("utf-8", errors) if isinstance(data, str) else data)


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[str]:
    """A new temporary file's path beside `path`, for a writer that takes a file name (safetensors' save_file,
    which writes the tensors' memory, not a copy of the file's bytes): once written, synced and renamed onto it."""
    path = Path(path)
    refuse_special(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    except OSError as e:  # named after the file the user asked for, not zoo's temporary
        e.filename = str(path)
        raise
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and (e.filename is None or e.filename == tmp):
            e.filename = str(path)  # the file the user asked for, not zoo's temporary
        raise


def refuse_special(path: Path) -> None:
    """A ConfigError if `path` exists and is not a regular file (a device such as /dev/null, a pipe, a
    folder): zoo writes by renaming a new file into place, which would replace it."""
    if path.exists() and not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file"
        raise ConfigError(f"{path} is {kind}: zoo will not replace it with a file",
                          "Give the path of a file to write (a new one, or one zoo wrote before).")


_TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")  # what mkstemp makes for atomic_write
STALE_SECONDS = 600


def remove_stale_temporaries(folder: Path, older_than: float = STALE_SECONDS) -> list[Path]:
    """Delete the temporary files atomic_write leaves when a process is killed mid-write
    (.NAME.XXXXXXXX.tmp), once they are `older_than` seconds old (a live write takes far less); files
    of other names, a user's `.notes.tmp` among them, are never touched."""
    import time

    removed = []
    for p in Path(folder).glob(f".*{TMP_SUFFIX}"):
        if (_TEMPORARY.match(p.name) and p.is_file() and not p.is_symlink()
                and time.time() - p.stat().st_mtime >= older_than):
            try:
                p.unlink()
                removed.append(p)
            except OSError:
                pass
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: Path, obj: Any) -> None:
    """A JSON file; an eval.json written beside its run's config.json records the digest of what shaped
    the evaluation there (measured_config_digest), so that an edit of config.json makes it stale (read_eval)."""
    path = Path(path)
    if path.name == EVAL and isinstance(obj, dict) and WEIGHTS_DIGEST in obj and (path.parent / CONFIG).is_file():
        obj = {**obj, CONFIG_DIGEST: measured_config_digest(read_json(path.parent / CONFIG))}
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def measured_config_digest(record: Any) -> str:
    """The sha256 of what in a config.json shapes what an evaluation measures: the model, its `config`, the data
    set (its record, binarisation and image size). Not what a push leaves out or rewrites (data_dir, the trackers'
    addresses, init_from), nor the training settings (epochs, lr), which changed the weights if anything."""
    record = record if isinstance(record, dict) else {}
    train = record.get("train") if isinstance(record.get("train"), dict) else {}
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    config = {k: v for k, v in config.items() if k != "init_from"}  # a push publishes it by its folder's name
    shaped = {"model": record.get("model"), "config": config, "data": record.get("data"),
              "train": {k: train.get(k) for k in MEASURED_TRAIN_KEYS}}
    return hashlib.sha256(json.dumps(shaped, sort_keys=True, default=str).encode()).hexdigest()


def read_json(path: Path) -> Any:
    with open_regular(Path(path)) as fh:
        data = fh.read()
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise RunError(f"{path} is not valid JSON ({type(e).__name__}: {str(e)[:200]})",
                       "The run folder is damaged.") from None


def read_weights_header(path: Path) -> tuple[dict[str, tuple[tuple[int, ...], str]], dict[str, str]]:
    """files.read_header of a run's weights file, refused first if it is not a regular file (a FIFO would
    block the read)."""
    with open_regular(Path(path)):
        return read_header(Path(path))


def weights_digest(path: Path) -> str:
    """What identifies the weights in a file: the checksum zoo recorded in it when it wrote it
    (DIGEST_KEY, read from the header), else, for a file another tool wrote, the sha256 of its bytes."""
    with open_regular(Path(path)) as fh:
        _, meta = read_header(Path(path))
        if isinstance(meta.get(DIGEST_KEY), str) and meta[DIGEST_KEY]:
            return meta[DIGEST_KEY]
        h = hashlib.sha256()
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
        return f"sha256:{h.hexdigest()}"


def read_eval(run_dir: Path, weights: Path | None = None) -> tuple[dict[str, Any] | None, str | None]:
    """The run's eval.json if it measured the weights now in model.safetensors: (its contents, None).
    Else (None, why it is left out): unreadable, written by an older zoo that did not record the weights
    it measured, or stale (measured on earlier weights: the run was trained further; or config.json changed
    what they measure since: an eval.json that records no CONFIG_DIGEST, an older zoo's or a bundled
    one's, is judged by its weights alone). (None, None): none.
    Every reader of eval.json (card, compare, push, info) goes through here, so none shows stale metrics.
    `weights`: the model file the evaluation must have measured, where eval.json is not beside it (the
    outputs folder of a model the user does not own)."""
    path = Path(run_dir) / EVAL
    if not os.path.lexists(path):
        return None, None
    try:
        result = read_json(path)
        if not isinstance(result, dict) or not isinstance(result.get("metrics"), dict):
            return None, f"{path} holds no test metrics: ignored"
        if not _eval_fields_ok(result):
            return None, (f"{path} holds values zoo does not write (a metric that is not a finite number, a "
                          "name too long, a split or image count of the wrong type): ignored; run zoo eval again")
        if not result.get(WEIGHTS_DIGEST):
            return None, (f"{path} does not record which weights it measured (an older zoo wrote it): "
                          "ignored; run zoo eval again")
        if result[WEIGHTS_DIGEST] != weights_digest(weights or Path(run_dir) / WEIGHTS):
            return None, f"{path} is stale: measured on earlier weights; run zoo eval again"
        config = (weights.parent if weights is not None else Path(run_dir)) / CONFIG
        if result.get(CONFIG_DIGEST) and result[CONFIG_DIGEST] != measured_config_digest(read_json(config)):
            return None, (f"{path} is stale: config.json changed since it was measured (the model's settings or "
                          "its data); run zoo eval again")
    except RunError as e:
        return None, f"{e.message}: {EVAL} ignored"
    except OSError as e:
        return None, f"{path} cannot be read ({e.strerror or e}): ignored"
    return result, None


def _eval_fields_ok(result: dict[str, Any]) -> bool:
    """The fields of eval.json that readers print, as zoo writes them: metric names (short text) to finite
    numbers, the split's name and its number of images."""
    numbers_ok = all(isinstance(k, str) and 0 < len(k) <= 64 and type(v) in (int, float) and math.isfinite(v)
                     for k, v in result["metrics"].items())
    split, images = result.get("split", "test"), result.get("images", 0)
    return (numbers_ok and isinstance(split, str) and len(split) <= 16
            and type(images) is int and images >= 0)


def _plain(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors detached, contiguous, on the CPU; copied only where one shares its memory with another (tied
    weights), which safetensors refuses: a copy of all doubled the memory a checkpoint takes to write."""
    plain, seen = {}, set()
    for k, v in tensors.items():
        v = v.detach().to("cpu").contiguous()
        where = v.untyped_storage().data_ptr() if v.numel() else None
        plain[k] = v.clone() if where in seen else v
        seen.add(where)
    return plain


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in name order: the same tensors give the
    same digest whatever the file layout."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(json.dumps([name, str(t.dtype), list(t.shape)]).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy() if t.numel() else b"")  # its memory, not a copy of it
    return h.hexdigest()


def file_digest(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> str:
    """The checksum zoo records in a file: its tensors and its other metadata (an edited optimizer
    setting or trainer state is damage too)."""
    return _with_metadata(tensor_digest(tensors), metadata)


def _with_metadata(tensors_hex: str, metadata: dict[str, str]) -> str:
    """The file's checksum from its tensors' digest and its metadata (less the checksum itself)."""
    meta = {k: v for k, v in metadata.items() if k != DIGEST_KEY}
    return hashlib.sha256((tensors_hex + json.dumps(meta, sort_keys=True)).encode()).hexdigest()


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    plain = _plain(tensors)
    meta = dict(metadata or {})
    with atomic_file(path) as tmp:
        try:
            st_save_file(plain, tmp, metadata={**meta, DIGEST_KEY: file_digest(plain, meta)})
        except SafetensorError as e:  # its writer's I/O errors (a full disk, a file size limit) come as text
            if (code := re.search(r"\(os error (\d+)\)", str(e))) is None:
                raise
            raise OSError(int(code[1]), os.strerror(int(code[1])), str(path)) from e


class TensorStream:
    """Write one tensor of known shape into a safetensors file a batch at a time, so memory holds one
    batch whatever the tensor's size. The file appears (atomically) only when every row was written;
    its checksum (DIGEST_KEY) is the one `save_tensors` would record for the same tensor."""

    def __init__(self, path: Path, name: str, shape: tuple[int, ...], dtype: torch.dtype = torch.float32,
                 metadata: dict[str, str] | None = None):
        self.path, self.name, self.shape, self.dtype = Path(path), name, tuple(shape), dtype
        code = next(k for k, v in DTYPES.items() if v == dtype)
        self.row_bytes = torch.empty((), dtype=dtype).element_size()
        for s in self.shape[1:]:
            self.row_bytes *= s
        self.rows = 0
        placeholder = "0" * 64  # overwritten with the real digest once every byte is known
        header = {name: {"dtype": code, "shape": list(self.shape), "data_offsets": [0, self.row_bytes * self.shape[0]]},
                  "__metadata__": {**(metadata or {}), DIGEST_KEY: placeholder}}
        text = json.dumps(header, separators=(",", ":"))
        text += " " * (-len(text) % 8)
        self._header = text.encode()
        self._digest_at = 8 + self._header.index(placeholder.encode())
        self._hash = hashlib.sha256(json.dumps([name, str(dtype), list(self.shape)]).encode())
        self._meta = dict(metadata or {})
        self._file = contextlib.ExitStack()  # atomic_file's: errors name self.path, not its temporary
        self._fh = self._file.enter_context(open(self._file.enter_context(atomic_file(self.path)), "r+b"))
        self._write(len(self._header).to_bytes(8, "little") + self._header)

    def write(self, batch: torch.Tensor) -> None:
        if tuple(batch.shape[1:]) != self.shape[1:] or self.rows + batch.shape[0] > self.shape[0]:
            raise ValueError(f"batch {tuple(batch.shape)} does not continue a tensor of shape {self.shape}")
        data = batch.detach().to("cpu", self.dtype).contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        self._hash.update(data)
        self._write(data)
        self.rows += batch.shape[0]

    def _write(self, data: bytes) -> None:
        try:
            self._fh.write(data)
        except BaseException as e:  # a full disk: the temporary goes, and the error names the file asked for
            self._file.__exit__(type(e), e, e.__traceback__)
            raise

    def close(self) -> Path:
        if self.rows != self.shape[0]:
            raise ValueError(f"{self.rows} of {self.shape[0]} rows written")
        self._fh.seek(self._digest_at)
        self._write(_with_metadata(self._hash.hexdigest(), self._meta).encode())
        self._file.close()  # flushed, synced and renamed into place
        return self.path

    def __enter__(self) -> "TensorStream":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:  # the temporary removed (a second exit, after _write's, does nothing)
            self._file.__exit__(exc_type, exc, tb)


def damaged(path: Path, why: str) -> RunError:
    """The error for a file zoo wrote whose contents are no longer what it wrote."""
    return RunError(f"{path} is damaged: {why}",
                    "Restore the file from a copy, or train again; zoo does not load damaged files.")


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file, with clear errors for missing, truncated, foreign or damaged files: the
    tensors must match the checksum recorded when zoo wrote the file (files without one, written by
    other tools or older zoo versions, are read as they are)."""
    path = Path(path)
    with open_regular(path) as fh:
        read_header(path)  # its declared tensors fill the file exactly: nothing large is read before that
        data = fh.read()
    try:
        tensors = st_load(data)
        metadata = read_metadata(data)
    except (SafetensorError, ValueError, RuntimeError, OSError, UnicodeDecodeError, AttributeError) as e:
        raise RunError(f"{path} is truncated or corrupt: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
                       "Delete the run or restore the file; zoo only reads intact safetensors files.") from None
    expected = metadata.get(DIGEST_KEY)
    if expected is not None and file_digest(tensors, metadata) != expected:
        raise damaged(path, "its contents do not match the checksum recorded when it was written")
    return tensors, metadata


def verify_file(path: Path) -> None:
    """Raise a RunError if a safetensors file is unreadable or does not match its recorded checksum."""
    load_tensors(path)


def read_metadata(data: bytes) -> dict[str, str]:
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    meta = header.get("__metadata__", {}) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise ValueError("its metadata is not a table of strings")
    return meta


def run_identity(record: dict[str, Any]) -> str:
    """Which run a config.json describes: the model's name, its `created` time and its `run_id` (a random
    id, so two runs started in the same second differ; runs trained before zoo recorded it have the time
    alone; "" for a run that records no creation time)."""
    created = record.get("created")
    if not created:
        return ""
    run_id = record.get("run_id")
    return f"{record.get('model')} created {created}" + (f", run {run_id}" if run_id else "")


def check_state_fits(spec: dict[str, tuple[tuple[int, ...], torch.dtype]], state: dict[str, torch.Tensor],
                     source: Path) -> None:
    """Refuse loaded tensors that are not exactly those of `spec` (names, shapes, dtypes): another model's."""
    check_weights_fit(spec, {k: (tuple(v.shape), dtype_name(v.dtype)) for k, v in state.items()}, source)


def load_state(model: torch.nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """Load weights strictly: a file whose tensors do not fit the model (names, shapes, dtypes) is
    foreign, and weights that are not finite are damaged: both are refused."""
    check_state_fits(state_spec(model), state, source)
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise damaged(Path(source), f"{', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''} "
                                     "hold values that are not finite (NaN or infinity)")
    model.load_state_dict(state, strict=True)


def dtype_name(dtype: torch.dtype) -> str:
    """A torch dtype by its safetensors name (F32, ...), as a file's header declares it."""
    return next((k for k, v in DTYPES.items() if v == dtype), str(dtype))
