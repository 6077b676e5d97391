"""Tracking after stops, resumes and overwrites (track20's findings), on the real components: every event
file of a TensorBoard folder read raw (no purge applied, as TensorBoard's Python loader and its HParams
dashboard read them), and real SQLite MLflow stores in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TINY_SET, assert_clean_error, assert_ok, invoke, read_metrics, tiny_space

pytest.importorskip("tensorboard", reason='the tensorboard extra is not installed (pip install "zoo[tensorboard]")')

from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader  # noqa: E402
from tensorboard.plugins.hparams import plugin_data_pb2  # noqa: E402

START_INFO = "_hparams_/session_start_info"


def raw_events(folder: Path) -> list:
    """Every event of every events file in `folder`, as written: nothing purged, nothing merged."""
    return [e for path in sorted(folder.glob("events.out.tfevents*")) for e in LegacyEventFileLoader(str(path)).Load()]


def scalar_points(folder: Path, tag: str) -> list[tuple[int, float]]:
    """(step, value) of each point of a scalar tag, over all the folder's events files, in step order."""
    return sorted((e.step, v.simple_value) for e in raw_events(folder) if e.HasField("summary")
                  for v in e.summary.value if v.tag == tag)


def image_steps(folder: Path, tag: str) -> list[int]:
    return sorted(e.step for e in raw_events(folder) if e.HasField("summary")
                  for v in e.summary.value if v.tag == tag and v.HasField("image"))


def hparams_sessions(folder: Path) -> list[dict]:
    """Each session_start_info (a run's hparams) the folder's events files hold, as {name: value}."""
    out = []
    for e in raw_events(folder):
        for v in e.summary.value if e.HasField("summary") else []:
            if v.tag == START_INFO:
                info = plugin_data_pb2.HParamsPluginData.FromString(v.metadata.plugin_data.content).session_start_info
                out.append({k: (h.number_value if h.HasField("number_value") else h.string_value)
                            for k, h in info.hparams.items()})
    return out


def train(*args) -> str:
    return assert_ok(invoke("train", "convae", "--dataset", "digits", *TINY_SET, *args))


# ---------------------------------------------------------------- finding 1: no old events beside the new ones

def test_overwrite_into_a_tensorboard_dir_leaves_only_the_new_runs_scalars_and_hparams_in_raw_events(tmp_path):
    shared = tmp_path / "tb"
    run = tmp_path / "run"
    logged = ["--log", "tensorboard", "--set", f"tensorboard_dir={shared}", "--out", run]
    train("--epochs", "3", "--lr", "0.001", *logged)
    train("--epochs", "2", "--lr", "0.01", *logged, "--overwrite")
    assert [step for step, _ in scalar_points(shared / "run", "loss/val")] == [1, 2]
    assert [round(v, 6) for _, v in scalar_points(shared / "run", "lr")] == [0.01, 0.01]
    sessions = hparams_sessions(shared / "run")
    assert len(sessions) == 1 and sessions[0]["epochs"] == 2 and sessions[0]["lr"] == pytest.approx(0.01)


def test_a_resume_rewrites_each_epoch_once_with_the_resumed_configs_hparams_and_keeps_the_pictures(tmp_path):
    run = tmp_path / "run"
    train("--epochs", "2", "--log", "tensorboard", "--set", "plot_every=1", "--out", run)
    assert_ok(invoke("train", "--resume", run, "--epochs", "3", "--no-progress"))
    folder = run / "tensorboard"
    points = scalar_points(folder, "loss/val")
    assert [step for step, _ in points] == [1, 2, 3]
    assert [v for _, v in points] == pytest.approx([r["val_loss"] for r in read_metrics(run)])
    sessions = hparams_sessions(folder)
    assert len(sessions) == 1 and sessions[0]["epochs"] == 3  # the resumed config's, not the first one's
    assert image_steps(folder, "images/reconstruction") == [1, 2, 3]  # each once, epoch 1's carried over
    assert len(list(folder.glob("events.out.tfevents*"))) == 1


