"""The TensorBoard logger, on the real components: event files read back with TensorBoard's own reader,
and a real `tensorboard` server on a loopback port answering for the scalars over its HTTP API."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from conftest import TINY_SET, tiny_space, assert_clean_error, assert_ok, invoke, read_metrics

pytest.importorskip("tensorboard", reason='the tensorboard extra is not installed (pip install "zoo[tensorboard]")')

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins.hparams import plugin_data_pb2  # noqa: E402


def events(folder: Path) -> EventAccumulator:
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def steps(acc: EventAccumulator, tag: str) -> list[int]:
    return [e.step for e in acc.Scalars(tag)]


def train(*args: str) -> str:
    return assert_ok(invoke("train", "convae", "--dataset", "digits", *TINY_SET, *args))


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory):
    """Three epochs with a preview grid every epoch, logged to TensorBoard."""
    run = tmp_path_factory.mktemp("tb") / "run"
    train("--epochs", "3", "--log", "tensorboard", "--set", "plot_every=2", "--out", run)
    return run


def test_every_number_of_every_metrics_row_is_a_scalar_at_its_epoch(logged_run):
    acc = events(logged_run / "tensorboard")
    rows = read_metrics(logged_run)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for row in rows:
        for key, value in row.items():
            if key in ("epoch", "best"):
                continue
            tag = {"train_loss": "loss/train", "val_loss": "loss/val", "val_mse": "mse/val"}.get(key, key)
            logged = {e.step: e.value for e in acc.Scalars(tag)}
            assert math.isclose(logged[row["epoch"]], value, rel_tol=1e-6), (key, logged, value)
    assert steps(acc, "loss/val") == [1, 2, 3]  # each epoch once


def test_preview_grids_are_logged_every_plot_every_epochs_and_at_the_end(logged_run):
    acc = events(logged_run / "tensorboard")
    assert set(acc.Tags()["images"]) == {"images/original", "images/reconstruction"}
    shown = acc.Images("images/reconstruction")
    assert [e.step for e in shown] == [2, 3]  # plot_every=2, then the best weights after the last epoch
    assert shown[0].width > shown[0].height > 28  # a row of 16 images of 28 px with their padding


def test_the_config_is_the_runs_hparams_with_its_final_metrics(logged_run):
    acc = events(logged_run / "tensorboard")
    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    config = json.loads((logged_run / "config.json").read_text())
    assert hparams["model"].string_value == "convae"
    assert hparams["epochs"].number_value == 3
    assert hparams["hidden"].string_value == str(config["config"]["hidden"])
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert "final/best_val_loss" in {m.name.tag for m in experiment.metric_infos}
    best = min(r["val_loss"] for r in read_metrics(logged_run))
    assert math.isclose(acc.Scalars("final/best_val_loss")[-1].value, best, rel_tol=1e-6)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_a_tensorboard_server_serves_the_runs_scalars_over_http(logged_run, tmp_path):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(logged_run.parent),
                               "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=(tmp_path / "tb.log").open("w"))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                tags = get_json(f"{base}/data/plugin/scalars/tags")
                if tags:
                    break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "tb.log").read_text()
            time.sleep(0.5)
        run = "run/tensorboard"
        assert {"loss/train", "loss/val", "lr", "images_per_s"} <= set(tags[run])
        query = urllib.parse.urlencode({"run": run, "tag": "loss/val"})
        served = get_json(f"{base}/data/plugin/scalars/scalars?{query}")  # [wall_time, step, value] rows
        expected = [(r["epoch"], r["val_loss"]) for r in read_metrics(logged_run)]
        assert [(s, pytest.approx(v, rel=1e-6)) for _, s, v in served] == expected
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_resume_writes_the_run_anew_into_the_same_event_folder_without_repeating_an_epoch(tmp_path):
    run = tmp_path / "run"
    train("--epochs", "2", "--log", "tensorboard", "--out", run)
    assert_ok(invoke("train", "--resume", run, "--epochs", "4", "--no-progress"))
    acc = events(run / "tensorboard")
    assert sorted(steps(acc, "loss/train")) == [1, 2, 3, 4]  # each epoch once (files of one second: any order)
    assert len(list((run / "tensorboard").glob("events.out.tfevents*"))) == 1  # no old file for a loader to mix in


def test_a_logger_turned_on_at_resume_logs_the_epochs_before_it_too(tmp_path):
    run = tmp_path / "run"
    train("--epochs", "2", "--out", run)
    assert not (run / "tensorboard").exists()
    assert_ok(invoke("train", "--resume", run, "--epochs", "3", "--log", "tensorboard", "--no-progress"))
    assert steps(events(run / "tensorboard"), "loss/val") == [1, 2, 3]
    assert json.loads((run / "config.json").read_text())["train"]["loggers"] == ["tensorboard"]


def test_a_new_run_hides_the_events_an_old_run_of_the_same_name_left(tmp_path):
    shared = tmp_path / "tb"
    run = tmp_path / "run"
    train("--epochs", "3", "--log", "tensorboard", "--set", f"tensorboard_dir={shared}", "--out", run)
    train("--epochs", "2", "--log", "tensorboard", "--set", f"tensorboard_dir={shared}", "--out", run, "--overwrite")
    assert steps(events(shared / "run"), "loss/val") == [1, 2]  # epoch 3 of the old run purged


def test_overwrite_removes_the_old_runs_event_folder_also_when_the_new_run_does_not_log(tmp_path):
    run = tmp_path / "runs" / "watched"
    train("--epochs", "2", "--log", "tensorboard", "--out", run)
    assert steps(events(run / "tensorboard"), "loss/val") == [1, 2]
    out = train("--epochs", "1", "--out", run, "--overwrite")
    assert not (run / "tensorboard").exists()  # `tensorboard --logdir runs` shows no replaced run's curves
    assert "kept" not in out  # nothing of the old run is left behind
    assert [r["epoch"] for r in read_metrics(run)] == [1]


def test_a_tensorboard_dir_gathers_each_run_under_its_folder_name(tmp_path):
    shared = tmp_path / "all-runs"
    for name in ("a", "b"):
        train("--epochs", "1", "--log", "tensorboard", "--set", f"tensorboard_dir={shared}", "--out", tmp_path / name)
    assert sorted(p.name for p in shared.iterdir()) == ["a", "b"]
    assert not (tmp_path / "a" / "tensorboard").exists()
    assert steps(events(shared / "b"), "loss/val") == [1]


def test_a_tensorboard_dir_refuses_a_second_run_of_the_same_folder_name_before_it_trains(tmp_path):
    """runs/A/exp and runs/B/exp both logged into DIR/exp: TensorBoard showed one run, B's hiding A's curves."""
    shared = tmp_path / "all-runs"
    logged = ["--log", "tensorboard", "--set", f"tensorboard_dir={shared}"]
    train("--epochs", "1", *logged, "--out", tmp_path / "A" / "exp")
    out = assert_clean_error(invoke("train", "convae", "--dataset", "digits", *TINY_SET, "--epochs", "1", *logged,
                                    "--out", tmp_path / "B" / "exp"),
                             f"holds the TensorBoard events of another run ({tmp_path / 'A' / 'exp'})", "--out")
    assert not (tmp_path / "B" / "exp").exists(), out
    assert_ok(invoke("train", "--resume", tmp_path / "A" / ".." / "A" / "exp", "--epochs", "2", "--no-progress"))
    assert sorted(steps(events(shared / "exp"), "loss/val")) == [1, 2]  # its own, by another spelling of its path
    (tmp_path / "moved").mkdir()
    (tmp_path / "A" / "exp").rename(tmp_path / "moved" / "exp")  # the same run, moved: its events go on
    assert_ok(invoke("train", "--resume", tmp_path / "moved" / "exp", "--epochs", "3", "--no-progress"))
    assert sorted(steps(events(shared / "exp"), "loss/val")) == [1, 2, 3]


def test_a_relative_tensorboard_dir_is_kept_absolute_so_a_resume_from_elsewhere_appends_to_it(tmp_path,
                                                                                              monkeypatch):
    train("--epochs", "1", "--log", "tensorboard", "--set", "tensorboard_dir=tb", "--out", "runs/a")
    assert json.loads((tmp_path / "runs" / "a" / "config.json").read_text())["train"]["tensorboard_dir"] == \
        str(tmp_path / "tb")
    monkeypatch.chdir(tmp_path / "runs")
    assert_ok(invoke("train", "--resume", "a", "--epochs", "2", "--no-progress"))
    # (sorted: TensorBoard orders two event files written in the same second by a counter read as text)
    assert sorted(steps(events(tmp_path / "tb" / "a"), "loss/val")) == [1, 2]
    assert not (tmp_path / "runs" / "tb").exists()


def test_zoo_eval_log_tensorboard_puts_each_test_figure_beside_the_validation_curve(tmp_path):
    run = tmp_path / "vae"
    assert_ok(invoke("train", "vae", "--dataset", "digits", *TINY_SET, "--epochs", "2", "--log", "tensorboard",
                     "--out", run))
    assert_ok(invoke("eval", run, "--iwae-k", "3", "--log", "tensorboard"))
    acc = events(run / "tensorboard")
    measured = json.loads((run / "eval.json").read_text())["metrics"]
    assert [(e.step, e.value) for e in acc.Scalars("nll_iwae_k3/test")] == \
        [(2, pytest.approx(measured["nll_iwae_k3_nats"], rel=1e-6))]
    assert steps(acc, "mse/test") == [2] and steps(acc, "mse/val") == [1, 2]
    assert steps(acc, "neg_elbo/test") == [2] and steps(acc, "neg_elbo/val") == [1, 2]  # both in nats
    (run / "eval.json").unlink()
    assert_ok(invoke("eval", run, "--split", "val", "--log", "tensorboard"))
    assert steps(events(run / "tensorboard"), "mse/eval-val") == [2]  # it read eval_val_mse, beside nothing


def test_zoo_eval_of_published_weights_logs_where_the_user_does_not_where_their_publisher_did(tmp_path, monkeypatch):
    """A push by an older zoo published the tensorboard_dir (and mlflow_uri) of its machine, and an evaluation of
    the pulled weights logged into the publisher's folder (or server)."""
    import importlib

    pushing = importlib.import_module("zoo.hub.push")  # (zoo.hub.push is also the function's name)
    publisher = tmp_path / "publisher-tb"
    train("--epochs", "1", "--log", "tensorboard", "--set", f"tensorboard_dir={publisher}", "--out", tmp_path / "r")
    monkeypatch.setattr(pushing, "published", lambda record: record)  # as pushed before LOCAL_KEYS
    assert_ok(invoke("push", tmp_path / "r", (tmp_path / "hub" / "r").as_uri()))
    monkeypatch.undo()
    assert str(publisher) in (tmp_path / "hub" / "r" / "config.json").read_text()
    before = sorted(publisher.rglob("*"))
    monkeypatch.chdir(tmp_path)
    assert_ok(invoke("eval", (tmp_path / "hub" / "r").as_uri(), "--log", "tensorboard"))
    assert sorted(publisher.rglob("*")) == before
    assert steps(events(next((tmp_path / "zoo-outputs").glob("r-*")) / "tensorboard"), "mse/test") == [1]

