"""The MLflow logger against a real `mlflow server` (SQLite backend, a local artifact store, a loopback
port), read back with MLflow's own client."""

from __future__ import annotations

import json
import math
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import TINY_SET, tiny_space, assert_clean_error, assert_ok, invoke, read_metrics

pytest.importorskip("mlflow", reason='the mlflow extra is not installed (pip install "zoo[mlflow]")')

from mlflow import environment_variables as mlflow_env  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real tracking server for this module's tests; its URL."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log = (root / "server.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
                             "--artifacts-destination", str(root / "artifacts"), "--workers", "1"],
                            stdout=log, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=2):
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (root / "server.log").read_text()
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def train(*args) -> str:
    return assert_ok(invoke("train", "convae", "--dataset", "digits", *TINY_SET, *args))


def mlflow_run(run_folder: Path) -> str:
    return json.loads((run_folder / "mlflow.json").read_text())["run_id"]


def test_a_training_is_one_mlflow_run_with_its_params_epoch_metrics_and_safetensors_artifacts(server, tmp_path):
    folder = tmp_path / "ae"
    train("--epochs", "2", "--set", "latent_dim=5", "--log", "mlflow", "--set", f"mlflow_uri={server}", "--out", folder)
    client = MlflowClient(server)
    run = client.get_run(mlflow_run(folder))
    assert run.info.status == "FINISHED" and run.info.run_name == "ae"
    assert run.data.params["model"] == "convae" and run.data.params["latent_dim"] == "5"
    assert run.data.params["epochs"] == "2" and run.data.params["loggers"] == "['mlflow']"
    rows = read_metrics(folder)
    for key in ("train_loss", "val_loss", "lr", "images_per_s"):
        history = client.get_metric_history(run.info.run_id, key)
        assert [(m.step, m.value) for m in history] == [(r["epoch"], pytest.approx(r[key])) for r in rows]
    assert math.isclose(run.data.metrics["best_val_loss"], min(r["val_loss"] for r in rows))
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"model.safetensors", "config.json", "README.md", "metrics.jsonl"} <= artifacts
    assert not any(a.endswith((".pkl", ".pt", ".pth")) or a == "MLmodel" for a in artifacts)  # never a pickle
    copy = client.download_artifacts(run.info.run_id, "model.safetensors", str(tmp_path))
    assert Path(copy).read_bytes() == (folder / "model.safetensors").read_bytes()


def test_resume_goes_on_in_the_same_mlflow_run_without_a_repeated_epoch(server, tmp_path):
    folder = tmp_path / "ae"
    train("--epochs", "2", "--log", "mlflow", "--set", f"mlflow_uri={server}", "--out", folder)
    first = mlflow_run(folder)
    out = assert_ok(invoke("train", "--resume", folder, "--epochs", "4", "--no-progress"))
    assert mlflow_run(folder) == first
    client = MlflowClient(server)
    # MLflow keeps a param's first value: the resumed epochs are a tag, and said (they were silently stale)
    assert client.get_run(first).data.params["epochs"] == "2"
    assert client.get_run(first).data.tags["zoo.resumed.epochs"] == "4" and "epochs=4 (was 2)" in out
    assert [m.step for m in client.get_metric_history(first, "val_loss")] == [1, 2, 3, 4]
    assert client.get_run(first).info.status == "FINISHED"
    runs = client.search_runs([client.get_run(first).info.experiment_id],
                              filter_string=f"tags.`zoo.run_folder` = '{folder.absolute()}'")
    assert [r.info.run_id for r in runs] == [first]  # one MLflow run for the folder, not one per session


def test_the_tracking_uri_comes_from_the_environment_when_not_set(server, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "from-env")
    folder = tmp_path / "env-run"
    train("--epochs", "1", "--log", "mlflow", "--out", folder)
    client = MlflowClient(server)
    run = client.get_run(mlflow_run(folder))
    assert client.get_experiment(run.info.experiment_id).name == "from-env"