def test_a_fresh_run_in_a_remade_folder_removes_only_the_event_files_of_its_tensorboard_folder(tmp_path):
    shared = tmp_path / "tb"
    run = tmp_path / "run"
    logged = ["--log", "tensorboard", "--set", f"tensorboard_dir={shared}", "--out", run]
    train("--epochs", "2", *logged)
    (shared / "run" / "notes.txt").write_text("mine")
    import shutil

    shutil.rmtree(run)  # the run folder made anew, not resumed: its events start again
    train("--epochs", "1", *logged)
    assert [step for step, _ in scalar_points(shared / "run", "loss/val")] == [1]
    assert (shared / "run" / "notes.txt").read_text() == "mine"


# ---------------------------------------------------------------- finding 9: repeated evaluations, lost pictures

def test_evaluating_a_run_twice_leaves_one_point_per_figure_in_tensorboard_and_mlflow(tmp_path):
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    run = tmp_path / "vae"
    assert_ok(invoke("train", "vae", "--dataset", "digits", *TINY_SET, "--epochs", "2", "--log",
                     "tensorboard,mlflow", "--set", f"mlflow_uri={store}", "--out", run))
    for _ in range(2):
        assert_ok(invoke("eval", run, "--log", "tensorboard,mlflow"))
    assert [step for step, _ in scalar_points(run / "tensorboard", "mse/test")] == [2]
    run_id = json.loads((run / "mlflow.json").read_text())["run_id"]
    assert [m.step for m in MlflowClient(store).get_metric_history(run_id, "test_mse")] == [2]
    # a resume keeps the evaluation's events beside the rewritten training's
    assert_ok(invoke("train", "--resume", run, "--epochs", "3", "--no-progress"))
    assert [step for step, _ in scalar_points(run / "tensorboard", "mse/test")] == [2]
    assert [step for step, _ in scalar_points(run / "tensorboard", "loss/val")] == [1, 2, 3]


def test_a_stop_right_after_an_epoch_whose_pictures_were_due_has_them_drawn_on_resume(tmp_path, monkeypatch):
    """A Ctrl-C after epoch 2's checkpoint, before its pictures were logged, lost them for good."""
    import zoo.plugins.tensorboard_logger as tb

    run = tmp_path / "run"
    real = tb.TensorBoard.log_images

    def stopped_at_epoch_2(self, epoch, rows):
        if epoch == 2:
            raise KeyboardInterrupt  # the user's Ctrl-C, as epoch 2's pictures are due
        real(self, epoch, rows)

    monkeypatch.setattr(tb.TensorBoard, "log_images", stopped_at_epoch_2)
    result = invoke("train", "convae", "--dataset", "digits", *TINY_SET, "--epochs", "3", "--log", "tensorboard",
                    "--set", "plot_every=1", "--out", run)
    assert result.exit_code == 130, result.output
    monkeypatch.undo()
    assert image_steps(run / "tensorboard", "images/reconstruction") == [1]
    assert_ok(invoke("train", "--resume", run, "--no-progress"))
    assert image_steps(run / "tensorboard", "images/reconstruction") == [1, 2, 3]


def test_a_ctrl_c_while_the_loggers_open_says_what_is_saved_and_how_to_resume(tmp_path, monkeypatch):
    import os
    import signal

    import zoo.plugins.tensorboard_logger as tb

    run = tmp_path / "run"
    real = tb.TensorBoard.open

    def interrupted(self, view):
        os.kill(os.getpid(), signal.SIGINT)  # the user's Ctrl-C, as the loggers open
        return real(self, view)

    monkeypatch.setattr(tb.TensorBoard, "open", interrupted)
    result = invoke("train", "convae", "--dataset", "digits", *TINY_SET, "--epochs", "2", "--log", "tensorboard",
                    "--out", run)
    assert result.exit_code == 130
    assert "interrupted while the loggers opened, before epoch 1" in result.output
    assert f"Resume with: zoo train --resume {run}" in result.output
    monkeypatch.undo()
    assert_ok(invoke("train", "--resume", run, "--no-progress"))
    assert [step for step, _ in scalar_points(run / "tensorboard", "loss/val")] == [1, 2]