def test_zoo_eval_log_is_refused_before_the_work_for_an_unknown_logger_or_one_without_evaluations(logged_run):
    assert_clean_error(invoke("eval", logged_run, "--log", "tensorbord"), "unknown logger 'tensorbord'", code=2)
    assert_clean_error(invoke("eval", logged_run, "--fid", "--log", "tensorboard"), "--log does nothing with --fid",
                       code=2)
    assert_clean_error(invoke("eval", logged_run, "--limit", "20", "--log", "tensorboard"),
                       "--log records the figures of a whole split, and --limit 20 measures a part of it", code=2)
    assert not (logged_run / "eval.json").exists()


def test_a_log_folder_that_cannot_be_written_is_refused_before_the_run_folder_exists(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = invoke("train", "convae", "--dataset", "digits", *TINY_SET, "--epochs", "1", "--log", "tensorboard",
                    "--set", f"tensorboard_dir={blocker / 'logs'}", "--out", tmp_path / "run")
    out = assert_clean_error(result, "cannot write TensorBoard event files", "is not a folder")
    assert "tensorboard_dir" in out
    assert not (tmp_path / "run").exists()


def test_an_unknown_logger_is_refused_with_the_installed_ones(tmp_path):
    result = invoke("train", "convae", "--dataset", "digits", *TINY_SET, "--log", "tensorbord", "--out", tmp_path / "r")
    out = assert_clean_error(result, "unknown logger 'tensorbord'", "Did you mean: tensorboard")
    assert "The installed loggers are: mlflow, tensorboard (`zoo list` shows them); jsonl names metrics.jsonl" in out
    assert not (tmp_path / "r").exists()


def test_jsonl_is_always_on_and_may_be_named(tmp_path):
    train("--epochs", "1", "--log", "jsonl", "--out", tmp_path / "r")
    assert [r["epoch"] for r in read_metrics(tmp_path / "r")] == [1]
    assert not (tmp_path / "r" / "tensorboard").exists()


def test_a_missing_tensorboard_package_is_named_in_one_line_with_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if it were not installed
    result = invoke("train", "convae", "--dataset", "digits", *TINY_SET, "--log", "tensorboard",
                    "--out", tmp_path / "r")
    out = assert_clean_error(result, "--log tensorboard needs the 'tensorboard' package, which is not installed",
                             'pip install "zoo[tensorboard]"')
    assert len([line for line in out.splitlines() if line.strip()]) <= 2  # the error and its hint
    assert not (tmp_path / "r").exists()


SPACE = tiny_space(trials=2, epochs=2)


def test_a_search_logs_each_trial_as_a_run_with_its_curve_and_hparams(tmp_path):
    (tmp_path / "space.toml").write_text(SPACE)
    study = tmp_path / "study"
    assert_ok(invoke("search", "convae", "--space", tmp_path / "space.toml", "--out", study, "--seed", "0",
                     "--log", "tensorboard"))
    summary = json.loads((study / "summary.json").read_text())
    folders = sorted(p.name for p in (study / "tensorboard").iterdir())
    assert folders == ["study", "trial-0000", "trial-0001"]
    best = events(study / "tensorboard" / f"trial-{summary['best']['number']:04d}")
    assert steps(best, "loss/val") == [1, 2]
    assert best.Scalars("trial/objective")[-1].value == pytest.approx(summary["best"]["value"], rel=1e-6)
    assert best.Scalars("trial/val_loss_best")[-1].value == pytest.approx(summary["best"]["val_loss_best"], rel=1e-6)
    assert "trial/loss" not in best.Tags()["scalars"]
    start = plugin_data_pb2.HParamsPluginData.FromString(
        best.PluginTagToContent("hparams")["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["lr"].number_value == pytest.approx(summary["best"]["values"]["lr"])


def test_a_finished_search_logs_the_study_as_a_run_each_trials_objective_and_the_best_so_far(tmp_path):
    import csv

    (tmp_path / "space.toml").write_text(tiny_space(trials=3, epochs=1))
    study = tmp_path / "study"
    assert_ok(invoke("search", "convae", "--space", tmp_path / "space.toml", "--out", study, "--seed", "0",
                     "--log", "tensorboard"))
    rows = list(csv.DictReader((study / "trials.csv").open()))
    objectives = {int(r["number"]): float(r["value"]) for r in rows if r["value"]}
    acc = events(study / "tensorboard" / "study")
    logged = {e.step: e.value for e in acc.Scalars("study/objective")}
    assert logged == pytest.approx(objectives, rel=1e-6) and len(logged) == 3
    running = [min(v for n, v in objectives.items() if n <= k) for k in sorted(objectives)]
    assert [e.value for e in acc.Scalars("study/best_objective")] == pytest.approx(running, rel=1e-6)
    summary = json.loads((study / "summary.json").read_text())
    assert acc.Scalars("study/best_objective")[-1].value == pytest.approx(summary["best"]["value"], rel=1e-6)


def test_zoo_latent_log_tensorboard_writes_the_codes_their_labels_and_a_sprite_for_the_projector(logged_run):
    import torch
    from PIL import Image

    import zoo

    out = assert_ok(invoke("latent", logged_run, "--n", "100", "--log", "tensorboard"))
    folder = logged_run / "tensorboard"
    assert f"embedding viewer in {folder}" in out
    config = (folder / "projector_config.pbtxt").read_text()
    assert 'metadata_path: "00000/latent codes/metadata.tsv"' in config
    embedded = folder / "00000" / "latent codes"
    codes = [[float(v) for v in line.split("\t")] for line in (embedded / "tensors.tsv").read_text().splitlines()]
    run = zoo.load(logged_run)
    x, _ = run.data("test")
    with torch.no_grad():
        expected = run.encode(x[:100].float() / 255.0)
    assert torch.allclose(torch.tensor(codes), expected, atol=1e-4)
    csv_labels = [line.split(",")[2] for line in (logged_run / "latent-pca.csv").read_text().splitlines()[1:]]
    assert (embedded / "metadata.tsv").read_text().split() == csv_labels  # class names, in order
    assert Image.open(embedded / "sprite.png").size == (10 * 28, 10 * 28)  # 100 images, 10 by 10


def test_zoo_latent_refuses_a_logger_without_an_embedding_viewer(logged_run):
    assert_clean_error(invoke("latent", logged_run, "--n", "10", "--log", "mlflow"),
                       "mlflow has no viewer for latent codes", "tensorboard")


def test_from_python_the_loggers_key_turns_tensorboard_on_and_its_time_is_returned(tmp_path):
    import zoo
    from conftest import TINY, quiet

    result = zoo.train("convae", dataset="digits", epochs=2, out=tmp_path / "run", log=quiet, progress=False,
                       loggers="tensorboard", **TINY)
    assert steps(events(tmp_path / "run" / "tensorboard"), "loss/val") == [1, 2]
    assert set(result.logging_seconds) == {"tensorboard"} and result.logging_seconds["tensorboard"] > 0


def test_a_denoising_run_logs_its_clean_noisy_and_denoised_rows(tmp_path):
    run = tmp_path / "dae"
    assert_ok(invoke("train", "dae", "--dataset", "digits", *TINY_SET, "--epochs", "1", "--log", "tensorboard",
                     "--out", run))
    assert set(events(run / "tensorboard").Tags()["images"]) == {"images/clean", "images/noisy", "images/denoised"}


def test_a_second_study_of_the_same_folder_name_is_refused_a_tensorboard_dir_that_holds_the_first(tmp_path):
    """studies/A/s and studies/B/s logged into DIR/s: B's trials were not logged, its study curve went into A's."""
    (tmp_path / "space.toml").write_text(tiny_space(trials=1, epochs=1))
    search = ("search", "convae", "--space", tmp_path / "space.toml", "--log", "tensorboard",
              "--set", f"tensorboard_dir={tmp_path / 'tb'}")
    assert_ok(invoke(*search, "--out", tmp_path / "A" / "s"))
    assert_clean_error(invoke(*search, "--out", tmp_path / "B" / "s"),
                       f"holds the TensorBoard events of another run ({tmp_path / 'A' / 's'})")
    assert not (tmp_path / "B" / "s").exists()
