"""The --out folders of `zoo search` and `zoo cv`, which are no runs: the files by which zoo knows them, named
once here, below zoo.search (which writes them) and zoo.runs (which neither trains nor loads a run in them)."""

from __future__ import annotations

import shlex
from pathlib import Path

STUDY_SPACE = "space.toml"          # the space a study was started with (zoo.search.run copies it in)
STUDY_JOURNAL = "journal.log"       # its trials (zoo.search.study)
STUDY_BEST = "best.toml"            # its best trial's config (zoo.search.outputs)
CV_RESULTS = ("cv.json", "cv.png")  # a finished cross-validation's (zoo.search.cv_files)
CV_FOLDS = "folds.json"             # the folds a cross-validation finished so far; removed once cv.json is written

# Any of these in a folder: a new run is not trained into it (zoo.runs.folder), nor a search into a cv's.
OTHER_COMMANDS = {STUDY_SPACE: "a search's study folder", STUDY_JOURNAL: "a search's study folder",
                  **dict.fromkeys((*CV_RESULTS, CV_FOLDS), "a cross-validation's folder")}


def results_folder(folder: Path) -> str | None:
    """What `folder` is by the files zoo leaves there together (a search's space.toml beside its journal.log or
    summary.json; a cross-validation's cv.json or folds.json), for --out, which replaces none of its files; None for
    any other folder: one file of a common name (a best.toml copied out, a journal.log) makes none of it one."""
    if (folder / STUDY_SPACE).is_file() and any((folder / n).is_file() for n in (STUDY_JOURNAL, "summary.json")):
        return OTHER_COMMANDS[STUDY_SPACE]
    if (folder / CV_RESULTS[0]).is_file() or (folder / CV_FOLDS).is_file():
        return OTHER_COMMANDS[CV_FOLDS]
    return None


def what_it_is(folder: Path) -> str:
    """What a folder that is no run holds, where zoo wrote it ("" for any other): said after "is not a zoo run"."""
    if (folder / STUDY_BEST).is_file() or (folder / STUDY_JOURNAL).is_file():
        return (": it is a zoo search study folder (trials are scored, not kept as runs; "
                f"`zoo train --config {shlex.quote(str(folder / STUDY_BEST))}` trains the best one)")
    if (folder / CV_RESULTS[0]).is_file():
        return (": it is a zoo cv folder (folds are scored, not kept as runs; "
                f"`zoo info {shlex.quote(str(folder))}` shows its results)")
    if (folder / CV_FOLDS).is_file():
        return (f": it is the folder of a stopped zoo cv ({CV_FOLDS} holds the folds it finished; the same zoo cv "
                "command goes on from them)")
    return ""
