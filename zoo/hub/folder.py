"""Folder hubs (file:///PATH): fetched as a verified, content-addressed copy in zoo's cache; pushed by
swapping a complete new folder into place.

Fetching never brings a file from outside the hub: every file is opened relative to the hub folder with
O_NOFOLLOW and checked, on the open descriptor, to be a regular file with one name (a hard link may be
a file from anywhere on the disk), so a link swapped in between a check and the copy is refused too. A
model file that is a link refuses the pull; an optional one (the card, a picture) is skipped with a note.
Copies are never more permissive than the hub's file, and no more bytes are read than the file's cap
(zoo.hub.limits).
Where the hub holds a push's mark, the copy is checked against it (zoo.hub.marks).

A push only ever creates a folder hub or replaces one a push made: it leaves PUSHED_MANIFEST (the
files it wrote and their sha256s) in the folder, and replaces an existing non-empty folder only if
that mark is there and the folder holds nothing else, unchanged. It never writes into or over the
run it publishes, into zoo's or huggingface-hub's caches or zoo's bundled weights, inside another hub
entry or run folder (zoo.hub.destination), or through a link.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import glob
import hashlib
import json
import os
import stat
import uuid
from typing import Callable
from pathlib import Path

from zoo.caches import zoo_cache
from zoo.hub import limits, temps
from zoo.hub.cache import Fetched, cache_error, now, read_json, write_json
from zoo.hub.destination import RUN_MARKERS, refuse_location, write_error
from zoo.hub.files import (CONFIG, MODEL_FILES, PULLED_MANIFEST, PUSHED_MANIFEST, check_config, check_model_files,
                           select_files)
from zoo.hub.hf import zoo_version
from zoo.hub.locations import HubError, Location, Log
from zoo.hub.marks import check_against_mark, pushed_files, read_mark
from zoo.runs.files import file_sha256


def slug(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------ fetch

def fetch_folder(loc: Location, log: Log) -> Fetched:
    src = loc.path
    assert src is not None
    for _ in range(10):  # a push swaps a new version in at most once per try (tries: each a push meanwhile)
        temps.wait_for_swap(src)
        if not src.is_dir():
            if temps.swapping(src):  # moved aside by a push since the look above: wait for its new version
                continue
            raise HubError(f"no folder hub at {src}" if not src.exists() else f"{src} is not a folder",
                           "file:// locations name a folder written by `zoo push RUN file:///PATH`.")
        try:
            held = temps.share(src)  # a push removes the old version only once its readers are done
        except FileNotFoundError:  # moved aside between the look and the open: the next try waits for the swap
            continue
        except OSError as e:
            raise HubError(f"cannot read the folder hub {src}: {e.strerror or e}") from None
        with held:
            if held.is_at(src):  # not replaced while this waited for the lock
                return _fetch_from(held.fileno(), loc, log)
    raise HubError(f"the folder hub {src} was replaced by pushes again and again while it was read",
                   "Pull it again once the pushes to it have ended.")


def _fetch_from(dir_fd: int, loc: Location, log: Log) -> Fetched:
    where = str(loc)
    listing = _listing(dir_fd, loc)
    wanted = [n for n in select_files(list(listing), where) if _plain_file(n, listing[n], where, log)]
    marked = [PUSHED_MANIFEST] if PUSHED_MANIFEST in listing else []  # a new mark is a new version too
    fingerprint = {n: [listing[n].st_size, listing[n].st_mtime_ns] for n in wanted + marked}
    base = zoo_cache() / "file"
    temps.sweep(base, ".tmp-*")  # copies a killed pull left half-made
    prefix = slug(str(loc.path))
    cached = _cached_copy(base, prefix, fingerprint, where)
    if cached is not None:
        return cached
    try:
        base.mkdir(parents=True, exist_ok=True)
        files, final = _copy_into_cache(dir_fd, wanted, listing, fingerprint, base, prefix, where, log)
    except OSError as e:  # the cache's disk (full, a size limit, read-only); the hub's errors are HubErrors
        if e.filename is not None and Path(e.filename).is_relative_to(base):
            e.filename = None  # named as the cache folder (its disk, its permissions), not a temporary made in it
        raise cache_error(e, base) from None
    for name in MODEL_FILES:
        if file_sha256(final / name) != files[name]:
            raise HubError(f"the cached copy of {loc} at {final} is damaged", f"Delete {final} and try again.")
    return Fetched(final, where, files)


def _copy_into_cache(dir_fd: int, wanted: list[str], listing: dict, fingerprint: dict, base: Path, prefix: str,
                     where: str, log: Log) -> tuple[dict[str, str], Path]:
    """Copy the hub into a temporary folder in `base`, check it, and rename it into place as
    PREFIX-CONTENTS (content-addressed); the files' sha256s and that folder."""
    with temps.make_dir(base, ".tmp-") as tmp:
        try:
            files = _copy_files(dir_fd, wanted, listing, tmp.path, where, log)
            mark = read_mark(functools.partial(_open_plain, dir_fd, PUSHED_MANIFEST, where)
                             if PUSHED_MANIFEST in listing else None, where, log)
            verified, unverified = check_against_mark(files, mark, tmp.path, where, log)
            check_model_files(tmp.path, where)
            final = base / f"{prefix}-{slug(json.dumps(files, sort_keys=True))}"
            record = {"location": where, "files": files, "stat": fingerprint, "pulled": now(),
                      "verified": verified, "unverified": unverified}
            write_json(tmp.path / PULLED_MANIFEST, record)
            if final.exists() and _intact(final, files):
                write_json(final / PULLED_MANIFEST, record)
            else:
                if final.exists():  # damaged since it was copied: replaced by the copy just checked
                    os.rename(final, base / f".tmp-damaged-{uuid.uuid4().hex[:12]}")  # swept as a temporary
                try:
                    os.rename(tmp.path, final)
                except OSError:  # another process made the same copy first
                    pass
        finally:
            temps.remove(tmp.path)  # gone already when it was renamed into place
    return files, final


