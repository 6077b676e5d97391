"""Whether zoo can write somewhere, found out before the work rather than after it: a file is made and
removed for real, as permission bits say nothing to root and a read-only mount is only found by writing."""

from __future__ import annotations

import tempfile
from pathlib import Path

from zoo.errors import storage_error


def nearest_existing(path: str | Path) -> Path:
    """`path`, or its nearest ancestor that exists (the folders a write would make are not there yet)."""
    existing = Path(path).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return existing


def write_error(folder: Path) -> OSError | None:
    """Why no file can be made in `folder`, or None where one can: tried for real, as permission bits say
    nothing to root and a read-only mount is only found by writing."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return None
    except OSError as e:
        return e


def writable(folder: Path) -> bool:
    """True if a file can be made in `folder` (see write_error)."""
    return write_error(folder) is None


def check_writable(path: str | Path, flag: str) -> None:
    """Refuse now, not after hours of work, an output file that cannot be written into its folder (or the
    nearest folder that exists: the missing ones are made when it is written)."""
    e = write_error(nearest_existing(Path(path).absolute().parent))
    if e is not None:  # named by the user's path, not the probe's temporary name
        raise storage_error(OSError(e.errno, e.strerror), f"{flag}: cannot write", path=path, option=flag)
