"""What a hub location holds and how zoo checks it before loading anything: file names, safetensors
headers, run configs, checksums."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from zoo.hub.locations import HubError

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
CARD = "README.md"
IMAGES = ("reconstructions.png", "samples.png", "loss.png")
MODEL_FILES = (CONFIG, WEIGHTS)                  # what loading needs; checked on every load
REPO_FILES = (CONFIG, WEIGHTS, CARD, *IMAGES)    # all that is ever downloaded or pushed
UNSAFE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
PULLED_MANIFEST = ".zoo-pulled.json"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def git_blob_sha1(path: Path) -> str:
    h = hashlib.sha1()
    h.update(f"blob {os.path.getsize(path)}\0".encode())
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def safe_name(name: Any) -> bool:
    """A file name a hub may list: relative, '/'-separated, no '..', no backslash, no control character."""
    return (isinstance(name, str) and bool(name) and ".." not in name and "\\" not in name
            and not name.startswith("/") and not re.match(r"^[A-Za-z]:", name)
            and not any(ord(c) < 32 for c in name))


def select_files(names: list[str], where: str) -> list[str]:
    """The files zoo will fetch from a location listing `names`; refuse unsafe names and pickle-only repos."""
    bad = [n for n in names if not safe_name(n)]
    if bad:
        raise HubError(f"{where} lists unsafe file names ({', '.join(repr(n) for n in bad[:3])}): refusing it",
                       "A hub file name may not contain '..', start with '/' or hold a backslash; "
                       "zoo never writes outside its cache.")
    present = set(names)
    if WEIGHTS not in present:
        pickles = sorted(n for n in names if n.lower().endswith(UNSAFE_SUFFIXES))
        if pickles:
            raise HubError(f"{where} offers only pickle-based weights ({', '.join(pickles[:3])}): "
                           "zoo only loads safetensors",
                           "zoo never unpickles a file; ask for a model.safetensors (`zoo push` writes one).")
        raise HubError(f"{where} has no {WEIGHTS}: it is not a zoo model",
                       "`zoo push RUN LOCATION` publishes a run in the layout zoo loads.")
    if CONFIG not in present:
        raise HubError(f"{where} has no {CONFIG}: it is not a zoo model",
                       "`zoo push RUN LOCATION` publishes a run in the layout zoo loads.")
    return [n for n in REPO_FILES if n in present]


def check_safetensors(path: Path, where: str) -> None:
    """A well-formed safetensors file (header and offsets), read without torch and without unpickling."""
    problem = None
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if n < 2 or n > 100_000_000:
                problem = "no safetensors header"
            elif n > size - 8:
                problem = f"it is truncated: {size} bytes, its header alone needs {n + 8}"
            else:
                header = json.loads(fh.read(n))
                if not isinstance(header, dict):
                    problem = "its header is not a table"
                else:
                    end = 0
                    for key, info in header.items():
                        if key == "__metadata__":
                            continue
                        offsets = info.get("data_offsets") if isinstance(info, dict) else None
                        if not (isinstance(offsets, list) and len(offsets) == 2 and 0 <= offsets[0] <= offsets[1]):
                            problem = f"tensor {key!r} has no valid offsets"
                            break
                        end = max(end, offsets[1])
                    if problem is None and end > size - 8 - n:
                        problem = f"it is truncated ({size} bytes, the header needs {end + 8 + n})"
    except (OSError, ValueError, UnicodeDecodeError) as e:
        problem = problem or f"{type(e).__name__}: {e}"
    if problem:
        raise HubError(f"{WEIGHTS} from {where} is not a valid safetensors file ({problem}): refusing it",
                       "zoo only loads intact safetensors files; the upload or the copy is damaged.")


def check_config(path: Path, where: str) -> dict:
    try:
        run = json.loads(Path(path).read_text())
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise HubError(f"{CONFIG} from {where} is not valid JSON ({e})") from None
    if not isinstance(run, dict) or not isinstance(run.get("model"), str) or not isinstance(run.get("config"), dict):
        raise HubError(f"{CONFIG} from {where} is not a zoo run config (no 'model' and 'config')",
                       "`zoo push RUN LOCATION` publishes a run in the layout zoo loads.")
    return run


def check_model_files(folder: Path, where: str) -> None:
    check_config(folder / CONFIG, where)
    check_safetensors(folder / WEIGHTS, where)


def verify_catalogued(sha256: str, expected: str | None, name: str | None, where: str) -> None:
    if expected and sha256 != expected.lower():
        raise HubError(f"the weights of '{name}' from {where} do not match their catalogued sha256 "
                       f"(got {sha256[:12]}..., expected {expected[:12]}...): refusing to load them",
                       "The copy on the hub or in the cache is not the one registry.toml describes.")
