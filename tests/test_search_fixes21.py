"""A hostile tester's findings on searches from Python and with several workers (workers21): trials.csv columns
that never clash with zoo's own, a resumed study that keeps its budget and strategy, a grid not resumed over
other draws, val_fraction not searched for a val_ objective, config keys given twice or not as a dict, a worker
paused past its heartbeats, NumPy numbers handed to worker processes, and failed trials' notes."""

from __future__ import annotations

import csv
import dataclasses
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import SEARCH_FIXED, quiet

import zoo
from zoo.errors import ConfigError, Interrupted
from zoo.search import prepare, run_search

optuna = pytest.importorskip("optuna")

HEAD = "[search]\nstrategy = \"random\"\npruner = \"none\"\nseed = 0\n" + SEARCH_FIXED + "epochs = 1\n"
SPACE = HEAD + "[params]\nlatent_dim = { low = 2, high = 4 }\n"


def write(path: Path, text: str = SPACE) -> Path:
    path.write_text(text)
    return path


def rows(study_dir: Path) -> tuple[list[str], list[dict]]:
    with open(study_dir / "trials.csv", newline="") as fh:
        header = next(csv.reader(fh))
        fh.seek(0)
        return header, list(csv.DictReader(fh))


# ------------------------------------------------------------------------------------------ trials.csv's columns

def test_searched_keys_and_helpers_named_like_zoos_columns_get_columns_of_their_own(tmp_path):
    """A helper named `value` or `state`, a searched `epochs`: a CSV reader kept the last of two columns of one name,
    and read the helper as the objective. zoo's columns keep their names; the searched ones are `param_NAME`."""
    space = write(tmp_path / "hv.toml", HEAD.replace("epochs = 1\n", "") + "[params]\n"
                  "epochs = { choices = [1] }\nvalue = { choices = [2], helper = true }\n"
                  "state = { choices = [1], helper = true }\nlatent_dim = { value = \"value + state\" }\n")
    summary = run_search("convae", space, out=tmp_path / "my study", trials=1, log=quiet)
    header, table = rows(tmp_path / "my study")
    assert len(header) == len(set(header)), header
    assert header[-4:] == ["param_epochs", "latent_dim", "param_value", "param_state"]  # searched, then helpers
    (row,) = table
    assert row["state"] == "complete" and float(row["value"]) == summary["best"]["value"]
    assert (row["param_value"], row["param_state"], row["latent_dim"], row["param_epochs"]) == ("2", "1", "3", "1")
    # the retrain line holds the study folder, spaces and all, as one word of a shell
    assert shlex.split(summary["retrain"])[-1] == str(tmp_path / "my study" / "best.toml")


# ------------------------------------------------------------------------------------------ resuming

def test_a_resume_that_leaves_out_trials_and_strategy_keeps_the_studys_budget_and_strategy(tmp_path):
    """The space says 5 trials of TPE; the study began with 1 of random: resumed without them (space left out, as
    the docs allow), it ran 4 more trials by TPE. A --trials given on resume still sets the budget."""
    space = write(tmp_path / "s.toml", SPACE.replace('strategy = "random"', 'strategy = "tpe"\ntrials = 5'))
    run_search("convae", space, out=tmp_path / "st", trials=1, strategy="random", log=quiet)
    said: list[str] = []
    summary = run_search("convae", out=tmp_path / "st", log=said.append)
    assert "note: resuming with the study's trials = 1, strategy = random" in said
    assert (summary["budget"], summary["trials"], summary["strategy"]) == (1, 1, "random")
    summary = run_search("convae", out=tmp_path / "st", trials=2, log=quiet)  # a budget given: the study's now
    assert (summary["budget"], summary["states"]["complete"], summary["strategy"]) == (2, 2, "random")
    said.clear()
    summary = run_search("convae", out=tmp_path / "st", log=said.append)
    assert "note: resuming with the study's trials = 2, strategy = random" in said
    assert (summary["budget"], summary["trials"]) == (2, 2)


def test_a_grid_resumed_over_trials_another_strategy_drew_is_refused(tmp_path):
    """Optuna's grid gives trial n its n-th point whatever the study holds: resumed after random trials, it skipped
    some points, trained others twice and said the grid done."""
    space = write(tmp_path / "g.toml", HEAD + "[params]\nlatent_dim = { choices = [2, 3, 4] }\n")
    run_search("convae", space, out=tmp_path / "gst", trials=1, log=quiet)
    journal = (tmp_path / "gst" / "journal.log").read_bytes()
    with pytest.raises(ConfigError, match=r"holds 1 trial\(s\) drawn by the random strategy .* would skip some of "
                                          r"its points") as e:
        run_search("convae", space, out=tmp_path / "gst", strategy="grid", log=quiet)
    assert "--strategy random" in e.value.hint
    assert (tmp_path / "gst" / "journal.log").read_bytes() == journal  # nothing written
    # a study begun as a grid resumes as one
    run_search("convae", space, out=tmp_path / "grid", strategy="grid", trials=1, log=quiet)
    summary = run_search("convae", space, out=tmp_path / "grid", strategy="grid", trials=2, log=quiet)
    assert summary["states"]["complete"] == 2