def _listing(dir_fd: int, loc: Location) -> dict[str, os.stat_result]:
    """The hub's entries (name -> lstat: links are not followed); one removed meanwhile is left out."""
    listing = {}
    try:
        for name in os.listdir(dir_fd):
            try:
                listing[name] = os.lstat(name, dir_fd=dir_fd)
            except FileNotFoundError:
                continue
    except OSError as e:
        raise HubError(f"cannot read the folder hub {loc.path}: {e.strerror or e}") from None
    return listing


def _plain_file(name: str, st: os.stat_result, where: str, log: Log) -> bool:
    """Whether `name` is a regular file of one name to fetch; a link or anything else refuses a model
    file and skips an optional one."""
    problem = _not_plain(name, where, st)
    if problem is not None:
        limits.skip(name, problem, log)
    return problem is None


def _not_plain(name: str, where: str, st: os.stat_result | None) -> HubError | None:
    """Why hub file `name` (its lstat or fstat; None: O_NOFOLLOW met a symbolic link) is not fetched, or
    None: a symbolic link, a hard link (a file that may lie outside the hub), or not a regular file."""
    hint = "A folder hub holds the files themselves; `zoo push` writes them so."
    if st is None or stat.S_ISLNK(st.st_mode):
        return HubError(f"{name} of {where} is a symbolic link: zoo never follows a link out of a hub", hint)
    if not stat.S_ISREG(st.st_mode):
        return HubError(f"{name} of {where} is not a regular file", "A folder hub holds plain files.")
    if st.st_nlink > 1:
        return HubError(f"{name} of {where} is a hard link ({st.st_nlink} names): it may be a file from outside "
                        "the hub, and zoo never brings one into its cache", hint)
    return None


def _cached_copy(base: Path, prefix: str, fingerprint: dict, where: str) -> Fetched | None:
    """A copy of this very version made before (same sizes and times), every file of it intact: one damaged
    since (an eval.json edited, a training log cut short) is not used, and not called verified."""
    for folder in sorted(base.glob(f"{glob.escape(prefix)}-*")):
        manifest = read_json(folder / PULLED_MANIFEST)
        files = manifest.get("files") if isinstance(manifest, dict) else None
        if isinstance(files, dict) and manifest.get("stat") == fingerprint and set(MODEL_FILES) <= set(files) \
                and _intact(folder, files):
            temps.sweep(folder, ".*.tmp")  # a record a killed pull was writing
            return Fetched(folder, where, dict(manifest["files"]), cached=True)
    return None


def _intact(folder: Path, files: dict[str, str]) -> bool:
    """Whether every file of `files` (name -> sha256) is in `folder` with those contents."""
    return all((folder / n).is_file() and file_sha256(folder / n) == digest for n, digest in files.items())


