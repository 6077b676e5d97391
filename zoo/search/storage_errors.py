"""A study's storage failing (a SQLite file locked past its wait, read-only or damaged; a database server
gone) said in one message, read through whatever error Optuna raised in handling it."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from zoo.errors import OutOfMemory, RunError, StorageError, ZooError, storage_error

if TYPE_CHECKING:
    from zoo.search.settings import Settings


def hint(storage: str | None) -> str:
    """What to check when a study's storage fails: a SQLite file is not a server."""
    if (storage or "").lower().startswith("sqlite"):
        return ("Check that no other program holds the SQLite file locked, that its disk is writable and that the "
                "file is not damaged.")
    return "Check the URL, that the database server is running and that the user may connect."


def journal_failed(e: OSError, path) -> StorageError | OutOfMemory:
    """A write to the study's journal file that the system refused (a full disk, a file-size limit, a read-only
    folder), named after the journal. Its append was cut back (zoo.search.journal): the study can be resumed."""
    e.filename, e.filename2 = str(path), None  # not the lock's link, nor no name at all (a write's ENOSPC)
    return storage_error(e, "cannot write", option="--out",
                         kept="The study's trials stored so far are kept (a trial it could not store runs again); "
                              "once that is fixed, resume with the same command")


def _stored(e: BaseException | None) -> StorageError | OutOfMemory | None:
    """The StorageError (or OutOfMemory: ENOMEM) `e` is, or arose from: Optuna raises its own (AssertionError:
    Should not reach) from tidying up a trial whose result the journal refused."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, (StorageError, OutOfMemory)):
            return e
        e = e.__cause__ or e.__context__
    return None


def failure(e: BaseException) -> str | None:
    """What failed in a study's storage, where `e` or an error it arose from is a storage error (Optuna's
    StorageInternalError, the database driver's: "database is locked"); None for any other error. Optuna can
    raise an unrelated one (AssertionError: Should not reach) from tidying up a trial whose result a locked
    database refused, so the whole chain is read."""
    from optuna.exceptions import StorageInternalError  # only a search, which has Optuna, fails this way
    from sqlalchemy.exc import SQLAlchemyError

    said, seen = None, set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, SQLAlchemyError) and getattr(e, "orig", None) is not None:
            return str(e.orig).strip().splitlines()[0] if str(e.orig).strip() else type(e.orig).__name__
        if isinstance(e, StorageInternalError):
            said = said or str(e).strip().splitlines()[0]
        e = e.__cause__ or e.__context__
    return said


@contextlib.contextmanager
def said(settings: Settings, what: str = "the study's storage failed"):
    """A storage failure inside (see `failure`) ends in one message, not Optuna's traceback: the
    trials the storage holds are kept, and the same command goes on from them."""
    try:
        yield
    except ZooError:
        raise
    except Exception as e:
        stored = _stored(e)
        if stored is not None:  # the journal's own message (journal_failed), not Optuna's error
            raise stored from None
        found = failure(e)
        if found is None:
            raise
        full = disk_full(f"{what}: {found}", "resume with the same command (the trials it stored are kept)")
        raise full or RunError(f"{what}: {found}", "The trials it stored are kept (one it could not store runs "
                                                   f"again): resume with the same command once it works. "
                                                   f"{hint(settings.storage)}") from None


# What database drivers say of a disk that refuses a write: full, read-only, past `ulimit -f` (SQLite's "disk I/O
# error"), failing (SQLite, PostgreSQL, MySQL)
DISK_WORDS = ("disk is full", "no space left", "readonly database", "read-only file system", "the table is full",
              "disk i/o error")


def disk_full(message: str, then: str) -> StorageError | None:
    """A storage error whose database says its disk refused a write, as every full disk is said (exit 74): not
    the URL, the server or the command line is wrong, and the disk is what to fix; None for others."""
    if not any(words in message.lower() for words in DISK_WORDS):
        return None
    return StorageError(message, "The disk that holds the study's database refused a write (full, read-only, a "
                                 f"file-size limit, or failing): free some space there or make it writable, then "
                                 f"{then}.")
