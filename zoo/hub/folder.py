"""Folder hubs (file:///PATH): fetched as a verified, content-addressed copy in zoo's cache; pushed by
swapping a complete new folder into place."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

from zoo.hub.cache import Fetched, now, read_json, write_json, zoo_cache
from zoo.hub.files import CONFIG, MODEL_FILES, PULLED_MANIFEST, check_model_files, file_sha256, select_files
from zoo.hub.locations import HubError, Location, Log


def slug(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fetch_folder(loc: Location, log: Log) -> Fetched:
    src = loc.path
    assert src is not None
    if not src.is_dir():
        raise HubError(f"no folder hub at {src}" if not src.exists() else f"{src} is not a folder",
                       "file:// locations name a folder written by `zoo push RUN file:///PATH`.")
    names = sorted(p.name for p in src.iterdir() if p.is_file())
    wanted = select_files(names, str(loc))
    stat = {n: [(src / n).stat().st_size, (src / n).stat().st_mtime_ns] for n in wanted}
    base = zoo_cache() / "file"
    prefix = slug(str(src))
    for folder in sorted(base.glob(f"{prefix}-*")):  # a copy of this very version, made before
        manifest = read_json(folder / PULLED_MANIFEST)
        if isinstance(manifest, dict) and manifest.get("stat") == stat and all(
                (folder / n).is_file() and file_sha256(folder / n) == manifest["files"].get(n) for n in MODEL_FILES):
            return Fetched(folder, str(loc), dict(manifest["files"]), cached=True)
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        files = {}
        for name in wanted:
            try:
                shutil.copyfile(src / name, tmp / name)
            except OSError as e:
                raise HubError(f"cannot read {src / name}: {e.strerror or e}") from None
            files[name] = file_sha256(tmp / name)
        check_model_files(tmp, str(loc))
        key = slug(json.dumps(files, sort_keys=True))
        final = base / f"{prefix}-{key}"
        write_json(tmp / PULLED_MANIFEST, {"location": str(loc), "files": files, "stat": stat, "pulled": now()})
        if final.exists():
            write_json(final / PULLED_MANIFEST, {"location": str(loc), "files": files, "stat": stat,
                                                   "pulled": now()})
        else:
            try:
                os.rename(tmp, final)
            except OSError:  # another process made the same copy first
                pass
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    for name in MODEL_FILES:
        if file_sha256(final / name) != files[name]:
            raise HubError(f"the cached copy of {loc} at {final} is damaged", f"Delete {final} and try again.")
    return Fetched(final, str(loc), files)


def push_folder(dest: Path, files: dict[str, Path | bytes]) -> None:
    """Write the files into a new folder beside `dest`, then swap it in: readers see the old or the new
    version, never a mixture or a half-written file."""
    if dest.exists() and not dest.is_dir():
        raise HubError(f"{dest} exists and is not a folder")
    if dest.is_dir() and any(dest.iterdir()) and not (dest / CONFIG).is_file():
        raise HubError(f"{dest} is a folder that is not a zoo model: refusing to replace it",
                       "Push to a new or empty folder, or to one an earlier `zoo push` wrote.")
    parent = dest.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = parent / f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
    except OSError as e:
        raise HubError(f"cannot write to {parent}: {e.strerror or e}") from None
    try:
        for name, value in files.items():
            with open(tmp / name, "wb") as fh:
                if isinstance(value, Path):
                    with open(value, "rb") as src:
                        shutil.copyfileobj(src, fh, 1 << 20)
                else:
                    fh.write(value)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp / name, 0o644)
        os.chmod(tmp, 0o755)
        if dest.is_dir():
            old = parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(dest, old)
            try:
                os.rename(tmp, dest)
            except OSError:
                os.rename(old, dest)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, dest)
    except OSError as e:
        raise HubError(f"cannot write to {dest}: {e.strerror or e}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