def test_an_unreachable_server_leaves_the_run_complete_and_says_what_was_not_logged(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    folder = tmp_path / "ae"
    start = time.monotonic()
    out = train("--epochs", "2", "--log", "mlflow", "--set", f"mlflow_uri={dead}", "--out", folder)
    assert time.monotonic() - start < 60  # no minutes of retries
    assert f"cannot reach the MLflow server at {dead}" in out
    assert "not logged there" in out and "metrics.jsonl" in out
    assert [r["epoch"] for r in read_metrics(folder)] == [1, 2]
    assert (folder / "model.safetensors").is_file() and (folder / "README.md").is_file()
    assert not (folder / "mlflow.json").exists()


SPACE = tiny_space(trials=2, epochs=2)


def test_a_search_is_a_parent_run_with_each_trial_a_child_run(server, tmp_path):
    (tmp_path / "space.toml").write_text(SPACE)
    study = tmp_path / "study"
    search = ("search", "convae", "--space", tmp_path / "space.toml", "--out", study, "--seed", "0",
              "--log", "mlflow", "--set", f"mlflow_uri={server}")
    assert_ok(invoke(*search))
    client = MlflowClient(server)
    parent_id = json.loads((study / "mlflow.json").read_text())["run_id"]
    parent = client.get_run(parent_id)
    summary = json.loads((study / "summary.json").read_text())
    assert parent.info.status == "FINISHED" and parent.data.params["model"] == "convae"
    # every key the trials share, defaults too (which bound an IWAE's val_loss is), not the searched one
    assert parent.data.params["latent_dim"] == "4" and parent.data.params["loss"] == "mse" and "lr" not in \
        parent.data.params
    assert parent.data.metrics["best_trial"] == summary["best"]["number"]
    artifacts = {a.path for a in client.list_artifacts(parent_id)}
    assert {"summary.json", "trials.csv", "best.toml", "space.toml"} <= artifacts

    def children():
        runs = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")
        return {int(r.data.tags["zoo.trial"]): r for r in runs}

    kids = children()
    assert sorted(kids) == [0, 1]
    best = kids[summary["best"]["number"]]
    assert float(best.data.params["lr"]) == pytest.approx(summary["best"]["values"]["lr"])
    assert best.data.metrics["objective"] == pytest.approx(summary["best"]["value"])
    # the trial's result by its metric's name (a likelihood model's "loss" is the bound it trains on)
    assert best.data.metrics["val_loss_best"] == pytest.approx(summary["best"]["val_loss_best"])
    assert "loss" not in best.data.metrics
    curve = client.get_metric_history(best.info.run_id, "val_loss")
    assert [m.step for m in curve] == [1, 2]
    # Resumed with more trials: the two logged ones stay as they are, the new one joins the same parent.
    assert_ok(invoke(*search, "--trials", "3"))
    assert json.loads((study / "mlflow.json").read_text())["run_id"] == parent_id
    again = children()
    assert sorted(again) == [0, 1, 2]
    assert again[0].info.run_id == kids[0].info.run_id


def test_two_searches_on_one_study_log_each_trial_once(tmp_path):
    """Each process read the parent's children once, then logged every trial missing from its own set: the
    other process's trials got a second child run."""
    from zoo.runs.config import TrainConfig
    from zoo.tracking import StudyView, TrialView, study_loggers

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    train = TrainConfig(loggers="mlflow", mlflow_uri=store)
    trial = lambda n: TrialView(n, "complete", 0.5 - n / 10, {"lr": 0.01}, {"val_loss_best": 0.5}, {1: 0.6})  # noqa
    view = lambda n: StudyView("s", tmp_path / "study", "convae", "val_loss", {}, [trial(i) for i in range(n)],  # noqa
                               n - 1, False)
    (tmp_path / "study").mkdir()
    first, second = study_loggers(train, print)[0], study_loggers(train, print)[0]
    first.log_study(view(1))
    second.log_study(view(2))  # the other process: its own trial 1
    first.log_study(view(3))
    client = MlflowClient(store)
    parent = json.loads((tmp_path / "study" / "mlflow.json").read_text())["run_id"]
    kids = client.search_runs([client.get_run(parent).info.experiment_id], f"tags.mlflow.parentRunId = '{parent}'")
    assert sorted(int(r.data.tags["zoo.trial"]) for r in kids) == [0, 1, 2]


def test_a_missing_mlflow_package_is_named_in_one_line_with_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if it were not installed
    out = assert_clean_error(invoke("train", "convae", "--dataset", "digits", *TINY_SET, "--log", "mlflow",
                                    "--out", tmp_path / "r"),
                             "--log mlflow needs the 'mlflow' package, which is not installed",
                             'pip install "zoo[mlflow]"')
    assert len([line for line in out.splitlines() if line.strip()]) <= 2
    assert not (tmp_path / "r").exists()


def test_a_local_tracking_store_that_cannot_be_written_is_refused_before_the_run_folder_exists(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = assert_clean_error(invoke("train", "convae", "--dataset", "digits", *TINY_SET, "--log", "mlflow",
                                    "--set", f"mlflow_uri=sqlite:///{blocker}/mlflow.db", "--out", tmp_path / "r"),
                             "cannot write the MLflow tracking store", "is not a folder")
    assert "mlflow_uri" in out
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("uri, fragment", [("htp://127.0.0.1:5000", "no tracking store for 'htp:'"),
                                            ("http://", "names no server"),
                                            ("sqlite:///", "an SQLite database in memory"),
                                            ("sqlite:///:memory:", "everything logged to it is lost")])
def test_a_tracking_uri_no_store_answers_to_is_refused_before_the_run_folder_exists(tmp_path, uri, fragment):
    out = assert_clean_error(invoke("train", "convae", "--dataset", "digits", *TINY_SET, "--log", "mlflow",
                                    "--set", f"mlflow_uri={uri}", "--out", tmp_path / "r"), fragment)
    assert "mlflow_uri" in out
    assert not (tmp_path / "r").exists()


def test_a_local_sqlite_store_holds_the_run_without_a_server(tmp_path):
    store = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    folder = tmp_path / "ae"
    train("--epochs", "2", "--log", "mlflow", "--set", f"mlflow_uri={store}", "--out", folder)
    client = MlflowClient(store)
    run = client.get_run(mlflow_run(folder))
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")] == [1, 2]


def test_a_relative_sqlite_store_is_kept_absolute_so_a_resume_from_elsewhere_goes_on_in_the_same_run(
        tmp_path, monkeypatch):
    train("--epochs", "1", "--log", "mlflow", "--set", "mlflow_uri=sqlite:///store/mlflow.db", "--out", "runs/ae")
    store = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    assert json.loads((tmp_path / "runs" / "ae" / "config.json").read_text())["train"]["mlflow_uri"] == store
    first = mlflow_run(tmp_path / "runs" / "ae")
    monkeypatch.chdir(tmp_path / "runs")
    out = assert_ok(invoke("train", "--resume", "ae", "--epochs", "2", "--no-progress"))
    assert "new run" not in out and mlflow_run(tmp_path / "runs" / "ae") == first
    assert [m.step for m in MlflowClient(store).get_metric_history(first, "val_loss")] == [1, 2]
    assert not (tmp_path / "runs" / "store").exists()  # no second store beside the working directory


def test_a_resume_whose_mlflow_run_is_not_in_the_store_says_it_logs_to_a_new_run(tmp_path):
    folder = tmp_path / "ae"
    train("--epochs", "1", "--log", "mlflow", "--set", f"mlflow_uri=sqlite:///{tmp_path / 'a' / 'm.db'}",
          "--out", folder)
    first = mlflow_run(folder)
    other = f"sqlite:///{tmp_path / 'b' / 'm.db'}"
    out = assert_ok(invoke("train", "--resume", folder, "--epochs", "2", "--set", f"mlflow_uri={other}",
                           "--no-progress"))
    assert f"names run {first}" in out and "logging to a new run" in out
    assert [m.step for m in MlflowClient(other).get_metric_history(mlflow_run(folder), "val_loss")] == [1, 2]


def test_zoo_eval_log_mlflow_adds_the_test_figures_and_eval_json_to_the_runs_own_mlflow_run(tmp_path):
    store = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    folder = tmp_path / "vae"
    assert_ok(invoke("train", "vae", "--dataset", "digits", *TINY_SET, "--epochs", "2", "--log", "mlflow", "--set",
                     f"mlflow_uri={store}", "--out", folder))
    out = assert_ok(invoke("eval", folder, "--iwae-k", "3", "--log", "mlflow"))
    assert "mlflow: the evaluation is logged" in out
    client = MlflowClient(store)
    run = client.get_run(mlflow_run(folder))  # the training's own run, not a new one
    measured = json.loads((folder / "eval.json").read_text())
    assert run.data.metrics["test_nll_iwae_k3_nats"] == pytest.approx(measured["metrics"]["nll_iwae_k3_nats"])
    assert run.data.metrics["test_nll_iwae_k3_nats_se"] == pytest.approx(
        measured["standard_errors"]["nll_iwae_k3_nats"])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "test_mse")] == [2]  # the last epoch
    assert "eval.json" in {a.path for a in client.list_artifacts(run.info.run_id)}
    assert len(client.search_runs([run.info.experiment_id])) == 1


