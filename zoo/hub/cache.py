"""The records of zoo's cache of verified hub copies (JSON written atomically), what a fetch gave back,
the offline switch, and the one error for a cache zoo cannot write. Where the caches are: zoo.caches."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from zoo import environment
from zoo.errors import StorageError, storage_error


def offline() -> bool:
    """Whether the hub may not be reached (zoo.environment: data downloads read the same switches)."""
    if "huggingface_hub" in sys.modules:  # as the imported library took it too
        from huggingface_hub import constants

        return environment.offline() or constants.is_offline_mode()
    return environment.offline()


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
    unverified: list[str] = dataclasses.field(default_factory=list)  # hf:// files a hub listed no checksum for


def cache_error(e: OSError, where: Path):
    """One StorageError (the exit code of every operating-system error) for a cache zoo cannot write; memory that
    ran out (ENOMEM) stays said as such."""
    said = storage_error(e, "cannot write to zoo's cache at", path=where)
    if not isinstance(said, StorageError):
        return said
    return StorageError(said.message,
                        "zoo keeps verified copies under $XDG_CACHE_HOME/zoo/hub: free space there or make it "
                        "writable, or point XDG_CACHE_HOME at a folder that is.")