def test_a_search_worker_process_stopped_by_its_search_leaves_the_message_to_the_search(tmp_path, monkeypatch):
    """`zoo search --workers 2` stopped by Ctrl-C printed "search interrupted" three times (each worker's too)."""
    import os

    import zoo.search.worker as worker_module
    from zoo.errors import Interrupted
    from zoo.search.settings import prepare
    from zoo.search.study import open_study

    space = tmp_path / "s.toml"
    space.write_text(tiny_space(trials=2, epochs=1))
    settings, sp = prepare("convae", space, out=tmp_path / "s", trials=2)
    open_study(settings, sp, create=True)

    def stopped(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(worker_module, "configure", stopped)
    try:  # a worker of a search that is there: exit 130, no message of its own
        worker_module.Worker(settings, sp, log=print, parent=os.getppid()).run()
    except BaseException as e:  # noqa: BLE001 - an Interrupted (a KeyboardInterrupt) would stop pytest itself
        stop = e
    assert type(stop) is SystemExit and stop.code == 130, stop
    with pytest.raises(Interrupted, match="search interrupted"):  # a search's own worker says it
        worker_module.Worker(settings, sp, log=print).run()


# ---------------------------------------------------------------- finding 2: a new store set up by two at once

def test_trainings_opening_one_new_sqlite_store_at_once_each_get_a_client(tmp_path):
    """Both migrated the new store's schema at once; one failed ("duplicate column name") and trained unlogged."""
    import subprocess
    import sys
    import time

    store = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    go = tmp_path / "go"
    code = ("import sys, time, pathlib, mlflow.tracking\n"
            "from zoo.plugins.mlflow_logger import client_for\n"
            f"while not pathlib.Path({str(go)!r}).exists(): time.sleep(0.01)\n"
            f"client_for({store!r}).search_experiments()\n")
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).parents[1], stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    time.sleep(8)  # each has imported MLflow and waits
    go.touch()
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors


def test_a_store_that_fails_to_open_says_how_to_fill_the_run_in_and_that_resume_does(tmp_path, monkeypatch):
    import re

    import mlflow.tracking
    import sqlalchemy.exc
    from mlflow.tracking import MlflowClient


    store = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    run = tmp_path / "run"

    def broken(self, *args, **kwargs):
        raise sqlalchemy.exc.OperationalError("ALTER TABLE", {}, Exception("duplicate column name: step"))

    monkeypatch.setattr(mlflow.tracking.MlflowClient, "__init__", broken)
    out = train("--epochs", "2", "--log", "mlflow", "--set", f"mlflow_uri={store}", "--out", run)
    assert "opening the run failed" in out and not (run / "mlflow.json").exists()
    command = re.search(r"`(zoo train --resume [^`]+)`", out).group(1)
    assert command == f"zoo train --resume {run} --log mlflow"
    monkeypatch.undo()
    assert_ok(invoke(*command.split()[1:], "--no-progress"))  # the run has finished: it logs every epoch
    run_id = json.loads((run / "mlflow.json").read_text())["run_id"]
    assert [m.step for m in MlflowClient(store).get_metric_history(run_id, "val_loss")] == [1, 2]


# ---------------------------------------------------------------- finding 4: stores that can never take the run