def _copy_files(dir_fd: int, wanted: list[str], listing: dict, tmp: Path, where: str, log: Log) -> dict[str, str]:
    """Copy config.json first, then, within the caps its model implies, the other files: name -> sha256."""
    files = {}
    run = None
    for name in [CONFIG, *(n for n in wanted if n != CONFIG)]:
        cap = limits.cap(name, run)
        if not limits.admit(name, listing[name].st_size, cap, where, log):
            continue
        try:
            files[name] = _copy_nofollow(dir_fd, name, tmp / name, cap, where)
        except HubError as e:
            limits.skip(name, e, log)
            continue
        if name == CONFIG:
            run = check_config(tmp / CONFIG, where)
    return files


def _open_plain(dir_fd: int, name: str, where: str):
    """Hub file `name`, opened for reading without following a link, and checked on the open descriptor
    to be a regular file of one name (`_not_plain`)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise _not_plain(name, where, None) from None
        raise HubError(f"cannot read {name} of {where}: {e.strerror or e}") from None
    src = os.fdopen(fd, "rb")
    problem = _not_plain(name, where, os.fstat(fd))
    if problem is not None:
        src.close()
        raise problem
    return src


def _copy_nofollow(dir_fd: int, name: str, dest: Path, cap: limits.Cap, where: str) -> str:
    """Copy hub file `name` to `dest` without following a link and reading at most `cap` bytes; its sha256.
    A read error is the hub's (a HubError); a write error's OSError goes on, for _fetch_from to say as the cache's."""
    h = hashlib.sha256()
    with _open_plain(dir_fd, name, where) as src:
        st = os.fstat(src.fileno())
        if st.st_size > cap.limit:
            raise limits.too_big(name, st.st_size, cap, where)
        try:
            with open(dest, "xb") as out:  # a new file: ordinary permissions, masked by the hub file's
                os.fchmod(out.fileno(), stat.S_IMODE(os.fstat(out.fileno()).st_mode) & stat.S_IMODE(st.st_mode))
                total = 0
                for chunk in iter(functools.partial(_read, src, name, where), b""):
                    total += len(chunk)
                    if total > cap.limit:
                        raise limits.too_big(name, None, cap, where)
                    h.update(chunk)
                    out.write(chunk)
        except BaseException:
            with contextlib.suppress(OSError):  # a read-only cache, where `dest` was never made: said by the raise
                dest.unlink(missing_ok=True)
            raise
    return h.hexdigest()


def _read(src, name: str, where: str) -> bytes:
    """The next chunk of hub file `name` (b"" at its end); an error reading it is the hub's."""
    try:
        return src.read(1 << 20)
    except OSError as e:
        raise HubError(f"cannot read {name} of {where}: {e.strerror or e}") from None


# ------------------------------------------------------------------------------------------ push

def check_destination(dest: Path, run_dir: Path) -> None:
    """Refuse a push destination that is not allowed (`refuse_location`) or not replaceable."""
    refuse_location(dest, run_dir)
    check_replaceable(dest)


def check_replaceable(dest: Path, shown: Path | None = None) -> None:
    """Refuse to replace `dest` unless it is missing, an empty folder, or a folder hub a push made and
    nobody changed since: every file it holds is one the push listed, with the sha256 it wrote. `shown`
    is the name to give in messages (`dest` itself unless it was moved aside)."""
    shown = shown or dest
    try:
        _check_replaceable(dest, shown)
    except OSError as e:
        raise HubError(f"cannot read {shown} to check that a push may replace it: {e.strerror or e}",
                       "A push only replaces a folder it can check; push to a new folder.") from None