# ------------------------------------------------------------------------------------------ what trials are scored on

def test_a_space_that_searches_val_fraction_is_refused_for_a_val_objective_unless_cross_validated(tmp_path):
    from zoo.search.objective import check_comparable

    space = write(tmp_path / "vf.toml", HEAD + "[params]\nval_fraction = { choices = [0.05, 0.3] }\n")
    with pytest.raises(ConfigError, match="the space varies val_fraction, which changes the validation images "
                                          "val_loss is measured on") as e:
        run_search("convae", space, out=tmp_path / "vf", log=quiet)
    assert "--cv K" in e.value.hint
    assert not (tmp_path / "vf").exists()
    settings, sp = prepare("convae", space, out=tmp_path / "cv", cv=2)  # the folds validate every image once
    check_comparable(settings, sp)
    one = write(tmp_path / "one.toml", HEAD + "[params]\nval_fraction = { choices = [0.2] }\n")
    settings, sp = prepare("convae", one, out=tmp_path / "one")  # one value varies nothing
    check_comparable(settings, sp)


# ------------------------------------------------------------------------------------------ config keys from Python

def test_run_search_refuses_a_key_given_as_a_keyword_and_in_overrides_with_two_values(tmp_path):
    space = write(tmp_path / "s.toml", SPACE.replace("epochs = 1\n", ""))
    with pytest.raises(ConfigError, match="epochs given twice, as a keyword and in overrides=, with two values"):
        run_search("convae", space, out=tmp_path / "s", trials=1, epochs=2, overrides={"epochs": 1}, log=quiet)
    assert not (tmp_path / "s").exists()
    settings, _ = prepare("convae", space, out=tmp_path / "s", overrides={"epochs": 1})  # once: fine
    assert settings.overrides["epochs"] == 1


@pytest.mark.parametrize("overrides", ["epochs=1", ["epochs"]])
def test_overrides_that_are_not_a_dict_are_one_config_error_in_run_search_and_cross_validate(tmp_path, overrides):
    space = write(tmp_path / "s.toml")
    with pytest.raises(ConfigError, match="overrides= takes a dict of config keys, not"):
        run_search("convae", space, out=tmp_path / "s", trials=1, overrides=overrides, log=quiet)
    with pytest.raises(ConfigError, match="overrides= takes a dict of config keys, not"):
        zoo.cross_validate("convae", folds_k=2, dataset="digits", overrides=overrides)
    assert not (tmp_path / "s").exists()


def test_numpy_numbers_as_config_keywords_reach_worker_processes_as_python_numbers(tmp_path, monkeypatch):
    """With --workers 2 the settings go to the worker processes as JSON: np.int64(64) failed there, after the study
    folder was made. The worker processes are run here in this process, from the very JSON they are handed."""
    from zoo.search import run as run_module
    from zoo.search.settings import Settings
    from zoo.search.space import load_space
    from zoo.search.worker import Worker

    def in_process(settings, log, every_while=None):
        handed = json.loads(json.dumps(dataclasses.asdict(settings)))  # as _run_workers hands it to each worker
        Worker(Settings(**handed), load_space(settings.space), log=log).run()

    monkeypatch.setattr(run_module, "_run_workers", in_process)
    summary = run_search("convae", write(tmp_path / "s.toml"), out=tmp_path / "np", trials=2, workers=2,
                         batch_size=np.int64(64), lr=np.float32(0.003), timeout=np.float32(600), log=quiet)
    assert summary["states"]["complete"] == 2
    config = json.loads((tmp_path / "np" / "best.toml").read_text().split("batch_size = ")[1].split("\n")[0])
    assert config == 64


def test_an_empty_out_is_refused_and_a_data_dir_path_is_taken(tmp_path):
    space = write(tmp_path / "s.toml")
    for out in ("", "   "):
        with pytest.raises(ConfigError, match="--out \\(out=\\) is the study folder, a path, not"):
            prepare("convae", space, out=out)
    assert not Path("studies").exists()
    settings, _ = prepare("convae", space, out=tmp_path / "s", overrides={"data_dir": tmp_path})
    assert settings.overrides["data_dir"] == str(tmp_path)