def test_a_deleted_experiment_is_refused_before_the_run_folder_exists_with_how_to_restore_it(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    client = MlflowClient(store)
    client.delete_experiment(client.create_experiment("gone"))
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "gone")
    assert_clean_error(invoke("train", "convae", "--dataset", "digits", *TINY_SET, "--epochs", "1", "--log", "mlflow",
                              "--set", f"mlflow_uri={store}", "--out", tmp_path / "r"),
                       "experiment 'gone'", "is deleted", "mlflow experiments restore", "MLFLOW_EXPERIMENT_NAME")
    assert not (tmp_path / "r").exists()


def test_a_sqlite_path_that_is_not_a_database_is_refused_before_the_run_folder_exists(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n")
    assert_clean_error(invoke("train", "convae", "--dataset", "digits", *TINY_SET, "--epochs", "1", "--log", "mlflow",
                              "--set", f"mlflow_uri=sqlite:///{notes}", "--out", tmp_path / "r"),
                       "is not an SQLite database", "mlflow_uri=sqlite:///")
    assert not (tmp_path / "r").exists()


def test_a_database_store_whose_driver_is_missing_is_refused_with_what_to_install(tmp_path):
    import importlib.util

    if importlib.util.find_spec("psycopg") is not None:
        pytest.skip("psycopg is installed")
    assert_clean_error(invoke("train", "convae", "--dataset", "digits", *TINY_SET, "--epochs", "1", "--log", "mlflow",
                              "--set", "mlflow_uri=postgresql://db.invalid/zoo", "--out", tmp_path / "r"),
                       "needs the database driver 'psycopg'", 'pip install "psycopg[binary]"')
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------- finding 7: a logger left out at resume

def test_a_resume_that_leaves_out_a_logger_the_run_was_logged_to_says_so(tmp_path):
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    run = tmp_path / "run"
    train("--epochs", "1", "--log", "mlflow,tensorboard", "--set", f"mlflow_uri={store}", "--out", run)
    out = assert_ok(invoke("train", "--resume", run, "--epochs", "2", "--log", "tensorboard", "--no-progress"))
    assert "this run was logged to mlflow (mlflow.json in the run folder), which --log tensorboard leaves out" in out
    assert f"zoo train --resume {run} --log tensorboard,mlflow" in out
    out = assert_ok(invoke("train", "--resume", run, "--epochs", "3", "--log", "tensorboard,mlflow", "--no-progress"))
    assert "leaves out" not in out  # both again: no note, and MLflow gets the epoch it missed
    run_id = json.loads((run / "mlflow.json").read_text())["run_id"]
    assert [m.step for m in MlflowClient(store).get_metric_history(run_id, "val_loss")] == [1, 2, 3]


# ---------------------------------------------------------------- findings 5 and 6: a search's runs

SPACE3 = tiny_space(trials=3, epochs=1)


@pytest.mark.parametrize("timeout", [[], ["--timeout", "3600"]])  # a --timeout search stopped by Ctrl-C too
def test_a_stopped_search_is_killed_in_mlflow_and_each_end_adds_best_objective_at_the_count_of_trials(
        timeout, tmp_path, monkeypatch):
    import os
    import signal

    from mlflow.tracking import MlflowClient

    import zoo.search.worker as worker_module

    store = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    space = tmp_path / "s.toml"
    space.write_text(SPACE3)
    command = ["search", "convae", "--space", space, "--out", tmp_path / "st", "--log", "mlflow",
               "--set", f"mlflow_uri={store}", *timeout]
    real = worker_module.score

    def stopped_at_trial_2(worker, trial, *args):
        if trial.number == 2:
            os.kill(os.getpid(), signal.SIGINT)  # the user's Ctrl-C, during the third trial
        return real(worker, trial, *args)

    monkeypatch.setattr(worker_module, "score", stopped_at_trial_2)
    result = invoke(*command)
    assert result.exit_code == 130 and "search interrupted" in result.output, result.output
    monkeypatch.undo()
    client = MlflowClient(store)
    parent = json.loads((tmp_path / "st" / "mlflow.json").read_text())["run_id"]
    assert client.get_run(parent).info.status == "KILLED"
    assert [m.step for m in client.get_metric_history(parent, "best_objective")] == [2]
    assert_ok(invoke(*command))  # resumed: its third trial
    assert client.get_run(parent).info.status == "FINISHED"
    assert_ok(invoke(*command))  # ended again, with no new trial
    assert [m.step for m in client.get_metric_history(parent, "best_objective")] == [2, 3]
    assert [m.step for m in client.get_metric_history(parent, "best_trial")] == [2, 3]


def test_a_cross_validated_trial_logs_each_folds_curve_under_its_own_name(tmp_path):
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    space = tmp_path / "s.toml"
    space.write_text(tiny_space(trials=1, epochs=2))
    assert_ok(invoke("search", "convae", "--space", space, "--cv", "2", "--out", tmp_path / "st",
                     "--log", "mlflow,tensorboard", "--set", f"mlflow_uri={store}"))
    client = MlflowClient(store)
    parent = json.loads((tmp_path / "st" / "mlflow.json").read_text())["run_id"]
    child = client.search_runs([client.get_run(parent).info.experiment_id],
                               f"tags.mlflow.parentRunId = '{parent}'")[0]
    assert [m.step for m in client.get_metric_history(child.info.run_id, "val_loss/fold1")] == [1, 2]
    assert [m.step for m in client.get_metric_history(child.info.run_id, "val_loss/fold2")] == [1, 2]
    assert "val_loss" not in child.data.metrics  # no curve of the folds one after the other
    trial = tmp_path / "st" / "tensorboard" / "trial-0000"
    assert [s for s, _ in scalar_points(trial, "loss/val/fold2")] == [1, 2]
    assert scalar_points(trial, "loss/val") == []


def test_resuming_a_finished_search_rewrites_the_study_curve_into_one_events_file(tmp_path):
    space = tmp_path / "s.toml"
    space.write_text(tiny_space(trials=1, epochs=1))
    command = ["search", "convae", "--space", space, "--out", tmp_path / "st", "--log", "tensorboard"]
    assert_ok(invoke(*command))
    assert_ok(invoke(*command, "--trials", "2"))
    study = tmp_path / "st" / "tensorboard" / "study"
    assert len(list(study.glob("events.out.tfevents*"))) == 1
    assert [s for s, _ in scalar_points(study, "study/objective")] == [0, 1]


def test_a_val_evaluation_after_a_test_one_is_logged_as_eval_val(tmp_path):
    """eval.json keeps the test figures: a --split val evaluation after them was measured and not logged."""
    run = tmp_path / "vae"
    assert_ok(invoke("train", "vae", "--dataset", "digits", *TINY_SET, "--epochs", "2", "--log", "tensorboard",
                     "--out", run))
    assert_ok(invoke("eval", run, "--log", "tensorboard"))
    assert_ok(invoke("eval", run, "--split", "val", "--log", "tensorboard"))
    assert [s for s, _ in scalar_points(run / "tensorboard", "mse/eval-val")] == [2]
    assert [s for s, _ in scalar_points(run / "tensorboard", "mse/test")] == [2]  # both kept (own eval files)


def test_finetune_log_mlflow_puts_the_heads_test_accuracy_in_its_mlflow_run(tmp_path, digits_run):
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    head = tmp_path / "head"
    assert_ok(invoke("finetune", digits_run, "--epochs", "1", "--out", head, "--log", "mlflow",
                     "--set", f"mlflow_uri={store}", "--no-progress"))
    run = MlflowClient(store).get_run(json.loads((head / "mlflow.json").read_text())["run_id"])
    assert "test_accuracy" in run.data.metrics


def test_a_fresh_training_leaves_event_files_it_did_not_write_and_says_so(tmp_path):
    """An --out folder the user had, with their own tensorboard/ events: a fresh training deleted them."""
    run = tmp_path / "mine"
    (run / "tensorboard").mkdir(parents=True)
    theirs = run / "tensorboard" / "events.out.tfevents.123.host.1.0"
    theirs.write_bytes(b"the user's own curves")
    result = invoke("train", "convae", "--dataset", "digits", *TINY_SET, "--epochs", "1", "--log", "tensorboard",
                    "--out", run)
    said = assert_ok(result)
    assert theirs.read_bytes() == b"the user's own curves"
    assert "holds TensorBoard event files no training of" in said and "they stay" in said, said


@pytest.mark.parametrize("uri", ["postgresql+nosuchdriver://localhost/db", "mysql://host:notaport/db"])
def test_a_mistyped_database_uri_is_one_clear_refusal_before_training(uri, tmp_path):
    said = assert_clean_error(invoke("train", "convae", "--dataset", "digits", *TINY_SET, "--epochs", "1",
                                     "--log", "mlflow", "--set", f"mlflow_uri={uri}", "--out", tmp_path / "r"),
                              "is not a database URI MLflow can use")
    assert "Check the URI" in said and not (tmp_path / "r" / "model.safetensors").exists()


def test_a_resume_keeps_the_evaluation_figures_an_earlier_zoo_wrote_into_the_runs_events(tmp_path):
    """An earlier zoo's `zoo eval --log tensorboard` wrote into an events file with no suffix of its own: a resume
    deleted it with the training's."""
    from torch.utils.tensorboard import SummaryWriter

    run = tmp_path / "run"
    assert_ok(invoke("train", "convae", "--dataset", "digits", *TINY_SET, "--epochs", "2", "--log", "tensorboard",
                     "--out", run))
    with SummaryWriter(str(run / "tensorboard")) as w:  # as zoo eval --log wrote it before 2026-12-07
        w.add_scalar("mse/test", 0.25, 2)
    assert_ok(invoke("train", "--resume", run, "--epochs", "3", "--no-progress"))
    assert scalar_points(run / "tensorboard", "mse/test") == [(2, 0.25)]
    assert [s for s, _ in scalar_points(run / "tensorboard", "loss/train")] == [1, 2, 3]


def test_a_resume_keeps_the_pictures_of_a_last_epoch_between_plot_every_epochs(tmp_path):
    """Three epochs with plot_every 2 end with pictures at 2 and 3: a resume kept 2 only (3 is no plot_every
    epoch, so it was neither carried nor drawn again)."""
    run = tmp_path / "run"
    assert_ok(invoke("train", "convae", "--dataset", "digits", *TINY_SET, "--epochs", "3", "--set", "plot_every=2",
                     "--log", "tensorboard", "--out", run))
    steps = sorted({e.step for e in raw_events(run / "tensorboard") if e.HasField("summary")
                    for v in e.summary.value if v.HasField("image")})
    assert steps == [2, 3], steps
    assert_ok(invoke("train", "--resume", run, "--epochs", "4", "--no-progress"))
    steps = sorted({e.step for e in raw_events(run / "tensorboard") if e.HasField("summary")
                    for v in e.summary.value if v.HasField("image")})
    assert steps == [2, 3, 4], steps


def test_a_resume_stopped_before_its_end_leaves_the_run_its_resumed_hparams(tmp_path):
    """The old files, which held the finished run's hparams, go when the resume opens: a stop before its end left
    none, and the run left TensorBoard's HParams dashboard."""
    import zoo

    class StopAtEpoch3(zoo.Callback):
        def on_epoch_end(self, trainer, epoch, record):
            if epoch == 3:
                raise KeyboardInterrupt

    run = tmp_path / "run"
    train("--epochs", "2", "--log", "tensorboard", "--out", run)
    with pytest.raises(KeyboardInterrupt):
        zoo.train(resume=run, epochs=4, progress=False, log=lambda s: None, callbacks=[StopAtEpoch3()])
    sessions = hparams_sessions(run / "tensorboard")
    assert len(sessions) == 1 and sessions[0]["epochs"] == 4, sessions
