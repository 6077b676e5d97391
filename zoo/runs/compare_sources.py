"""The runs `zoo compare` is given: folders, globs of folders (expanded here: `runs/vae-*`), catalogued
names and hub locations (resolved as every command resolves a run), each once."""

from __future__ import annotations

import glob
import re
from pathlib import Path

from zoo.console import to_stderr
from zoo.errors import ConfigError, RunError
from zoo.runs import checkpoint as ckpt
from zoo.runs.loading import resolve
from zoo.runs.run import Run
from zoo.training.engine import TrainResult

GLOB_CHARS = re.compile(r"[*?[]")


def expand(sources: list[str | Path | Run | TrainResult]) -> list[tuple[str, Path]]:
    """Each source's name and folder: a glob becomes its matching run folders (sorted), anything else is
    resolved as every command resolves a run. The same folder named twice (a link, a copy's
    name) counts once, with a note."""
    if not sources:
        raise ConfigError("no runs to compare",
                          "Give run folders, globs ('runs/vae-*'), catalogued names or hub locations "
                          "(hf://ORG/NAME, file:///PATH).")
    found: list[tuple[str, Path]] = []
    for source in sources:
        if isinstance(source, Run):  # zoo.load(...)'s: the run it was loaded from, by the name it was given
            found.append((source.source, source.folder))
            continue
        if isinstance(source, TrainResult):  # zoo.train(...)'s: by its run folder (its repr was taken as a name)
            found.append((str(source.run_dir), Path(source.run_dir)))
            continue
        text = str(source)
        if GLOB_CHARS.search(text) and not Path(text).exists() and "://" not in text:
            matches = sorted(glob.glob(text))
            if not matches:
                raise RunError(f"{text} matches nothing", "Check the pattern; quote it so that zoo, not the shell, "
                                                          "expands it, and `ls` what it should match.")
            runs = [m for m in matches if (Path(m) / ckpt.CONFIG).is_file()]
            if not runs:
                raise RunError(f"{text} matches {len(matches)} path{'s' * (len(matches) != 1)}, none a run folder",
                               "A run folder holds the config.json `zoo train` writes.")
            skipped = len(matches) - len(runs)
            if skipped:
                to_stderr(f"note: {text}: {skipped} match{'es' * (skipped != 1)} not a run folder, left out")
            found += [(m, Path(m)) for m in runs]
        else:
            found.append((text, resolve(source)))
    unique, seen = [], {}
    for name, folder in found:
        key = folder.resolve()
        if key in seen:
            again = "given twice" if name == seen[key] else f"the run {seen[key]} names"
            to_stderr(f"note: {name} is {again}: shown once")
            continue
        seen[key] = name
        unique.append((name, folder))
    return unique
