"""`zoo search` when the disk refuses a write (fsfail25 findings 1-3): a full disk or a file-size limit under the
study's journal is one StorageError naming the journal (no Optuna traceback), the journal is cut back to its last
whole record and the same command resumes the study; a last line cut short all the same is dropped with a note
(a damaged line in the middle is still refused); and a plot the full disk refuses is a StorageError naming the
study's file, with the study's previous plots kept."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import assert_clean_error, assert_ok, invoke, tiny_space
from test_oserrors import mounts  # noqa: F401  (a fixture: mount namespaces, or the test is skipped)
from test_oserrors import assert_storage_error, fill, in_mount_namespace, q, tmpfs, zoo_then, zoo_with_file_size_limit

pytest.importorskip("optuna")


def search(space: Path, out: Path, *more) -> list:
    return ["search", "convae", "--space", space, "--out", out, *more]


def assert_whole(journal: Path) -> list[dict]:
    """Every line of the journal a whole record, the last one ended: what Optuna and zoo read back."""
    data = journal.read_bytes()
    assert data.endswith(b"\n"), data[-200:]
    return [json.loads(line) for line in data.splitlines()]


def complete(out: Path) -> int:
    return json.loads((out / "summary.json").read_text())["states"]["complete"]


@pytest.fixture(scope="module")
def begun(tmp_path_factory) -> Path:
    """A finished study of 2 trials (history.png and importance.png made), to copy; run by this process."""
    root = tmp_path_factory.mktemp("begun")
    (root / "space.toml").write_text(tiny_space(2, 1))
    assert_ok(invoke(*search(root / "space.toml", root / "st")))
    assert (root / "st" / "importance.png").is_file()
    return root


@pytest.fixture
def study(begun, tmp_path) -> Path:
    shutil.copytree(begun / "st", tmp_path / "st")
    shutil.copy(begun / "space.toml", tmp_path / "space.toml")
    return tmp_path


@pytest.mark.usefixtures("mounts")
def test_a_search_on_a_full_disk_is_one_storage_error_and_the_same_command_resumes_it(tmp_path):
    disk, kept = tmp_path / "disk", tmp_path / "kept"
    disk.mkdir()
    (tmp_path / "space.toml").write_text(tiny_space(3, 1))
    args = search(tmp_path / "space.toml", disk / "st")
    result = in_mount_namespace(tmpfs(disk, 12), zoo_then(args, f"cp -a {q(disk / 'st')} {q(kept)}"))
    line = assert_storage_error(result, "no space left on device", "Free some space")
    assert f"cannot write {disk / 'st' / 'journal.log'}" in line and "resume with the same command" in line
    assert_whole(kept / "journal.log")  # the refused record cut back: nothing half-written
    assert_ok(invoke(*search(tmp_path / "space.toml", kept)))
    assert complete(kept) == 3


def test_a_search_past_a_file_size_limit_is_one_storage_error_and_leaves_its_journal_whole(tmp_path):
    (tmp_path / "space.toml").write_text(tiny_space(2, 1))
    out = tmp_path / "st"
    result = zoo_with_file_size_limit(5_000, *search(tmp_path / "space.toml", out))  # a trial's records: ~3 KB
    line = assert_storage_error(result, "file too large", "ulimit")
    assert f"cannot write {out / 'journal.log'}" in line
    records = assert_whole(out / "journal.log")
    assert len(records) > 5 and (out / "journal.log").stat().st_size <= 5_000


def test_a_journal_whose_last_line_was_cut_short_resumes_dropping_that_line_with_a_note(study):
    journal = study / "st" / "journal.log"
    data = journal.read_bytes()
    journal.write_bytes(data[:-50])  # a last record a full disk or a kill left half-written
    out = assert_ok(invoke(*search(study / "space.toml", study / "st", "--trials", "3")))
    assert f"1 damaged line of {journal} dropped" in out
    # the cut record was trial 1's end: left running by this process's search, it is run again, not waited on
    assert "trial 1 was left running by an earlier search: failed, queued again" in out
    assert complete(study / "st") == 3
    assert_whole(journal)


def test_a_journal_damaged_in_the_middle_is_still_refused(study):
    journal = study / "st" / "journal.log"
    lines = journal.read_bytes().split(b"\n")
    lines[2] = lines[2][:-1] + b"X"
    journal.write_bytes(b"\n".join(lines))
    before = journal.read_bytes()
    assert_clean_error(invoke(*search(study / "space.toml", study / "st", "--trials", "3")),
                       f"{journal} is damaged at line 3", code=1)
    assert journal.read_bytes() == before


@pytest.mark.usefixtures("mounts")
def test_a_plot_a_full_disk_refuses_is_a_storage_error_and_the_study_keeps_its_plots(study):
    disk, kept = study / "disk", study / "kept"
    disk.mkdir()
    before = {name: (study / "st" / name).read_bytes() for name in ("history.png", "importance.png")}
    result = in_mount_namespace(tmpfs(disk, 1024), f"cp -a {q(study / 'st')} {q(disk / 'st')}", fill(disk),
                                f"truncate -s -12K {q(disk / 'filler')}",  # room for trials.csv, not for a plot
                                zoo_then(search(study / "space.toml", disk / "st"),
                                         f"cp -a {q(disk / 'st')} {q(kept)}"))
    line = assert_storage_error(result, "no space left on device", "Free some space")
    assert f"cannot write {disk / 'st' / 'history.png'}" in line
    assert ".outputs-" not in result.stdout + result.stderr
    assert {name: (kept / name).read_bytes() for name in before} == before
    assert not list(kept.glob(".outputs-*"))


def test_a_sqlite_study_whose_disk_refuses_its_first_write_is_a_storage_error_not_a_usage_error(tmp_path):
    (tmp_path / "space.toml").write_text(tiny_space(2, 1))
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    result = zoo_with_file_size_limit(40_000, *search(tmp_path / "space.toml", tmp_path / "st", "--storage", url))
    line = assert_storage_error(result, "disk i/o error", "refused a write")
    assert line.startswith(f"Error: cannot open the storage {url}")
