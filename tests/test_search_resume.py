"""Resuming a study: a resume that would mix trials measured differently (another data set, epochs,
objective, fixed keys, space, folds or model) is refused naming each difference and leaves the study
folder byte-identical; a matching resume adds trials, reusing the study's --dataset/--epochs when left
out. The end-of-search outputs come from one set of trials on every ending (Ctrl-C included). And the
README's example space does not prune a small search from its first trial or epoch."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import re
import shutil
import time
from pathlib import Path

import pytest
from conftest import SEARCH_FIXED, assert_clean_error, assert_ok, interrupt_zoo, invoke, trial_rows

from zoo.search import outputs as outputs_module

optuna = pytest.importorskip("optuna")

SPACE = "[search]\nstrategy = \"random\"\npruner = \"none\"\nseed = 0\n" + SEARCH_FIXED + \
    "epochs = 1\nbatch_size = 128\n\n[params]\nlatent_dim = { low = 2, high = 4 }\n"


def hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def black_folder(root: Path) -> Path:
    from PIL import Image

    for c in "ab":
        (root / "black" / c).mkdir(parents=True, exist_ok=True)
        for i in range(10):
            Image.new("L", (28, 28), 0).save(root / "black" / c / f"{i}.png")
    return root / "black"


@pytest.fixture(scope="module")
def begun(tmp_path_factory) -> Path:
    """A study of 2 trials (digits, 1 epoch, batch 128), to copy and resume."""
    root = tmp_path_factory.mktemp("begun")
    (root / "s.toml").write_text(SPACE)
    assert_ok(invoke("search", "convae", "--space", root / "s.toml", "--study", "s", "--out", root / "st",
                     "--trials", "2"))
    return root


@pytest.fixture
def study(begun, tmp_path) -> Path:
    shutil.copytree(begun / "st", tmp_path / "st")
    (tmp_path / "s.toml").write_text(SPACE)
    return tmp_path


def _space(tmp_path: Path, old: str, new: str) -> list[str]:
    assert old in SPACE
    (tmp_path / "other.toml").write_text(SPACE.replace(old, new))
    return ["--space", tmp_path / "other.toml"]


MISMATCHES = {
    "dataset": lambda d: ["--space", d / "s.toml", "--dataset", f"folder:{black_folder(d)}"],
    "epochs": lambda d: ["--space", d / "s.toml", "--epochs", "2"],
    "objective": lambda d: _space(d, "[params]", "[objective]\nmetric = \"train_loss\"\n\n[params]"),
    "fixed": lambda d: _space(d, "batch_size = 128", "batch_size = 64"),
    "params": lambda d: _space(d, "high = 4", "high = 16"),
    "cv": lambda d: ["--space", d / "s.toml", "--cv", "2"],
}


@pytest.mark.parametrize("what", sorted(MISMATCHES))
def test_a_resume_that_differs_is_refused_naming_it_and_touches_nothing(study, what):
    before = hashes(study / "st")
    r = invoke("search", "convae", *MISMATCHES[what](study), "--study", "s", "--out", study / "st", "--trials", "4")
    # --out names the folder, which holds this study's results: only another folder starts a new one
    out = assert_clean_error(r, f"{what} (", "was begun with other settings", "start a new study in another --out")
    assert hashes(study / "st") == before, out
    assert "note: resuming" not in out


def test_a_resume_that_differs_in_two_settings_names_both(study):
    r = invoke("search", "convae", "--space", study / "s.toml", "--dataset", f"folder:{black_folder(study)}",
               "--epochs", "4", "--study", "s", "--out", study / "st", "--trials", "4")
    assert_clean_error(r, "dataset (", "epochs (1 in the study, 4 now)")


def test_a_resume_over_another_model_is_refused_and_touches_nothing(study):
    before = hashes(study / "st")
    r = invoke("search", "dae", "--space", study / "s.toml", "--study", "s", "--out", study / "st", "--trials", "4")
    assert_clean_error(r, "holds a search over 'convae', not 'dae'", "Resume it with zoo search convae --out")
    assert hashes(study / "st") == before


def test_a_study_folder_resumed_as_another_model_without_space_names_the_model_it_searched(study):
    before = hashes(study / "st")
    assert_clean_error(invoke("search", "vae", "--out", study / "st", "--trials", "4"),
                       f"{study / 'st'} holds a search over 'convae', not 'vae'",
                       f"Resume it with zoo search convae --out {study / 'st'}")
    assert_clean_error(invoke("search", "vae", "--space", study / "s.toml", "--study", "other", "--out", study / "st"),
                       f"{study / 'st'} holds a search over 'convae', not 'vae'")  # with a space and a name too
    assert hashes(study / "st") == before


def test_another_study_name_in_a_folder_of_results_names_the_study_it_holds(study):
    before = hashes(study / "st")
    r = invoke("search", "convae", "--space", study / "s.toml", "--study", "other", "--out", study / "st")
    assert_clean_error(r, "holds no study 'other' (it holds 's')", "Resume it with --study s",
                       "start the new study in another --out")
    assert hashes(study / "st") == before


def test_a_matching_resume_adds_trials(study):
    # the same settings, and what does not change a score differs: the budget, the strategy, the seed
    out = assert_ok(invoke("search", "convae", "--space", study / "s.toml", "--study", "s", "--out", study / "st",
                           "--trials", "3", "--strategy", "tpe", "--seed", "5", "--device", "cpu"))
    assert "resuming with 2 trials stored" in out
    assert [r["number"] for r in trial_rows(study / "st")] == ["0", "1", "2"]


def test_a_resume_that_sets_a_key_to_its_default_is_the_same_search(study):
    import zoo

    default = next(p["default"] for p in zoo.model_info("convae")["train_params"] if p["name"] == "weight_decay")
    out = assert_ok(invoke("search", "convae", "--space", study / "s.toml", "--study", "s", "--out", study / "st",
                           "--trials", "3", "--set", f"weight_decay={default}"))
    assert "resuming with 2 trials stored" in out
    assert [r["number"] for r in trial_rows(study / "st")] == ["0", "1", "2"]


def journal(study_dir: Path):
    """The study's journal, opened with optuna itself: (storage, id of study "s")."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from zoo.search.study import JOURNAL

    storage = JournalStorage(JournalFileBackend(str(study_dir / JOURNAL)))
    return storage, storage.get_study_id_from_name("s")


