"""What `zoo train --resume` refuses to resume before reading a run: published weights (a hub location, a
catalogued name, zoo's copy of either, a plugin's or a folder hub's entry), which carry no checkpoint."""

from __future__ import annotations

import shlex
from pathlib import Path

from zoo import registry
from zoo.errors import RunError
from zoo.hub import is_hub_source, is_managed
from zoo.hub.files import PUSHED_MANIFEST
from zoo.runs import checkpoint as ckpt


def refuse_published(text: str) -> None:
    """Published weights (a hub location, a catalogued name, zoo's copy of either) are no run to resume:
    they carry no checkpoint (optimizer state, random state) to go on from."""
    run_dir = Path(text)
    if is_hub_source(text):
        what = "a hub location"
    elif not run_dir.exists() and text in registry.weights():
        what = "a catalogued name"
    elif run_dir.exists() and is_managed(run_dir):
        what = "zoo's copy of published weights"
    elif run_dir.exists() and registry.shipped_by_plugin(run_dir):
        what = "weights a plugin ships"
    elif (run_dir / PUSHED_MANIFEST).is_file():  # named by its path
        what = f"a folder hub's entry (a push made it: {PUSHED_MANIFEST})"
    else:
        return
    folder = registry.weights_folder(text) if what == "a catalogued name" else None
    if folder is not None and (folder / ckpt.CHECKPOINT).is_file():  # the user's catalogue names a run of theirs
        raise RunError(f"--resume {text}: a catalogued name, and --resume takes a run folder: its entry names the "
                       f"run folder {folder.resolve()}", f"Resume it by its path: zoo train --resume "
                       f"{shlex.quote(str(folder.resolve()))}")
    raise RunError(f"--resume {text}: {what}, not a run of yours: published weights carry no checkpoint to "
                   "train on", "Train a run of your own (zoo train MODEL ...); --resume continues a folder that "
                   "zoo train wrote.")