def _check_replaceable(dest: Path, shown: Path) -> None:
    try:
        st = os.lstat(dest)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise HubError(f"{shown} is a symbolic link: zoo push does not write through links",
                       f"Push to the folder it points to, or to a new folder; {shown} was left as it is.")
    if not stat.S_ISDIR(st.st_mode):
        raise HubError(f"{shown} exists and is not a folder: refusing to replace it",
                       "Push to a new or empty folder.")
    names = sorted(os.listdir(dest))
    if not names:
        return
    pushed = pushed_files(dest)
    if pushed is None:
        raise HubError(f"{shown} is {_describe(names)}, not a folder hub that `zoo push` made: "
                       "refusing to replace it",
                       f"A push only creates a folder hub or replaces one a push made (it holds {PUSHED_MANIFEST}). "
                       f"Push to a new or empty folder, or move {shown} away first.")
    extra = [n for n in names if n not in pushed and n != PUSHED_MANIFEST]
    if extra:
        raise HubError(f"{shown} holds files no push wrote ({_names(extra)}): refusing to replace it",
                       "Move them elsewhere first: a push replaces only what a push wrote.")
    changed = [n for n in names if n in pushed and not _unchanged(dest / n, pushed[n])]
    if changed:
        raise HubError(f"{shown}: {_names(changed)} changed since zoo pushed it: refusing to replace it",
                       f"Keep a copy of the changed files elsewhere and delete {shown}, or push to a new folder.")


def _unchanged(path: Path, sha256: str) -> bool:
    return path.is_file() and not path.is_symlink() and file_sha256(path) == sha256


def _describe(names: list[str]) -> str:
    if CONFIG in names and any(m in names for m in RUN_MARKERS):
        return f"a zoo run folder ({_names(names)})"
    return f"a folder holding {_names(names)}"


def _names(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def push_folder(dest: Path, files: dict[str, Path | bytes], run_dir: Path,
                check: Callable[[dict[str, str]], None] | None = None) -> None:
    """Write the files (and the push's mark) into a new folder beside `dest`, then swap it in: readers
    see the old or the new version, never a mixture or a half-written file. One push at a time into a
    parent folder; `dest` is checked under that lock, and once more as it is moved aside. `check` (the
    sha256s written, by name) may refuse the swap by raising: nothing is then published."""
    refuse_location(dest, run_dir)
    parent = dest.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        lock = temps.hold(parent)
    except OSError as e:
        raise write_error(e, parent) from None
    with lock:
        check_replaceable(dest)
        _recover(dest)
        try:
            with temps.make_dir(parent, f".{dest.name}.tmp-") as tmp:
                try:
                    written = {name: _write(tmp.path / name, value) for name, value in files.items()}
                    _write(tmp.path / PUSHED_MANIFEST, _manifest(written))
                    if check is not None:
                        check(written)
                    os.chmod(tmp.path, 0o755)
                    _swap(tmp.path, dest)
                finally:
                    temps.remove(tmp.path)  # gone already when it was swapped in
        except OSError as e:
            raise write_error(e, dest) from None


def _recover(dest: Path) -> None:
    """Clean up after a push killed beside `dest`: its half-written folder goes, and a previous version
    it had moved aside is put back if nothing took its place (else it goes: it was replaced)."""
    pattern = glob.escape(f".{dest.name}")
    temps.sweep(dest.parent, f"{pattern}.tmp-*")
    for old in temps.stale(dest.parent, f"{pattern}.old-*"):
        if not os.path.lexists(dest):
            try:
                os.rename(old, dest)
                continue
            except OSError:
                pass
        temps.remove(old)


def _manifest(written: dict[str, str]) -> bytes:
    return (json.dumps({"written_by": "zoo push", "zoo_version": zoo_version(), "pushed": now(),
                        "files": written}, indent=2) + "\n").encode()


def _write(path: Path, value: Path | bytes) -> str:
    """Write one file (from a path or bytes), synced to disk, readable by all; its sha256."""
    h = hashlib.sha256()
    with open(path, "xb") as fh:
        if isinstance(value, Path):
            with open(value, "rb") as src:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    h.update(chunk)
                    fh.write(chunk)
        else:
            h.update(value)
            fh.write(value)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(path, 0o644)
    return h.hexdigest()


def _swap(new: Path, dest: Path) -> None:
    """Put folder `new` in the place of `dest`. An existing `dest` is moved aside under a lock (a later
    push puts it back if this process dies before the swap ends) and checked again there: what is
    deleted is exactly what was checked."""
    if not os.path.lexists(dest):
        os.rename(new, dest)  # fails if a non-empty folder appeared there meanwhile
        return
    old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:temps.TEMP_TAG]}"
    with temps.hold(dest):  # once the readers of the old version are done (they share-lock it: fetch_folder)
        os.rename(dest, old)
        try:
            check_replaceable(old, shown=dest)
            os.rename(new, dest)
        except BaseException:
            os.rename(old, dest)
            raise
        temps.remove(old)  # still locked: a reader that opened it meanwhile tries the new version