def test_a_default_changed_since_the_study_began_is_refused_naming_it_and_pinning_it_resumes(study):
    # The study as an older zoo would have begun it: one whose weight_decay default was 0.5 (recorded as
    # such in the journal by optuna itself); today's default is 0.0.
    storage, study_id = journal(study / "st")
    defaults = storage.get_study_user_attrs(study_id)["zoo_defaults"]
    assert defaults["weight_decay"] == 0.0 and "latent_dim" not in defaults  # latent_dim is searched
    storage.set_study_user_attr(study_id, "zoo_defaults", {**defaults, "weight_decay": 0.5})
    before = hashes(study / "st")
    base = ["search", "convae", "--space", study / "s.toml", "--study", "s", "--out", study / "st", "--trials", "3"]
    out = assert_clean_error(invoke(*base), "defaults, changed since the study began (weight_decay: 0.5 in the "
                             "study, 0.0 now)", "--set KEY=VALUE")
    assert hashes(study / "st") == before, out
    out = assert_ok(invoke(*base, "--set", "weight_decay=0.5"))
    assert "resuming with 2 trials stored" in out
    assert [r["number"] for r in trial_rows(study / "st")] == ["0", "1", "2"]


def test_a_study_an_older_zoo_began_without_recorded_defaults_resumes(study):
    storage, study_id = journal(study / "st")
    defaults = storage.get_study_user_attrs(study_id)["zoo_defaults"]
    storage.set_study_user_attr(study_id, "zoo_defaults", None)  # optuna cannot delete an attribute
    out = assert_ok(invoke("search", "convae", "--space", study / "s.toml", "--study", "s", "--out", study / "st",
                           "--trials", "3"))
    assert "resuming with 2 trials stored" in out
    assert storage.get_study_user_attrs(study_id)["zoo_defaults"] == defaults  # recorded from now on


