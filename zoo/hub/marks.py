"""A folder hub's push mark (PUSHED_MANIFEST: the files a push wrote and their sha256s), and a pulled copy
checked against it; the entries of a folder hub, found by their marks.

A pull says "verified" only of what it checked: a copied file whose sha256 is the one the mark records.
One whose sha256 differs was changed after the push: a model file (config.json, model.safetensors)
refuses the pull; a card or picture is left out of the copy, with a note (the model loads without it,
and a changed picture would misdescribe it). A file the mark does not list is fetched and said to be
unverified, as every file is of a hub without a usable mark. The copy's PULLED_MANIFEST records both lists.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, BinaryIO, Callable

from zoo.hub import limits
from zoo.hub.cache import read_json
from zoo.hub.files import CONFIG, PUSHED_MANIFEST
from zoo.hub.locations import HubError, Log
from zoo.runs.checkpoint import run_identity


SHA256 = re.compile(r"[0-9a-f]{64}")


def mark_files(manifest: Any) -> dict[str, str] | None:
    """The files a parsed push mark lists (name -> sha256); None if it is not a valid mark."""
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) and SHA256.fullmatch(v)
                                              for k, v in files.items()):
        return None
    return files


def another_run(old: Any, new: Any) -> str | None:
    """What an earlier push published (its config.json, parsed: `old`), where it was another run than the one
    whose config.json is `new`: its model and when it was trained; None for the same run pushed again, or none."""
    if not isinstance(old, dict) or not isinstance(new, dict) or run_identity(old) == run_identity(new):
        return None
    return f"a {old.get('model', '?')} run trained {old.get('created', 'at a time it does not record')}"


def pushed_files(folder: Path) -> dict[str, str] | None:
    """The files a push recorded in `folder` (name -> sha256), or None if it holds no valid mark."""
    path = Path(folder) / PUSHED_MANIFEST
    if not path.is_file() or path.is_symlink():
        return None
    try:
        return mark_files(json.loads(path.read_bytes()))
    except (OSError, ValueError, RecursionError):
        return None


def _read_at_most(src: BinaryIO, limit: int) -> bytes:
    """Up to `limit` + 1 bytes of `src`, in blocks: read(n) allocates n bytes at once, and a cap raised to 64 GiB
    (ZOO_HUB_MAX_BYTES) failed every pull of a mark of 300 bytes for want of memory."""
    blocks, size = [], 0
    while size <= limit:
        block = src.read(min(1 << 20, limit + 1 - size))
        if not block:
            break
        blocks.append(block)
        size += len(block)
    return b"".join(blocks)


def read_mark(open_mark: Callable[[], BinaryIO] | None, where: str, log: Log) -> dict[str, str] | None:
    """The files the hub's push mark lists, read through `open_mark` (which opens it as the hub's other
    files are opened: no link; None where the hub has no mark) and no further than its cap; None, with a
    note, where there is none (a hub pushed by an older zoo). A mark that is there but not one a push
    writes refuses the pull: damaging the mark must not switch the checks off."""
    if open_mark is None:
        log(f"note: {where} holds no push mark ({PUSHED_MANIFEST}): its files are not verified against what "
            "a push wrote")
        return None
    cap = limits.cap(PUSHED_MANIFEST)
    files = None
    try:
        with open_mark() as src:
            data = _read_at_most(src, cap.limit)
        files = mark_files(json.loads(data)) if len(data) <= cap.limit else None
    except HubError as e:
        log(f"note: {e.message}")
    except (OSError, ValueError, RecursionError):
        pass
    if files is None:
        raise HubError(f"the push mark {PUSHED_MANIFEST} of {where} is not one a push writes (a table of file "
                       "names and their sha256s)", "It was damaged or edited after the push; push the run again.")
    return files


def check_against_mark(files: dict[str, str], mark: dict[str, str] | None, copy: Path, where: str,
                       log: Log) -> tuple[list[str], list[str]]:
    """The copied files (name -> sha256, in folder `copy`) checked against the push mark: (verified,
    unverified). A changed model file refuses the pull; a changed card or picture is removed from the
    copy and from `files`, with a note."""
    if mark is None:
        return [], sorted(files)
    changed = [n for n in files if n in mark and files[n] != mark[n]]
    for name in changed:
        limits.skip(name, HubError(f"{name} of {where} is not the file the push wrote (its sha256 differs from "
                                   f"the one in {PUSHED_MANIFEST})",
                                   "It was changed after the push; push the run again."), log)
        (copy / name).unlink()
        del files[name]
    missing = sorted(n for n in mark if n not in files and n not in changed)  # (the changed ones are said above)
    if missing:
        log(f"note: {', '.join(missing)} of {where} {'is' if len(missing) == 1 else 'are'} in its push mark but "
            "not in the hub (removed after the push, or not fetched): the copy lacks them")
    unverified = sorted(n for n in files if n not in mark)
    if unverified:
        log(f"note: {', '.join(unverified)} of {where} {'is' if len(unverified) == 1 else 'are'} not in its push "
            f"mark ({PUSHED_MANIFEST}): fetched unverified")
    return sorted(n for n in files if n in mark), unverified


def list_folder_hub(root: Path) -> list[dict]:
    """The entries of a folder hub: every folder below `root` (at any depth, links not followed) that a
    push wrote, with its location, model, data set and when it was pushed. Read from the entries'
    config.json and push mark only: nothing is fetched or hashed."""
    root = Path(root)
    if not root.is_dir():
        raise HubError(f"no folder hub at {root}" if not root.exists() else f"{root} is not a folder",
                       "Give the folder that `zoo push RUN file:///PATH/NAME` pushed into (PATH).")
    entries = []
    for mark in sorted(root.rglob(PUSHED_MANIFEST)):
        folder = mark.parent
        if mark.is_symlink() or any(p.is_symlink() for p in folder.relative_to(root).parents if p != Path(".")):
            continue
        config = read_json(folder / CONFIG) if (folder / CONFIG).is_file() else None
        config = config if isinstance(config, dict) else {}
        data = config.get("data") if isinstance(config.get("data"), dict) else {}
        entries.append({"location": folder.absolute().as_uri(), "name": str(folder.relative_to(root)),
                        "model": config.get("model") if isinstance(config.get("model"), str) else "?",
                        "dataset": data.get("name") if isinstance(data.get("name"), str) else "?",
                        "pushed": mark.stat().st_mtime})
    return entries
