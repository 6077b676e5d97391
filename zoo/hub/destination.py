"""Where a folder-hub push may write: never into or over the run it publishes, into zoo's or
huggingface-hub's caches or zoo's bundled weights, inside another hub entry (a folder a push made) or
inside another run folder; and what to say when the operating system refuses the write itself."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from zoo.caches import is_managed
from zoo.errors import StorageError, storage_error
from zoo.hub.files import CONFIG, PUSHED_MANIFEST, WEIGHTS
from zoo.hub.locations import HubError
from zoo.hub.temps import TEMP_TAG

RUN_MARKERS = ("checkpoint.safetensors", "metrics.jsonl", ".zoo.lock")  # files only a run folder holds


NAME_MAX = 255  # bytes in one name of a path, on the usual file systems


def refuse_location(dest: Path, run_dir: Path) -> None:
    """Refuse a push destination that is, holds or lies inside the run, lies in a folder zoo or
    huggingface-hub manage, or lies inside another hub entry or another run folder (links resolved: a link
    cannot disguise one)."""
    real, run = Path(os.path.realpath(dest)), Path(os.path.realpath(run_dir))
    longest = NAME_MAX - len(".") - len(".tmp-") - TEMP_TAG  # the new version is built beside it: .NAME.tmp-TAG
    if len(os.fsencode(dest.name)) > longest:
        raise HubError(f"the entry's name is {len(os.fsencode(dest.name))} bytes long: a push builds the entry "
                       f"beside it under a longer name, and a file system's names hold at most {NAME_MAX} bytes",
                       f"Push to a name of at most {longest} bytes.")
    if real == run or run in real.parents:
        raise HubError(f"{dest} is {'the run' if real == run else 'inside the run'} {run_dir} that is being "
                       "pushed: refusing to write there",
                       "A folder hub is a separate folder: push to file:///SOME/OTHER/PATH.")
    if real in run.parents:
        raise HubError(f"{dest} holds the run {run_dir} that is being pushed: refusing to replace it",
                       "A folder hub is a separate folder: push to file:///SOME/OTHER/PATH.")
    if is_managed(dest) or is_managed(real):
        raise HubError(f"{dest} is inside zoo's cache, the Hugging Face Hub cache or zoo's bundled weights: "
                       "refusing to write there",
                       "Those folders belong to zoo and huggingface-hub; push to a folder of your own.")
    _refuse_inside(dest, real)


def _refuse_inside(dest: Path, real: Path) -> None:
    """An entry inside another hub entry would be a file no push wrote there, and the outer entry could never
    be pushed again; one inside a run folder would be a stranger among its files."""
    for folder in real.parents:
        if (folder / PUSHED_MANIFEST).is_file():
            raise HubError(f"{dest} is inside the hub entry {folder} (a push made it: {PUSHED_MANIFEST}): refusing "
                           "to push there, where the next push to that entry would find files no push wrote",
                           f"Push beside it, e.g. {(folder.parent / real.name).as_uri()}.")
        if (folder / CONFIG).is_file() and ((folder / WEIGHTS).is_file() or
                                           any((folder / m).exists() for m in RUN_MARKERS)):
            raise HubError(f"{dest} is inside the run folder {folder}: refusing to push there",
                           "A folder hub is a folder of its own, outside any run: push to file:///SOME/OTHER/PATH.")


def write_error(e: OSError, dest: Path) -> HubError | StorageError:
    """A push's failed write, said. A mount point (or a folder on another file system than its parent) cannot be
    replaced by the new version, which is built beside it in its parent folder: EBUSY, EXDEV. Anything else (a full
    disk, a file-size limit, a read-only hub) as every command's storage error: the entry's path, why, what to do."""
    if e.errno in (errno.EBUSY, errno.EXDEV):
        return HubError(f"cannot write to {dest}: it is a mount point, or on another file system than its parent "
                        f"folder ({e.strerror or e}), and a push replaces the entry by a folder it builds beside it",
                        f"Push to a folder inside it, e.g. {Path(os.path.abspath(dest), 'NAME').as_uri()}.")
    if e.errno is None:
        return HubError(f"cannot write to {dest}: {e}")
    return storage_error(OSError(e.errno, e.strerror, str(dest)), "cannot write to", option="another file:///PATH")