def test_a_resume_without_dataset_or_epochs_reuses_the_studys(tmp_path):
    # the space names another data set and other epochs than the study was begun with
    (tmp_path / "s.toml").write_text(SPACE.replace('dataset = "digits"', 'dataset = "mnist"')
                                     .replace("epochs = 1", "epochs = 5"))
    base = ["search", "convae", "--study", "s", "--out", tmp_path / "st"]
    assert_ok(invoke(*base, "--space", tmp_path / "s.toml", "--dataset", "digits", "--epochs", "1", "--trials", "1"))
    out = assert_ok(invoke(*base, "--trials", "2"))
    assert "note: resuming with the study's dataset = digits, epochs = 1" in out
    assert "dataset = 'digits' as the study began goes over the space's [fixed] dataset = 'mnist'" in out
    assert "from the command line" not in out  # nothing came from this command line
    assert [r["epochs"] for r in trial_rows(tmp_path / "st")] == ["1", "1"]


# ------------------------------------------------------------------------------------------ outputs agree

def assert_outputs_agree(study_dir: Path) -> dict:
    """summary.json, trials.csv and best.toml describe the same trials and the same best one."""
    summary = json.loads((study_dir / "summary.json").read_text())
    table = trial_rows(study_dir)
    assert summary["trials"] == len(table)
    complete = [r for r in table if r["state"] == "complete"]
    assert summary["states"]["complete"] == len(complete)
    best = min(complete, key=lambda r: float(r["value"]))
    assert summary["best"]["number"] == int(best["number"])
    head = re.search(r"\(trial (\d+) of (\d+)\)", (study_dir / "best.toml").read_text())
    assert (int(head[1]), int(head[2])) == (summary["best"]["number"], summary["trials"])
    assert {Path(p).name for p in summary["written"]} <= {p.name for p in study_dir.iterdir()}
    assert not list(study_dir.glob(outputs_module.STAGE + "*"))  # no staging folder left behind
    return summary


def test_ctrl_c_after_the_second_trial_leaves_outputs_that_agree(tmp_path):
    (tmp_path / "slow.toml").write_text(SPACE.replace("epochs = 1", "epochs = 15"))
    args = ["search", "convae", "--space", tmp_path / "slow.toml", "--study", "c", "--out", tmp_path / "c",
            "--trials", "20"]
    seen: list[float] = []

    def third_trial_training() -> bool:
        # Half a second after the 2nd trial's line: the 3rd trial is training (a Ctrl-C inside a journal
        # write has its own test below)
        if not seen and len(re.findall(r"^trial \d+ ", (tmp_path / "log").read_text(), re.M)) >= 2:
            seen.append(time.time())
        return bool(seen) and time.time() - seen[0] > 0.5

    code, log = interrupt_zoo(args, tmp_path / "log", third_trial_training)
    assert code == 130, log
    assert "Traceback" not in log
    summary = assert_outputs_agree(tmp_path / "c")
    assert 2 <= summary["states"]["complete"] < 20


# the 4th write creates the first trial (after the study, its `zoo` record and its defaults); the 12th is
# inside a trial's reports
@pytest.mark.parametrize("writes", [4, 12])
def test_ctrl_c_inside_a_journal_write_ends_as_an_interrupt_and_the_study_resumes(tmp_path, monkeypatch, writes):
    """Optuna's journal write takes a lock (a symlink), appends, and renames the lock away then deletes it:
    a Ctrl-C landing at the very end of that (just after the delete) used to end the search with a storage
    error (exit 74, the delete retried on a file already gone) instead of an interrupt."""
    import os
    import signal
    import threading

    real_unlink = os.unlink
    seen = []

    def unlink_then_ctrl_c(path, *args, **kwargs):
        real_unlink(path, *args, **kwargs)
        if str(path).endswith(".rename") and threading.current_thread() is threading.main_thread():
            seen.append(path)  # a journal lock just released by the search itself
            if len(seen) == writes:
                os.kill(os.getpid(), signal.SIGINT)

    (tmp_path / "s.toml").write_text(SPACE)
    # A Ctrl-C inside the study's creation can leave a trial created but unclaimed: the resume fails it
    # after one heartbeat and at least liveness.UNCLAIMED_S (here 10 s, not the 90 s of three default beats).
    args = ["search", "convae", "--space", tmp_path / "s.toml", "--study", "j", "--out", tmp_path / "j",
            "--trials", "3", "--heartbeat", "1"]
    monkeypatch.setattr(os, "unlink", unlink_then_ctrl_c)
    r = invoke(*args)
    monkeypatch.undo()
    assert len(seen) >= writes
    assert r.exit_code == 130, r.output
    assert "search interrupted" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "j" / "journal.log.lock").exists()  # the lock was released, not left or stolen
    assert_ok(invoke(*args))  # the journal reads back whole: the same command resumes to 3 trials
    summary = assert_outputs_agree(tmp_path / "j")
    assert summary["states"]["complete"] == 3, summary["states"]


