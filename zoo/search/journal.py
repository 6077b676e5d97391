"""A study's journal file (Optuna's journal storage, zoo's default): where it lies, opening it, and keeping it
whole. Each append is made under the journal's lock and, where the system refuses it (a full disk, a file-size
limit, a read-only folder), cut back to the size it had before and said as a StorageError; a last line cut short
all the same (a kill mid-write) is dropped on the next search's check of the file (`check_journal`)."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.console import to_stderr
from zoo.errors import ConfigError, RunError, storage_error
from zoo.interrupts import held_interrupts
from zoo.runs.command_folders import STUDY_JOURNAL
from zoo.search import storage_errors

if TYPE_CHECKING:  # (settings imports study, which imports this module)
    from zoo.search.settings import Settings

STALE_LOCK = 30  # seconds after which a journal lock that points elsewhere is a dead writer's (Optuna's grace)
OLD_LOCK = 3600  # a lock whose own time says it is older than this is a dead writer's at once


def journal_path(settings: Settings) -> Path | None:
    url = settings.storage
    if url is None:
        return Path(settings.study_dir) / STUDY_JOURNAL
    if url.startswith("journal:"):
        rest = url[len("journal:"):]
        return Path(rest[2:] if rest.startswith("//") else rest)
    if "://" not in url:
        return Path(url)
    return None


class _Unlocked:
    """The lock Optuna's backend is given: none, as zoo takes the journal's real lock around each append."""

    def acquire(self) -> bool:
        return True

    def release(self) -> None:
        return None


def _symlink_lock(path: Path):
    """Optuna's lock of the journal at `path` (absolute: the lock is a link to the path as given)."""
    try:
        from optuna.storages.journal import JournalFileSymlinkLock
    except ImportError:  # Optuna < 4
        from optuna.storages import JournalFileSymlinkLock
    return JournalFileSymlinkLock(str(path))


def journal_backend(path: Path):
    """Optuna's journal file backend of `path`, its appends made by `_appending` (the lock, the roll-back)."""
    shown, path = path, path.absolute()  # Optuna's lock is a link to the path as given: a relative one points elsewhere
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _clear_stale_lock(path)
        try:
            from optuna.storages.journal import JournalFileBackend
        except ImportError:  # Optuna < 4
            from optuna.storages import JournalFileStorage as JournalFileBackend
        backend = JournalFileBackend(str(path), lock_obj=_Unlocked())
    except OSError as e:  # a folder it cannot make or write: a full disk, a read-only one
        raise storage_error(e, "cannot write", path=shown, option="--out") from None
    except ValueError as e:
        raise ConfigError(f"cannot open the journal file {shown}: {e}") from None
    # Each write takes the journal's lock, appends and renames the lock away: a Ctrl-C in between
    # would end the search in a storage error (or take another writer's lock), so it waits for the end.
    backend.append_logs = held_interrupts(_appending(backend.append_logs, path, shown))
    return backend


def _appending(append, path: Path, shown: Path):
    """Optuna's `append` under the journal's lock; where the system refuses it, the file is cut back to the size
    it had before (else Optuna's next record would follow half of this one, and the file could not be read), and
    the refusal is one StorageError naming the journal."""
    lock = _symlink_lock(path)

    def append_logs(logs) -> None:
        with _locked(lock, shown):
            size = os.path.getsize(path)
            try:
                append(logs)
            except OSError as e:
                with contextlib.suppress(OSError):  # (cutting a file back needs no space)
                    os.truncate(path, size)
                raise storage_errors.journal_failed(e, shown) from None
    return append_logs


@contextlib.contextmanager
def _locked(lock, shown: Path):
    """`lock` held; a lock that cannot be made (its link refused: a read-only or full folder) is a StorageError."""
    try:
        lock.acquire()
    except RuntimeError as e:  # Optuna's lock tidying up after a link the system refused
        if not isinstance(e.__context__, OSError):
            raise
        raise storage_errors.journal_failed(e.__context__, shown) from None
    except OSError as e:
        raise storage_errors.journal_failed(e, shown) from None
    try:
        yield
    finally:
        lock.release()


def _clear_stale_lock(journal: Path) -> None:
    """Remove a journal lock that does not point at this journal: a writer killed mid-write left it before
    the study folder moved (or was copied), and Optuna waits on such a link forever, silently, at full CPU. A
    live writer holds its lock for milliseconds (another machine's path to a shared disk may differ from this
    one's), so the link goes once it has stood unchanged for Optuna's grace (30 s) of this process's own clock,
    or at once where its own time says it is over an hour old (no clock of a shared disk is that far off)."""
    lock = journal.with_name(journal.name + ".lock")
    seen, since = None, time.monotonic()
    while lock.is_symlink() and os.path.realpath(lock) != os.path.realpath(journal):
        try:
            stat = lock.lstat()
        except FileNotFoundError:  # released meanwhile
            return
        if (stat.st_ino, stat.st_mtime_ns) != seen:  # a new lock: its own wait
            if seen is None:
                to_stderr(f"note: waiting on {lock}, a lock that points elsewhere, for up to {STALE_LOCK} s")
            seen, since = (stat.st_ino, stat.st_mtime_ns), time.monotonic()
        if time.monotonic() - since > STALE_LOCK or time.time() - stat.st_mtime > OLD_LOCK:
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()
            to_stderr(f"note: removed {lock}, a lock left by a search killed while the study was elsewhere")
            return
        time.sleep(0.5)


def check_journal(path: Path) -> None:
    """Every line of an Optuna journal file is a JSON record; a damaged or edited one would make Optuna fail
    half-way (after writing to it), so it is refused first, naming the line. A last line without its newline
    after whole records is a write cut short (a full disk, a kill): Optuna skips it, but its next record would
    follow it on the same line, so it is dropped, with a note. A file without one whole record holds no study
    to go on with (a copy cut short): refused, and kept as it is."""
    data = _read(path)
    end = data.rfind(b"\n") + 1  # the whole lines end there
    if not end and data.strip():
        raise _damaged(path, 1)
    for number, line in enumerate(data[:end].split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            ok = isinstance(json.loads(line), dict)
        except ValueError:
            ok = False
        if not ok:
            raise _damaged(path, number)
    if 0 < end < len(data):
        _drop_cut_line(path)


def _damaged(path: Path, number: int) -> RunError:
    return RunError(f"the study's journal {path} is damaged at line {number} (not a record Optuna wrote)",
                    "Restore it from a copy, or start the new study in another --out.")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read the study's journal {path}: {e.strerror or e}") from None


def _drop_cut_line(path: Path) -> None:
    """Cut the journal back to its last complete line, under its lock: a writer of another process may be
    half-way through that line now (it appends under the lock), and is let finish it."""
    _clear_stale_lock(path.absolute())  # (Optuna's lock would wait forever on one that points elsewhere)
    with _locked(_symlink_lock(path.absolute()), path):
        data = _read(path)
        end = data.rfind(b"\n") + 1
        if end == len(data):  # it was another writer's record, finished meanwhile
            return
        try:
            os.truncate(path, end)
        except OSError as e:
            raise storage_errors.journal_failed(e, path) from None
    to_stderr(f"note: 1 damaged line of {path} dropped (its last, cut short by a full disk or a kill)")