SECRET = "s3cretTOKEN"


@pytest.mark.parametrize("uri, hint", [
    (f"http://alice:{SECRET}@127.0.0.1:5000", "MLFLOW_TRACKING_USERNAME and $MLFLOW_TRACKING_PASSWORD"),
    (f"postgresql://alice:{SECRET}@db.example/mlflow", "$MLFLOW_TRACKING_URI instead (never stored)"),
    (f"http://alice.example:5000/?password={SECRET}", "MLFLOW_TRACKING_USERNAME and $MLFLOW_TRACKING_PASSWORD")])
def test_a_mlflow_uri_with_credentials_is_refused_before_the_run_folder_exists_and_not_echoed(tmp_path, uri, hint):
    out = assert_clean_error(invoke("train", "convae", "--dataset", "digits", *TINY_SET, "--log", "mlflow",
                                    "--set", f"mlflow_uri={uri}", "--out", tmp_path / "r"),
                             "carries a user name or password", hint)
    assert SECRET not in out and "alice:" not in out
    assert not (tmp_path / "r").exists()


def test_credentials_in_the_environments_tracking_uri_reach_no_run_file_and_no_message(server, tmp_path, monkeypatch):
    # The test server takes any credentials: the run is logged with them, and they are shown nowhere.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.replace("http://", f"http://alice:{SECRET}@"))
    folder = tmp_path / "ae"
    out = train("--epochs", "1", "--log", "mlflow", "--out", folder)
    assert "mlflow: logging to run" in out and "http://***@127.0.0.1" in out
    assert SECRET not in out
    for path in folder.rglob("*"):
        assert not path.is_file() or SECRET.encode() not in path.read_bytes(), path
    saved = json.loads((folder / "mlflow.json").read_text())
    assert saved["tracking_uri"] == server.replace("http://", "http://***@")
    assert MlflowClient(server).get_run(saved["run_id"]).info.status == "FINISHED"
    # Resumed: the stored (redacted) URI names the same store, so the same MLflow run goes on.
    assert SECRET not in assert_ok(invoke("train", "--resume", folder, "--epochs", "2", "--no-progress"))
    assert json.loads((folder / "mlflow.json").read_text())["run_id"] == saved["run_id"]