def test_ctrl_c_while_the_outputs_are_written_leaves_the_previous_set_whole(study, monkeypatch):
    before = hashes(study / "st")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(outputs_module, "plot_importance", interrupted)
    r = invoke("search", "convae", "--study", "s", "--out", study / "st", "--trials", "4")
    assert r.exit_code == 130, r.output
    assert "the study folder's outputs are still those of the search before" in r.output
    after = hashes(study / "st")
    assert {k: v for k, v in after.items() if k != "journal.log"} == \
        {k: v for k, v in before.items() if k != "journal.log"}  # 2 more trials stored, outputs as before
    assert_outputs_agree(study / "st")
    monkeypatch.undo()
    assert_ok(invoke("search", "convae", "--study", "s", "--out", study / "st", "--trials", "4"))
    assert assert_outputs_agree(study / "st")["trials"] == 4


# ------------------------------------------------------------------------------------------ the README's example

def test_the_readme_example_space_waits_for_5_trials_and_2_epochs_before_pruning():
    from zoo.search import prepare
    from zoo.search.study import auto_pruning

    settings, space = prepare("convae", "report-001-mnist-optuna", trials=10,
                              overrides={"dataset": "digits", "epochs": 5})
    assert settings.pruner == "auto"
    assert auto_pruning(settings, 5) == (5, 2)  # median pruning only after 5 complete trials, from epoch 2
    small, _ = prepare("convae", "report-001-mnist-optuna", trials=5, overrides={"dataset": "digits", "epochs": 5})
    assert auto_pruning(small, 5) is None  # a search of 5 trials is not pruned at all


@pytest.mark.parametrize("damage", ["emptied", "deleted", "cut", "edited"])  # a torn last line: test_search_disk25
def test_a_study_whose_journal_is_gone_or_damaged_is_refused_and_its_results_kept(study, damage):
    journal = study / "st" / "journal.log"
    data = journal.read_bytes()
    if damage == "emptied":
        journal.write_bytes(b"")
    elif damage == "deleted":
        journal.unlink()
    elif damage == "cut":
        journal.write_bytes(data[:100])
    else:  # edited: a middle line changed by hand
        lines = data.split(b"\n")
        lines[2] = lines[2][:-1] + b"X"
        journal.write_bytes(b"\n".join(lines))
    before = hashes(study / "st")
    expected = "is damaged at line" if damage in ("cut", "edited") else "holds a search's results"
    assert_clean_error(invoke("search", "convae", "--space", study / "s.toml", "--study", "s", "--out", study / "st",
                              "--trials", "3"), expected, code=1)  # a file's state, not the command line
    # resumed by its folder alone, the journal is named too
    alone = {"emptied": f"its journal {journal} is empty", "deleted": f"its journal {journal} is missing",
             "edited": f"{journal} is damaged at line 3"}
    if damage in alone:
        assert_clean_error(invoke("search", "convae", "--out", study / "st", "--trials", "3"), alone[damage], code=1)
    assert hashes(study / "st") == before


@pytest.mark.parametrize("name", ["../escaped", ".", "/tmp/elsewhere"])
def test_a_study_name_that_is_a_path_out_of_studies_is_refused(study, name, monkeypatch):
    monkeypatch.chdir(study)
    assert_clean_error(invoke("search", "convae", "--space", study / "s.toml", "--study", name, "--trials", "1"),
                       "a study name is not a path")
    assert not (study / "escaped").exists() and not (study / "studies").exists()


