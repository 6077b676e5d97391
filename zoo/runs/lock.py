"""One writer per run folder.

Training takes an exclusive advisory lock on RUN/.zoo.lock (fcntl.flock) and holds it until it ends;
the kernel drops it when the process ends, however it ends (kill -9 included), so a lock is never left
stale. A second `zoo train --out RUN` or `--resume RUN` meanwhile gets a clear message instead of
interleaving its epochs with the first one's.
"""

from __future__ import annotations

import os
from pathlib import Path

from zoo.errors import RunError

LOCK = ".zoo.lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, one writer is the user's care
    fcntl = None


class RunLock:
    """Held while a process writes a run folder; `release()` (or the process's end) lets the next in."""

    def __init__(self, folder: Path, fd: int | None):
        self.folder = folder
        self._fd = fd

    def release(self) -> None:
        """Remove the lock file, then drop the lock: a process that opened the file meanwhile finds it
        removed (lock_run compares inodes) and takes a fresh one, so no stale file stays behind."""
        if self._fd is not None:
            try:
                os.unlink(self.folder / LOCK)
            except OSError:
                pass
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def lock_run(folder: Path) -> RunLock:
    """Take `folder`'s writer lock, or raise a RunError naming the process that holds it."""
    folder = Path(folder)
    if fcntl is None:
        return RunLock(folder, None)
    path = folder / LOCK
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise RunError(f"{folder} is being written by another zoo process"
                           f"{f' (pid {holder})' if holder else ''}",
                           "A run folder has one writer: wait for it to finish, or train into another --out.") \
                from None
        except BaseException:
            os.close(fd)
            raise
        # A writer that gave up removes its lock file: a lock taken on that removed file guards nothing.
        try:
            same = os.fstat(fd).st_ino == os.stat(path, follow_symlinks=False).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return RunLock(folder, fd)


def writer_of(folder: Path) -> str | None:
    """The pid (or "" if unknown) of a process that holds `folder`'s writer lock now, else None. Takes no
    lock and writes nothing: readers of a run that may be read-only (`zoo push`) ask with it."""
    if fcntl is None:
        return None
    try:
        fd = os.open(Path(folder) / LOCK, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:  # no lock file: no writer (a writer that ends removes it)
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # refused while a writer holds it exclusively
        return None
    except BlockingIOError:
        return _holder(fd)
    finally:
        os.close(fd)  # drops the shared lock, if taken


def _holder(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode().strip()
    except (OSError, UnicodeDecodeError):
        return ""