def test_an_unreachable_server_with_credentials_in_the_environment_is_named_without_them(tmp_path, monkeypatch):
    dead = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://alice:{SECRET}@{dead}")
    out = train("--epochs", "1", "--log", "mlflow", "--out", tmp_path / "ae")
    assert f"cannot reach the MLflow server at http://***@{dead} (" in out
    assert "Name or service not known" not in out  # the host is the literal address, not alice:...@address
    assert SECRET not in out


@pytest.mark.skipif(not hasattr(mlflow_env, "MLFLOW_ALLOW_FILE_STORE"), reason="this MLflow still opens file stores")
@pytest.mark.parametrize("form", ["folder", "file:"])
def test_a_file_store_the_installed_mlflow_refuses_is_refused_before_the_run_folder_exists(tmp_path, monkeypatch,
                                                                                           form):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    store = tmp_path / "mlstore"
    uri = str(store) if form == "folder" else store.as_uri()
    assert_clean_error(invoke("train", "convae", "--dataset", "digits", *TINY_SET, "--log", "mlflow",
                              "--set", f"mlflow_uri={uri}", "--out", tmp_path / "r"),
                       "is a file store", "sqlite:///PATH/mlflow.db", "MLFLOW_ALLOW_FILE_STORE=true")
    assert not (tmp_path / "r").exists() and not store.exists()


