"""The hub's temporary files and folders, and the sweep that removes those a killed process left.

A process killed mid-write (kill -9, a power cut) leaves its temporaries behind: `.tmp-*` folders in
zoo's cache, `.NAME.tmp-*` and `.NAME.old-*` beside a push destination, `.NAME.XXXX.tmp` json files.
Each temporary folder is locked (flock) by the process writing it for as long as it lives; the kernel
drops the lock when the process ends, however it ends. A later run removes a temporary no live process
holds, so a concurrent writer's are never touched:

    a folder: not locked, and older than GRACE_S (the moment between its creation and its lock);
              where the file system has no locks, older than STALE_S
    a file:   older than STALE_S (a json file is written in milliseconds)
"""

from __future__ import annotations

import glob
import os
import shutil
import stat
import time
import uuid
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks; only age tells
    fcntl = None

GRACE_S = 60
STALE_S = 3600
TEMP_TAG = 12  # characters of the random tag in a temporary's name


class Held:
    """An open folder, locked while it is held: the lock follows the folder through a rename."""

    def __init__(self, path: Path, fd: int | None):
        self.path = path
        self._fd = fd

    def fileno(self) -> int | None:
        return self._fd

    def is_at(self, path: Path) -> bool:
        """Whether `path` is still the folder held (not replaced by a rename meanwhile)."""
        try:
            here, held = os.stat(path), os.fstat(self._fd)
        except (OSError, TypeError):
            return False
        return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None

    def __enter__(self) -> "Held":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _lock(fd: int, wait: bool) -> bool | None:
    """True: locked; False: another process holds it; None: this file system has no locks."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        return True
    except BlockingIOError:
        return False
    except OSError:  # e.g. NFS without lock support
        return None


def _open_dir(path: Path, *, follow: bool = False) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW))


def hold(folder: Path) -> Held:
    """Lock `folder` (waiting for another holder to finish): pushes into one folder run one at a time.
    `folder` may be reached through a link (a shared disk mounted elsewhere)."""
    fd = _open_dir(folder, follow=True)
    _lock(fd, wait=True)
    return Held(Path(folder), fd)


def share(folder: Path) -> Held:
    """`folder` opened and share-locked (waiting while a push holds it: `_swap` in zoo.hub.folder), for a reader;
    OSError where it cannot be opened. A file system without locks: opened only."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
        except OSError:  # e.g. NFS without lock support: read unguarded, as before
            pass
    return Held(Path(folder), fd)


def make_dir(parent: Path, prefix: str) -> Held:
    """A new, empty temporary folder `parent/PREFIXxxxx`, locked by this process until released."""
    path = Path(parent) / f"{prefix}{uuid.uuid4().hex[:TEMP_TAG]}"
    path.mkdir()
    fd = _open_dir(path)
    _lock(fd, wait=False)
    return Held(path, fd)


def _age(st: os.stat_result) -> float:
    return time.time() - st.st_mtime


def is_stale(path: Path) -> bool:
    """True for a temporary no live process holds (see the module's docstring); never for a link."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if stat.S_ISREG(st.st_mode):
        return _age(st) > STALE_S
    if not stat.S_ISDIR(st.st_mode):
        return False
    try:
        fd = _open_dir(path)
    except OSError:
        return False
    try:
        locked = _lock(fd, wait=False)
    finally:
        os.close(fd)
    if locked is False:
        return False
    return _age(st) > (GRACE_S if locked else STALE_S)


def stale(parent: Path, pattern: str) -> list[Path]:
    """The stale temporaries in `parent` whose names match `pattern` (a glob)."""
    try:
        return sorted(p for p in Path(parent).glob(pattern) if is_stale(p))
    except OSError:
        return []


def remove(path: Path) -> None:
    """Delete a temporary file or folder; one that is already gone, or cannot go, is left to a later sweep."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except OSError:
        pass


def sweep(parent: Path, *patterns: str) -> list[Path]:
    """Remove the stale temporaries matching `patterns` in `parent`; return what was removed."""
    removed = [p for pattern in patterns for p in stale(parent, pattern)]
    for p in removed:
        remove(p)
    return removed


def wait_for_swap(src: Path) -> None:
    """Where `src` is missing because a push moved it aside to swap a new version in (`_swap` in zoo.hub.folder
    holds the old one's lock until the new one is in place), wait for that push, and for the next one that moved it
    aside meanwhile: a reader then gets the new version, not "no hub"."""
    for _ in range(10):
        olds = [] if os.path.lexists(src) else swapping(src)
        if not olds:
            return
        for old in olds:
            try:
                share(old).release()
            except OSError:  # removed meanwhile: that push is done
                continue


def swapping(src: Path) -> list[Path]:
    """The old versions of `src` live pushes have moved aside to swap a new one in (none: no push is swapping; one
    a killed push left is stale, not waited for)."""
    return [old for old in src.parent.glob(f"{glob.escape(f'.{src.name}')}.old-*") if not is_stale(old)]
