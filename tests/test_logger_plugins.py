"""Loggers as plugins: a third-party package's logger, registered through the `zoo_loggers` hook and
chosen with `--log NAME`, gets every epoch and the run's end; a logger's failure never stops training."""

from __future__ import annotations

import json

import pytest
from conftest import (TINY_SET, tiny_space, _install_in_process, assert_clean_error, assert_ok, invoke, read_metrics,
                      write_plugin)

ROWLOG = '''\
"""A third-party zoo logger: each epoch's row and the run's end, appended to RUN/rows.jsonl."""
import json

import zoo
from zoo.tracking import Logger


class RowLog(Logger):
    name = "rowlog"
    description = "appends every epoch to RUN/rows.jsonl"

    def open(self, run):
        self.path = run.folder / "rows.jsonl"
        done = [json.loads(line)["epoch"] for line in self.path.read_text().splitlines()] if self.path.exists() else []
        return max(done, default=0)

    def log_epoch(self, record):
        with open(self.path, "a") as fh:
            fh.write(json.dumps({"epoch": record["epoch"], "val_loss": record["val_loss"]}) + "\\n")

    def close(self, run, status):
        (run.folder / "closed.txt").write_text(f"{status} {len(run.history)}")

    def log_study(self, study):
        with open(study.folder / "study-log.txt", "a") as fh:
            fh.write(f"{len(study.trials)} {study.finished} {[t.number for t in study.trials]}\\n")


class Noisy(Logger):
    name = "noisy"
    description = "fails with a long message that names a URI with credentials"

    def open(self, run):
        raise RuntimeError("could not log to https://bob:hunter2@tracking.example/api: " + "word " * 100 + "END")


class Flaky(Logger):
    name = "flaky"
    description = "fails at epoch 2"

    def open(self, run):
        self.folder = run.folder
        return 0

    def log_epoch(self, record):
        if record["epoch"] == 2:
            raise RuntimeError("the tracking server went away")

    def release(self):
        (self.folder / "flaky-released.txt").write_text("released")

    def log_study(self, study):
        raise RuntimeError("the tracking server went away")

    def close(self, run, status):
        (run.folder / "flaky-closed.txt").write_text(status)


class Locked(Logger):
    name = "locked"
    description = "fails as a read-only SQLite store does, its library logging its own traceback first"

    def open(self, run):
        import logging
        import sqlite3

        try:
            raise sqlite3.OperationalError("attempt to write a readonly database")
        except sqlite3.OperationalError as e:
            logging.getLogger("somelib.store.db").exception("database error while flushing")
            raise RuntimeError("(raised as a result of Query-invoked autoflush)") from e


class Missing(Logger):
    name = "needs-missing"
    description = "needs a package that is not installed"
    requires = "zoo_no_such_package_xyz"
    install = "zoo-xyz-logger"


@zoo.hookimpl
def zoo_loggers():
    return [RowLog, Flaky, Noisy, Locked, Missing]
'''


@pytest.fixture(scope="module")
def rowlog_dir(tmp_path_factory):
    return write_plugin(tmp_path_factory.mktemp("rowlog"), "rowlog", "rowlog", ROWLOG)


@pytest.fixture
def rowlog_installed(rowlog_dir):
    yield from _install_in_process(rowlog_dir, "rowlog")


def train(*args):
    return invoke("train", "convae", "--dataset", "digits", *TINY_SET, *args)


def test_a_third_party_logger_gets_every_epoch_and_the_runs_end(rowlog_installed, tmp_path):
    run = tmp_path / "run"
    assert_ok(train("--epochs", "3", "--log", "rowlog", "--out", run))
    rows = [json.loads(line) for line in (run / "rows.jsonl").read_text().splitlines()]
    assert rows == [{"epoch": r["epoch"], "val_loss": r["val_loss"]} for r in read_metrics(run)]
    assert (run / "closed.txt").read_text() == "finished 3"
    assert_ok(invoke("train", "--resume", run, "--epochs", "4", "--no-progress"))
    assert [json.loads(line)["epoch"] for line in (run / "rows.jsonl").read_text().splitlines()] == [1, 2, 3, 4]


def test_zoo_list_shows_the_plugins_loggers_beside_zoos_own(rowlog_installed):
    out = assert_ok(invoke("list"))
    loggers = out.split("loggers (")[1]
    for name in ("rowlog", "flaky", "tensorboard", "mlflow"):
        assert f"\n{name} " in loggers
    listing = json.loads(assert_ok(invoke("list", "--json")))
    assert {"name": "rowlog", "package": "rowlog 0.1"}.items() <= \
        next(r for r in listing["loggers"] if r["name"] == "rowlog").items()


def test_a_failing_logger_never_stops_training_is_released_and_says_what_was_not_logged(rowlog_installed, tmp_path):
    run = tmp_path / "run"
    out = assert_ok(train("--epochs", "3", "--log", "flaky,rowlog", "--out", run))
    assert "flaky: logging epoch 2 failed (RuntimeError: the tracking server went away)" in out
    assert "the rest of this run is not logged there" in out
    assert out.count("flaky:") == 1  # said once, not at every later epoch
    assert [r["epoch"] for r in read_metrics(run)] == [1, 2, 3]  # no epoch lost
    assert len((run / "rows.jsonl").read_text().splitlines()) == 3  # the other logger carried on
    assert (run / "model.safetensors").is_file()
    assert (run / "flaky-released.txt").is_file()  # what it held is let go at the failure
    assert not (run / "flaky-closed.txt").exists()  # and nothing more is written through it


