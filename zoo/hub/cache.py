"""zoo's own cache of verified hub copies ($XDG_CACHE_HOME/zoo/hub) and the folders nothing may write into."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from zoo import registry


def zoo_cache() -> Path:
    """Where zoo keeps its hub records and folder-hub copies: $XDG_CACHE_HOME/zoo/hub."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "zoo" / "hub"


def _hf_caches() -> list[Path]:
    """huggingface-hub's cache: as the environment says now, and as the imported library took it."""
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
    roots = [Path(os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
                  or os.path.join(home, "hub")).expanduser()]
    if "huggingface_hub" in sys.modules:
        from huggingface_hub import constants

        roots.append(Path(constants.HF_HUB_CACHE))
    return roots


def is_managed(folder: str | Path) -> bool:
    """True for folders that zoo or huggingface-hub manage (pulled copies, the HF cache, bundled weights):
    nothing should write into them (outputs, fitted samplers)."""
    folder = Path(folder).absolute()
    roots = [zoo_cache(), *_hf_caches(), Path(registry.__file__).parent]
    return any(folder == r.absolute() or r.absolute() in folder.parents for r in roots)


def offline() -> bool:
    flag = os.environ.get("ZOO_OFFLINE", "") not in ("", "0")
    if "huggingface_hub" in sys.modules:
        from huggingface_hub import constants

        return flag or constants.is_offline_mode()
    return flag or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")  # a killed writer's: see zoo.hub.temps
    try:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclasses.dataclass
class Fetched:
    """A verified local copy of a location."""

    folder: Path
    location: str
    files: dict[str, str]            # name -> sha256
    commit: str | None = None
    cached: bool = False             # served from an earlier verified copy, without downloading


def cache_error(e: OSError, where: Path):
    """One StorageError (the exit code of every operating-system error) for a cache zoo cannot write."""
    from zoo.errors import StorageError, storage_error

    return StorageError(storage_error(e, "cannot write to zoo's cache at", path=where).message,
                        "zoo keeps verified copies under $XDG_CACHE_HOME/zoo/hub: free space there or make it "
                        "writable, or point XDG_CACHE_HOME at a folder that is.")