# ------------------------------------------------------------------------------------------ workers and failures

def _worker(tmp_path: Path, **options):
    from zoo.search.study import open_study
    from zoo.search.worker import Worker

    settings, sp = prepare("convae", write(tmp_path / "s.toml"), out=tmp_path / "st", trials=1, **options)
    Path(settings.study_dir).mkdir(parents=True, exist_ok=True)
    open_study(settings, sp, create=True)
    said: list[str] = []
    return Worker(settings, sp, log=said.append), said


@pytest.mark.parametrize("then", ["reports an epoch", "returns its score"])
def test_a_worker_whose_trial_another_worker_failed_meanwhile_says_so_and_goes_on(tmp_path, monkeypatch, then):
    """A worker paused past the heartbeats' grace (SIGSTOP, a suspended laptop) whose trial another worker failed
    and queued again died on resuming with Optuna's `ValueError: Cannot tell a FAIL trial.` (its next report to the
    pruner failed the trial), or its AssertionError where the trial's training had ended."""
    from optuna.trial import TrialState

    from zoo.search import worker as worker_module

    worker, said = _worker(tmp_path)

    def failed_by_another_worker_meanwhile(w, trial, *args):
        if trial.number == 0:  # as fail_stale in the other worker does it
            w.storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            w.retry(w.study, w.storage.get_trial(trial._trial_id))
            if then == "reports an epoch":
                trial.report(0.5, 1)  # refused: the trial is finished
        return 0.5

    monkeypatch.setattr(worker_module, "score", failed_by_another_worker_meanwhile)
    worker.run()
    assert any(line.startswith("trial 0 was failed by another worker while this one did not answer") and
               "is retried as trial 1; this worker's result for it is dropped" in line for line in said), said
    states = [(t.number, t.state.name) for t in worker.study.get_trials()]
    assert states == [(0, "FAIL"), (1, "COMPLETE")]  # the retry ran here, and the budget is spent


def test_a_trial_stopped_by_ctrl_c_has_a_note_and_its_retry_none(tmp_path, monkeypatch):
    from zoo.search import worker as worker_module

    def ctrl_c(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(worker_module, "score", ctrl_c)
    with pytest.raises(Interrupted):
        run_search("convae", write(tmp_path / "s.toml"), out=tmp_path / "st", trials=1, log=quiet)
    _, table = rows(tmp_path / "st")
    assert [(r["state"], r["note"]) for r in table] == [
        ("fail", "interrupted (Ctrl-C or a stop signal): queued again"), ("waiting", "")]


def test_a_dead_workers_trial_is_failed_with_a_note_on_the_journal_file(tmp_path):
    from zoo.search.liveness import fail_stale
    from zoo.search.outputs import write_csv
    from zoo.search.study import HOST

    worker, said = _worker(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", ""])  # a worker's pid, gone
    dead.wait()
    trial = worker.study.ask()
    trial.set_user_attr("worker", {"host": HOST, "pid": dead.pid, "trial": trial.number})
    fail_stale(worker)
    assert said == ["trial 0 lost its worker: failed, queued again"]
    write_csv(worker.study.get_trials(), tmp_path / "trials.csv", "val_loss_best")
    _, table = rows(tmp_path)
    assert table[0]["state"] == "fail" and table[0]["note"].startswith("its worker stopped answering (no heartbeat")
    assert (table[1]["state"], table[1]["note"]) == ("waiting", "")


def test_a_dead_workers_trial_on_sqlite_is_said_as_on_the_journal_file(tmp_path):
    """Optuna's own heartbeats fail a dead worker's trial on a database: that was done without a word."""
    from zoo.search.liveness import fail_stale
    from zoo.search.outputs import write_csv

    worker, said = _worker(tmp_path, storage=f"sqlite:///{tmp_path / 's.db'}", heartbeat=1)
    trial = worker.study.ask()
    worker.storage.record_heartbeat(trial._trial_id)
    time.sleep(worker.settings.grace + 1.5)  # its worker gone: no heartbeat since (the database's clock, in s)
    fail_stale(worker)
    assert said == ["trial 0 lost its worker: failed, queued again"]
    write_csv(worker.study.get_trials(), tmp_path / "trials.csv", "val_loss_best")
    _, table = rows(tmp_path)
    assert (table[0]["state"], table[0]["note"]) == ("fail", "failed; retried as trial 1")


def test_one_config_key_given_as_a_keyword_and_in_overrides_with_the_same_values_as_tuple_and_list_is_one_value():
    from zoo.search.settings import merged_keys

    assert merged_keys({"channels": (4, 8, 8)}, {"channels": [4, 8, 8]})["channels"] in ([4, 8, 8], (4, 8, 8))
