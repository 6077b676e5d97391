"""A run's records as every command reads them: a FIFO (or any file that is not a regular file) among
them is refused with one message instead of blocking a command forever; eval.json counts only for the
weights it measured (a resumed run's older one is stale, never shown as the model's test metrics); a
push publishes the training log and current test metrics, and a pull brings them back."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import pytest

from conftest import assert_clean_error, assert_ok, invoke, run_zoo
from hubserver import HubServer
from zoo import hub as zhub

STALE = "stale: measured on earlier weights; run zoo eval again"


@pytest.fixture
def deadline():
    """Commands run in-process: one that blocks (on a FIFO) fails the test after 60 s instead of hanging it."""
    def expire(signum, frame):
        raise TimeoutError("zoo blocked: it opened a FIFO as if it were a file")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def fifo_in_place_of(path: Path) -> None:
    path.unlink(missing_ok=True)
    os.mkfifo(path)


def resume(run: Path, epochs: int):
    return invoke("train", "--resume", run, "--epochs", epochs, "--no-progress")


def compared(run: Path) -> dict:
    result = invoke("compare", run, "--json")
    assert_ok(result)
    return json.loads(result.stdout)["runs"][0]


def info(source) -> dict:
    result = invoke("info", source, "--json")
    assert_ok(result)
    return json.loads(result.stdout)


def evaluated_mse(run: Path) -> float:
    assert_ok(invoke("eval", run, "--no-progress"))
    return json.loads((run / "eval.json").read_text())["metrics"]["mse"]


# ------------------------------------------------------------------------------------------ FIFOs

def test_push_of_a_run_whose_metrics_jsonl_is_a_fifo_is_refused_not_hung(run_copy, tmp_path, deadline):
    fifo_in_place_of(run_copy / "metrics.jsonl")
    assert_clean_error(invoke("push", run_copy, f"file://{tmp_path / 'hub' / 'a'}"),
                       "metrics.jsonl is not a regular file (a FIFO)")
    assert not (tmp_path / "hub" / "a").exists()


def test_resume_of_a_run_whose_metrics_jsonl_is_a_fifo_is_refused_not_hung(run_copy, deadline):
    fifo_in_place_of(run_copy / "metrics.jsonl")
    before = (run_copy / "model.safetensors").read_bytes()
    assert_clean_error(resume(run_copy, 3), "metrics.jsonl is not a regular file (a FIFO)")
    assert (run_copy / "model.safetensors").read_bytes() == before


def test_resume_of_a_run_whose_eval_json_is_a_fifo_finishes_and_says_it_ignored_it(run_copy, deadline):
    fifo_in_place_of(run_copy / "eval.json")
    result = resume(run_copy, 3)
    assert_ok(result)
    assert "eval.json is not a regular file (a FIFO)" in result.stderr
    assert json.loads((run_copy / "metrics.jsonl").read_text().splitlines()[-1])["epoch"] == 3
    assert "## Test metrics" not in (run_copy / "README.md").read_text()


def test_eval_of_a_run_whose_weights_are_a_fifo_is_refused_not_hung(run_copy, deadline):
    fifo_in_place_of(run_copy / "model.safetensors")
    assert_clean_error(invoke("eval", run_copy, "--no-progress"), "model.safetensors is not a regular file (a FIFO)")


def test_a_fifo_config_json_is_refused_not_hung(run_copy, deadline):
    fifo_in_place_of(run_copy / "config.json")
    assert_clean_error(invoke("eval", run_copy, "--no-progress"), "config.json is not a regular file (a FIFO)")


def test_compare_and_info_of_a_run_with_a_fifo_eval_json_note_it_and_show_no_test_metrics(run_copy, deadline):
    fifo_in_place_of(run_copy / "eval.json")
    row = compared(run_copy)
    assert row["test_metrics"] == {}
    assert any("eval.json is not a regular file (a FIFO)" in n for n in row["notes"]), row["notes"]
    assert "test_metrics" not in info(run_copy)


# ------------------------------------------------------------------------------------------ stale eval.json

def test_eval_json_records_the_weights_it_measured(run_copy):
    evaluated_mse(run_copy)
    record = json.loads((run_copy / "eval.json").read_text())
    assert re.fullmatch(r"[0-9a-f]{64}", record["weights_digest"])


def test_after_resume_compare_card_info_and_push_show_no_stale_test_metrics(run_copy, tmp_path):
    old_mse = evaluated_mse(run_copy)
    weights = (run_copy / "model.safetensors").read_bytes()
    result = resume(run_copy, 5)
    assert_ok(result)
    assert (run_copy / "model.safetensors").read_bytes() != weights, "resuming did not train better weights"
    assert STALE in result.stderr  # the card written at the end leaves them out, and says why

    row = compared(run_copy)
    assert row["test_metrics"] == {} and "test_mse" not in invoke("compare", run_copy).stdout
    assert any(STALE in n for n in row["notes"]), row["notes"]
    assert "## Test metrics" not in (run_copy / "README.md").read_text()
    assert "test_metrics" not in info(run_copy)

    hub = tmp_path / "hub" / "x"
    pushed = invoke("push", run_copy, f"file://{hub}")
    assert_ok(pushed)
    assert STALE in pushed.stderr
    card = (hub / "README.md").read_text()
    assert "## Test metrics" not in card and f"{old_mse:.5g}" not in card
    assert not (hub / "eval.json").exists()
    assert "test_metrics" not in info(f"file://{hub}")


def test_a_new_eval_after_resume_is_shown_again_everywhere(run_copy, tmp_path):
    evaluated_mse(run_copy)
    assert_ok(resume(run_copy, 5))
    new_mse = evaluated_mse(run_copy)
    assert compared(run_copy)["test_metrics"]["mse"] == pytest.approx(new_mse)
    assert info(run_copy)["test_metrics"]["mse"] == pytest.approx(new_mse)
    assert f"| mse | {new_mse:.5g} |" in (run_copy / "README.md").read_text()

    hub = tmp_path / "hub" / "x"
    assert_ok(invoke("push", run_copy, f"file://{hub}"))
    assert f"| mse | {new_mse:.5g} |" in (hub / "README.md").read_text()
    assert info(f"file://{hub}")["test_metrics"]["mse"] == pytest.approx(new_mse)


def test_an_eval_json_that_records_no_weights_is_ignored_with_a_note(run_copy, tmp_path):
    evaluated_mse(run_copy)
    record = json.loads((run_copy / "eval.json").read_text())
    del record["weights_digest"]  # as an older zoo wrote it
    (run_copy / "eval.json").write_text(json.dumps(record))
    row = compared(run_copy)
    assert row["test_metrics"] == {}
    assert any("does not record which weights it measured" in n for n in row["notes"]), row["notes"]
    assert "test_metrics" not in info(run_copy)
    hub = tmp_path / "hub" / "x"
    assert_ok(invoke("push", run_copy, f"file://{hub}"))
    assert not (hub / "eval.json").exists() and "## Test metrics" not in (hub / "README.md").read_text()


# ------------------------------------------------------------------------------------------ what a push carries

def test_a_folder_hub_push_carries_the_training_log_and_test_metrics_back_to_info_and_pull(run_copy, tmp_path):
    mse = evaluated_mse(run_copy)
    hub = tmp_path / "hub" / "x"
    assert_ok(invoke("push", run_copy, f"file://{hub}"))
    assert (hub / "metrics.jsonl").read_bytes() == (run_copy / "metrics.jsonl").read_bytes()
    assert (hub / "eval.json").is_file()

    shown = invoke("info", f"file://{hub}")
    assert_ok(shown)
    assert "training: 2 of 2 epochs" in shown.stdout and "no training log" not in shown.stdout
    assert f"mse {mse:.5g}" in shown.stdout

    pulled = Path(zhub.pull(f"file://{hub}")["folder"])
    assert (pulled / "metrics.jsonl").read_bytes() == (run_copy / "metrics.jsonl").read_bytes()
    assert (pulled / "eval.json").is_file()


def test_a_training_log_larger_than_the_card_cap_is_pulled_back(run_copy, tmp_path):
    rows = [json.dumps({"epoch": e, "train_loss": 0.1, "val_loss": 0.1, "seconds": 0.1}) for e in range(1, 30001)]
    (run_copy / "metrics.jsonl").write_text("\n".join(rows) + "\n")  # about 2 MiB, over the 1 MiB card cap
    hub = tmp_path / "hub" / "long"
    assert_ok(invoke("push", run_copy, f"file://{hub}"))
    pulled = Path(zhub.pull(f"file://{hub}")["folder"])
    assert (pulled / "metrics.jsonl").read_bytes() == (run_copy / "metrics.jsonl").read_bytes()


def test_a_hugging_face_hub_push_carries_the_training_log_and_test_metrics(run_copy, monkeypatch):
    evaluated_mse(run_copy)
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    with HubServer() as server:
        env = {"HF_ENDPOINT": server.url, "HF_HUB_OFFLINE": "0", "ZOO_OFFLINE": "0", "HF_HUB_ETAG_TIMEOUT": "2",
               "HF_HUB_DOWNLOAD_TIMEOUT": "2", "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
        assert_ok(run_zoo("push", run_copy, "hf://zoo-test/records", env=env, timeout=60))
        files = server.files("zoo-test/records")
        assert files["metrics.jsonl"] == (run_copy / "metrics.jsonl").read_bytes()
        assert json.loads(files["eval.json"])["metrics"] == json.loads((run_copy / "eval.json").read_text())["metrics"]
        shown = run_zoo("info", "hf://zoo-test/records", "--json", env=env, timeout=60)
        assert_ok(shown)
        data = json.loads(shown.stdout)
        assert data["training"]["epochs"] == 2 and "mse" in data["test_metrics"]
        assert "metrics.jsonl" in data["files"] and "eval.json" in data["files"]