def test_a_sqlite_store_keeps_the_artifacts_of_the_experiment_zoo_creates_beside_its_database(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "beside")
    db = tmp_path / "store" / "mlflow.db"
    out = train("--epochs", "1", "--log", "mlflow", "--set", f"mlflow_uri=sqlite:///{db}", "--out", tmp_path / "ae")
    artifacts = tmp_path / "store" / "mlartifacts"
    assert f"artifacts in {artifacts.as_uri()}" in out
    run_id = mlflow_run(tmp_path / "ae")
    assert (artifacts / run_id / "artifacts" / "model.safetensors").is_file()
    assert not (tmp_path / "mlruns").exists()  # not MLflow's default, in whatever folder zoo ran in


def test_overwrite_removes_the_old_runs_mlflow_json_so_the_new_run_is_a_new_mlflow_run(tmp_path):
    store = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    folder = tmp_path / "ae"
    train("--epochs", "1", "--log", "mlflow", "--set", f"mlflow_uri={store}", "--out", folder)
    old = mlflow_run(folder)
    train("--epochs", "1", "--out", folder, "--overwrite")
    assert not (folder / "mlflow.json").exists()
    train("--epochs", "1", "--log", "mlflow", "--set", f"mlflow_uri={store}", "--out", folder, "--overwrite")
    assert mlflow_run(folder) != old
    client = MlflowClient(store)
    assert [m.step for m in client.get_metric_history(mlflow_run(folder), "val_loss")] == [1]
    assert client.get_run(old).info.status == "FINISHED"  # the old MLflow run stays as it was


def test_a_ctrl_c_while_mlflow_sets_up_a_new_sqlite_store_lands_after_it_and_leaves_the_store_usable(tmp_path,
                                                                                                       monkeypatch):
    """MLflow migrates a new SQLite store to its schema when its client opens it: cut in two, the store can no
    longer be opened (`table _alembic_tmp_experiments already exists`)."""
    import os
    import signal

    import mlflow.tracking

    store = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    real = mlflow.tracking.MlflowClient.__init__

    def interrupted_midway(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # the user's Ctrl-C, as the store is being made
        real(self, *args, **kwargs)

    monkeypatch.setattr(mlflow.tracking.MlflowClient, "__init__", interrupted_midway)
    from plugins.mlflow_logger import client_for

    with pytest.raises(KeyboardInterrupt):
        client_for(store)
    with sqlite3.connect(tmp_path / "store" / "mlflow.db") as db:  # the interrupt came once the store was made
        tables = {row[0] for row in db.execute("select name from sqlite_master where type = 'table'")}
    assert {"experiments", "runs", "metrics"} <= tables and not any(t.startswith("_alembic_tmp") for t in tables)
    monkeypatch.undo()
    assert MlflowClient(store).get_experiment_by_name("Default") is not None  # and it opens
