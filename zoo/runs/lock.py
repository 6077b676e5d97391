"""One writer per run folder.

Training takes an exclusive advisory lock on RUN/.zoo.lock (fcntl.flock) and holds it until it ends;
the kernel drops it when the process ends, however it ends (kill -9 included), so a lock is never left
stale. A second `zoo train --out RUN` or `--resume RUN` meanwhile gets a clear message instead of
interleaving its epochs with the first one's.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from zoo.errors import RunError

LOCK = ".zoo.lock"
RESULTS_LOCK = ".zoo-results.lock"
PROBE_TRIES = 10  # a writer's tries, 20 ms apart: a reader's probe (writer_of) holds a shared lock for a moment

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, one writer is the user's care
    fcntl = None


class RunLock:
    """Held while a process writes a run folder; `release()` (or the process's end) lets the next in."""

    def __init__(self, folder: Path, fd: int | None, name: str = LOCK):
        self.folder = folder
        self.path = Path(folder) / name
        self._fd = fd

    def in_place(self) -> bool:
        """Whether the lock file at `path` is still the one held: not when the folder was moved, renamed or
        deleted meanwhile (another folder of that name holds another file, or none)."""
        if self._fd is None:
            return True
        try:
            here, held = os.stat(self.path, follow_symlinks=False), os.fstat(self._fd)
        except OSError:
            return False
        return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)

    def release(self) -> None:
        """Remove the lock file, then drop the lock: a process that opened the file meanwhile finds it
        removed (_take compares inodes) and takes a fresh one, so no stale file stays behind."""
        if _WRITING.get(_key(self.folder)) is self:
            del _WRITING[_key(self.folder)]
        if self._fd is not None and not self.in_place():  # the folder moved: its lock file went with it
            os.close(self._fd)
            self._fd = None
        if self._fd is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _take(path: Path, wait: bool) -> int:
    """The descriptor of `path` (created) holding an exclusive flock on it; BlockingIOError (its `holder`: the
    pid written in the file) when another process holds it and not `wait`."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError as e:
            e.holder = _holder(fd)
            os.close(fd)
            raise
        except BaseException:
            os.close(fd)
            raise
        # A holder that gave up removes its lock file: a lock taken on that removed file guards nothing.
        try:
            same = os.fstat(fd).st_ino == os.stat(path, follow_symlinks=False).st_ino
        except FileNotFoundError:
            same = False
        if same:
            try:  # who holds it, for the message of a process refused (on a full disk: left unsaid)
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            except OSError:
                pass
            return fd
        os.close(fd)


def lock_run(folder: Path) -> RunLock:
    """Take `folder`'s writer lock, or raise a RunError naming the process that holds it."""
    folder = Path(folder)
    if fcntl is None:
        return RunLock(folder, None)
    for tries in range(PROBE_TRIES):
        try:
            lock = _WRITING[_key(folder)] = RunLock(folder, _take(folder / LOCK, wait=False))
            return lock
        except BlockingIOError as e:
            holder = getattr(e, "holder", "")
            if tries + 1 < PROBE_TRIES:  # perhaps only a reader's probe (writer_of): it lasts microseconds
                time.sleep(0.02)
    raise RunError(f"{folder} is being written by another zoo process{f' (pid {holder})' if holder else ''}",
                   "A run folder has one writer: wait for it to finish, or train into another --out.")


# The run folders this process holds the writer lock of, by path: a training checks, before it writes an
# epoch, that the folder is still the one it locked (still_writing).
_WRITING: dict[str, RunLock] = {}


def _key(folder: Path) -> str:
    return os.path.abspath(folder)


def still_writing(folder: Path) -> Path:
    """`folder`, once sure it is the run folder this process locked (nothing to check where it holds no lock):
    a folder moved or deleted while it trained was made again by the next write, and a run moved into its
    name had its weights overwritten. A RunError says what happened instead."""
    lock = _WRITING.get(_key(folder))
    if lock is not None and not lock.in_place():
        raise RunError(f"{folder} is no longer the run folder this training writes: it was moved, renamed or "
                       "deleted while it trained, so nothing more is written there",
                       "The epochs saved so far went with the folder: put it back where it was and continue "
                       f"with `zoo train --resume {folder}`.")
    return folder


def results_lock(folder: Path, output: Path | None = None) -> RunLock:
    """The lock of a folder's evaluation results (eval.json and what goes with it), waited for: two evaluations
    ending together each read, merge and write them in turn, and neither drops the other's figures. A training
    of the run does not hold it: an evaluation of its earlier weights may end while it trains. An OSError taking
    it (a read-only folder) names `output`, the file asked for (else `folder`), not zoo's lock file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)  # ./zoo-outputs/NAME, the first time
    if fcntl is None:
        return RunLock(folder, None, RESULTS_LOCK)
    try:
        return RunLock(folder, _take(folder / RESULTS_LOCK, wait=True), RESULTS_LOCK)
    except OSError as e:
        e.filename = str(output if output is not None else folder)
        raise


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