def test_a_sqlite_study_with_damaged_pages_is_one_message_and_its_file_is_kept(tmp_path):
    """A database damaged in part opened, and failed on the first read of its trials in a raw traceback whose
    Optuna message blamed 'invalid data in the commit'."""
    (tmp_path / "s.toml").write_text(SPACE)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    args = ("search", "convae", "--space", tmp_path / "s.toml", "--study", "s", "--storage", url)
    assert_ok(invoke(*args, "--out", tmp_path / "st", "--trials", "2"))
    import sqlite3

    db = tmp_path / "study.db"
    with contextlib.closing(sqlite3.connect(db)) as c:
        page = c.execute("PRAGMA page_size").fetchone()[0]
        roots = [r for (r,) in c.execute("SELECT rootpage FROM sqlite_master WHERE name LIKE 'trial%'")]
    data = bytearray(db.read_bytes())
    for root in roots:  # the trials' tables torn (a disk fault, a cut copy); the study itself opens
        data[(root - 1) * page:(root - 1) * page + 8] = b"\xff" * 8
    db.write_bytes(bytes(data))
    out = assert_clean_error(invoke(*args, "--out", tmp_path / "st", "--trials", "3"),
                             "database disk image is malformed", "no other program holds the SQLite file locked",
                             code=1)
    assert "invalid data in the commit" not in out and "Check the URL" not in out
    assert db.read_bytes() == bytes(data)


def test_a_storage_failure_is_read_through_the_error_optuna_raises_while_tidying_up():
    """A database locked past its wait ended a search in `AssertionError: Should not reach.`, raised by Optuna
    in handling the storage's error: zoo read only the last error and printed a traceback."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from zoo.search.storage_errors import failure as storage_failure

    try:
        try:
            try:
                raise OperationalError("UPDATE trials ...", {}, sqlite3.OperationalError("database is locked"))
            except OperationalError as e:
                raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from e
        except optuna.exceptions.StorageInternalError:
            raise AssertionError("Should not reach.")
    except AssertionError as tidying_up:
        assert storage_failure(tidying_up) == "database is locked"
    assert storage_failure(ValueError("a trial's own error")) is None


def test_a_lock_left_by_a_killed_writer_before_the_study_moved_is_removed_not_waited_on_forever(study):
    """Optuna's journal lock is a link to the journal's path: once the folder moved, it pointed nowhere and
    the search spun at full CPU, silently, until killed."""
    import os

    os.symlink(study / "st" / "journal.log", study / "st" / "journal.log.lock")  # what a SIGKILL mid-write leaves
    yesterday = time.time() - 86400
    os.utime(study / "st" / "journal.log.lock", (yesterday, yesterday), follow_symlinks=False)
    (study / "st").rename(study / "moved")
    started = time.monotonic()
    out = assert_ok(invoke("search", "convae", "--out", study / "moved", "--trials", "3"))
    assert time.monotonic() - started < 60 and len(trial_rows(study / "moved")) == 3
    assert f"removed {study / 'moved' / 'journal.log.lock'}, a lock left by a search killed while" in out
    assert not os.path.lexists(study / "moved" / "journal.log.lock")


def test_a_trial_said_finished_is_stored_before_a_ctrl_c_can_lose_it(tmp_path):
    """The trial's line was printed before the study held its value: a Ctrl-C right after the line failed the
    trial, and the resume trained it again, though the log had shown it finished."""
    import zoo
    from zoo.errors import Interrupted

    (tmp_path / "s.toml").write_text(SPACE)
    said = []

    def ctrl_c_after_the_first_trial(line):
        said.append(line)
        if line.startswith("trial 0 "):
            raise KeyboardInterrupt

    with pytest.raises(Interrupted, match="1 trial is done and stored"):
        zoo.run_search("convae", tmp_path / "s.toml", out=tmp_path / "k", trials=3, log=ctrl_c_after_the_first_trial)
    rows = list(csv.DictReader(open(tmp_path / "k" / "trials.csv")))
    assert [(r["number"], r["state"]) for r in rows] == [("0", "complete")], rows


def test_a_study_an_older_zoo_recorded_with_its_data_sets_name_as_typed_resumes(study):
    """An older zoo kept `--dataset Digits` as typed; today's names a named set in lower case, as a run records it:
    the resume was refused over the spelling, with a hint that could not help."""
    from zoo.search.resume import META

    storage, study_id = journal(study / "st")
    meta = storage.get_study_user_attrs(study_id)[META]
    assert meta["dataset"] == "digits"
    storage.set_study_user_attr(study_id, META, {**meta, "dataset": "Digits"})
    out = assert_ok(invoke("search", "convae", "--space", study / "s.toml", "--study", "s", "--out", study / "st",
                           "--trials", "3"))
    assert "resuming with 2 trials stored" in out
