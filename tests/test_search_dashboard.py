"""A study `zoo search` writes opens in optuna-dashboard (issue 16).

A real four-trial search on digits, written once to the default storage (the study folder's
journal.log) and once to a SQLite URL (`--storage sqlite:///...`), is served by optuna-dashboard's
own WSGI app (`optuna_dashboard.wsgi`, given the same string a user gives the `optuna-dashboard`
command, so the storage is opened by the dashboard's own `get_storage`) on a loopback port, and read
back through the dashboard's HTTP API, the routes its web page fetches:

- GET /api/studies               the studies of the storage (study_summaries)
- GET /api/studies/<study_id>    one study: its trials (state, values, params, intermediate values,
                                 user attrs), best trials and the union search space
"""

from __future__ import annotations

import csv
import json
import threading
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from conftest import SEARCH_FIXED, assert_ok, invoke

pytest.importorskip("optuna", reason="zoo search needs optuna (pip install \"zoo[search]\")")
optuna_dashboard = pytest.importorskip(
    "optuna_dashboard", reason="optuna-dashboard is not installed (pip install \"zoo[dashboard]\")")

STUDY = "dash"

# Random draws seeded by (0, trial number): trials 0 and 2 complete, 1 and 3 draw stride [2, 8, 2],
# which collapses the digits and is pruned as an invalid configuration, so both states are served.
SPACE = """
[search]
strategy = "random"
trials = 4
seed = 0
""" + SEARCH_FIXED + """epochs = 1

[params]
lr = { low = 1e-4, high = 1e-2, log = true }
latent_dim = { low = 2, high = 6 }
optimizer = { choices = ["adam", "sgd"] }
stride = { elements = [{ choices = [2] }, { choices = [2, 8] }, { choices = [2] }] }
"""

# The Optuna parameters the space above defines (a list element is its own parameter, `name[i]`).
PARAMS = {"lr", "latent_dim", "optimizer", "stride[0]", "stride[1]", "stride[2]"}


@pytest.fixture(scope="module")
def searches(tmp_path_factory) -> dict[str, tuple[str, Path]]:
    """{storage kind: (what `optuna-dashboard` is given, the study folder)} of one search per storage."""
    root = tmp_path_factory.mktemp("dashboard")
    space = root / "space.toml"
    space.write_text(SPACE)
    assert_ok(invoke("search", "convae", "--space", space, "--study", STUDY, "--out", root / "journal"))
    sqlite_url = f"sqlite:///{root / 'study.db'}"
    assert_ok(invoke("search", "convae", "--space", space, "--study", STUDY, "--out", root / "sqlite",
                     "--storage", sqlite_url))
    return {"journal": (str(root / "journal" / "journal.log"), root / "journal"),
            "sqlite": (sqlite_url, root / "sqlite")}


class _Quiet(WSGIRequestHandler):
    def log_message(self, format, *args):  # requests are not logged to the test's output
        pass


@contextmanager
def dashboard(storage: str):
    """optuna-dashboard's WSGI app on the storage, served on a free loopback port in a thread."""
    app = optuna_dashboard.wsgi(storage)
    server = make_server("127.0.0.1", 0, app, server_class=WSGIServer, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        assert not thread.is_alive(), "the dashboard's server thread did not stop"


@pytest.fixture(scope="module", params=["journal", "sqlite"])
def served(request, searches):
    """(storage kind, the study folder, /api/studies, /api/studies/<id>) read from a running dashboard."""
    storage, study_dir = searches[request.param]
    with dashboard(storage) as base:
        studies = get_json(f"{base}/api/studies")
        ids = [s["study_id"] for s in studies["study_summaries"] if s["study_name"] == STUDY]
        assert ids, f"the dashboard on {storage} lists no study '{STUDY}': {studies}"
        detail = get_json(f"{base}/api/studies/{ids[0]}")
    return request.param, study_dir, studies, detail


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200, url
        return json.loads(response.read().decode())


def csv_rows(study_dir: Path) -> dict[int, dict[str, str]]:
    with open(study_dir / "trials.csv", newline="") as fh:
        return {int(r["number"]): r for r in csv.DictReader(fh)}


def attrs(trial: dict) -> dict[str, str]:
    return {a["key"]: a["value"] for a in trial["user_attrs"]}


def test_dashboard_lists_the_study_zoo_wrote_by_name_as_a_minimisation(served):
    _, _, studies, detail = served
    summaries = studies["study_summaries"]
    assert [s["study_name"] for s in summaries] == [STUDY]
    assert summaries[0]["directions"] == ["minimize"]
    assert json.loads(attrs(summaries[0])["zoo"])["model"] == "convae"
    assert detail["name"] == STUDY and detail["directions"] == ["minimize"]


def test_dashboard_shows_every_trial_with_the_state_and_value_zoo_recorded(served):
    _, study_dir, _, detail = served
    rows = csv_rows(study_dir)
    trials = {t["number"]: t for t in detail["trials"]}
    assert sorted(trials) == sorted(rows) == [0, 1, 2, 3]
    assert {t["state"] for t in trials.values()} == {"Complete", "Pruned"}  # the seed draws both
    for n, row in rows.items():
        trial = trials[n]
        assert trial["state"] == row["state"].capitalize(), n
        if row["state"] == "complete":
            assert trial["values"] == [float(row["value"])], n
            assert float(attrs(trial)["loss"]) == float(row["val_loss_best"]), n
        else:
            assert "values" not in trial, n
            assert attrs(trial)["pruned_reason"] == row["note"], n
            assert row["note"].startswith("invalid configuration")
    summary = json.loads((study_dir / "summary.json").read_text())
    assert [t["number"] for t in detail["best_trials"]] == [summary["best"]["number"]]


def test_dashboard_shows_the_search_spaces_parameter_names_ranges_and_each_trials_values(served):
    _, study_dir, _, detail = served
    space = {p["name"]: p["distribution"] for p in detail["union_search_space"]}
    assert set(space) == PARAMS
    assert space["lr"] == {"type": "FloatDistribution", "low": 1e-4, "high": 1e-2, "step": None, "log": True}
    assert space["latent_dim"] == {"type": "IntDistribution", "low": 2, "high": 6, "step": 1, "log": False}
    assert space["optimizer"]["type"] == "CategoricalDistribution"
    assert {c["value"] for c in space["optimizer"]["choices"]} == {"adam", "sgd"}
    rows = csv_rows(study_dir)
    for trial in detail["trials"]:
        params = {p["name"]: p["param_external_value"] for p in trial["params"]}
        assert set(params) == PARAMS, trial["number"]
        row = rows[trial["number"]]
        assert float(params["lr"]) == float(row["lr"])
        assert params["latent_dim"] == row["latent_dim"] and params["optimizer"] == row["optimizer"]
        assert [int(params[f"stride[{i}]"]) for i in range(3)] == json.loads(row["stride"])


def test_dashboard_shows_the_epoch_curve_zoo_reported_to_the_pruner(served):
    _, _, _, detail = served
    assert detail["has_intermediate_values"] is True
    for trial in detail["trials"]:
        if trial["state"] == "Complete":  # one epoch: its validation loss, at step 1, is the objective
            assert trial["intermediate_values"] == [{"step": 1, "value": trial["values"][0]}]
        else:  # pruned before it trained
            assert trial["intermediate_values"] == []