def test_a_failure_note_hides_credentials_in_uris_and_is_cut_at_a_word_not_mid_word(rowlog_installed, tmp_path):
    out = assert_ok(train("--epochs", "1", "--log", "noisy", "--out", tmp_path / "run"))
    note = next(line for line in out.splitlines() if line.startswith("note: noisy:"))
    assert "https://***@tracking.example/api" in note and "hunter2" not in note and "bob" not in note
    assert "END" not in note and "word ...);" in note  # shortened, at a word's end
    assert "the rest of this run is not logged there" in note


def test_a_failure_note_gives_the_error_it_came_from_and_no_librarys_traceback(rowlog_installed, tmp_path):
    """A read-only MLflow database: 80 lines of SQLAlchemy's traceback, then a note cut to "raised as a result of
    Query-invoked autoflush" without the reason."""
    out = assert_ok(train("--epochs", "1", "--log", "locked", "--out", tmp_path / "run"))
    assert "Traceback" not in out and "database error while flushing" not in out
    assert "note: locked: opening the run failed (RuntimeError: (raised as a result of Query-invoked autoflush); " \
           "from OperationalError: attempt to write a readonly database)" in out


def test_a_logger_whose_package_is_missing_says_what_to_install(rowlog_installed, tmp_path):
    assert_clean_error(train("--log", "needs-missing", "--out", tmp_path / "r"),
                       "--log needs-missing needs the 'zoo_no_such_package_xyz' package, which is not installed",
                       'pip install "zoo-xyz-logger"')
    assert not (tmp_path / "r").exists()


SPACE = tiny_space(trials=3, epochs=1)


def test_a_search_hands_its_loggers_each_trial_as_it_finishes_then_the_ended_study(rowlog_installed, tmp_path):
    (tmp_path / "space.toml").write_text(SPACE)
    study = tmp_path / "study"
    assert_ok(invoke("search", "convae", "--space", tmp_path / "space.toml", "--out", study, "--log", "rowlog"))
    assert (study / "study-log.txt").read_text().splitlines() == [
        "1 False [0]", "2 False [0, 1]", "3 False [0, 1, 2]", "3 True [0, 1, 2]"]


def test_a_logger_failing_on_a_search_says_its_trials_are_in_trials_csv(rowlog_installed, tmp_path):
    (tmp_path / "space.toml").write_text(SPACE)
    out = assert_ok(invoke("search", "convae", "--space", tmp_path / "space.toml", "--out", tmp_path / "study",
                           "--log", "flaky"))
    note = next(line for line in out.splitlines() if line.startswith("note: flaky: logging the search failed"))
    assert note.endswith("trials.csv in the study folder holds every trial") and "metrics.jsonl" not in note
    assert (tmp_path / "study" / "trials.csv").is_file()


def test_an_unknown_logger_is_refused_before_a_search_runs_a_trial(rowlog_installed, tmp_path):
    (tmp_path / "space.toml").write_text(SPACE)
    assert_clean_error(invoke("search", "convae", "--space", tmp_path / "space.toml", "--out", tmp_path / "study",
                              "--log", "rowlgo"), "unknown logger 'rowlgo'", "Did you mean: rowlog")
    assert not (tmp_path / "study" / "trials.csv").exists()


def test_a_search_refuses_a_logger_that_does_not_log_searches_before_any_trial(rowlog_installed, tmp_path):
    (tmp_path / "space.toml").write_text(SPACE)
    assert_clean_error(invoke("search", "convae", "--space", tmp_path / "space.toml", "--out", tmp_path / "study",
                              "--log", "noisy"), "--log noisy: noisy does not log searches", "Loggers that do:",
                       code=2)
    assert not (tmp_path / "study" / "trials.csv").exists()


def test_zoo_eval_log_refuses_a_logger_that_does_not_log_evaluations_before_the_work(rowlog_installed, tmp_path):
    run = tmp_path / "run"
    assert_ok(train("--epochs", "1", "--out", run))
    assert_clean_error(invoke("eval", run, "--log", "rowlog"), "--log rowlog: rowlog does not log evaluations",
                       "Loggers that do:", code=2)
    assert not (run / "eval.json").exists()


def test_an_evaluation_not_saved_has_nothing_for_a_logger_and_is_refused(tmp_path):
    import zoo

    run = tmp_path / "run"
    assert_ok(train("--epochs", "1", "--out", run))
    with pytest.raises(zoo.errors.ConfigError, match="save=False keeps none"):
        zoo.evaluate(run, save=False, loggers="tensorboard")


def test_a_failure_is_said_down_the_chain_the_traceback_shows_and_never_round_a_cycle():
    from zoo.tracking.messages import failure

    outer, inner = RuntimeError("outer"), ValueError("inner")
    outer.__context__, inner.__context__ = inner, outer  # a cycle: it looped for ever
    assert failure(outer) == "RuntimeError: outer; from ValueError: inner"
    try:
        try:
            raise ValueError("hidden")
        except ValueError:
            raise RuntimeError("said") from None
    except RuntimeError as e:
        assert failure(e) == "RuntimeError: said"  # a context raised `from None` is not its cause


def test_zoo_finetune_logged_to_a_logger_without_log_eval_still_prints_the_heads_accuracy_and_says_why_unlogged(
        rowlog_installed, digits_run, tmp_path):
    head = tmp_path / "head"
    out = assert_ok(invoke("finetune", digits_run, "--epochs", "1", "--log", "rowlog", "--out", head))
    assert "note: rowlog logs no evaluations: the head's test accuracy is not logged there" in out
    assert "test accuracy" in out and len((head / "rows.jsonl").read_text().splitlines()) == 1
