"""SIGTERM (`kill`, `timeout`, a job scheduler) and SIGHUP (a closed terminal) stop a command as Ctrl-C
does: a training keeps its finished epochs, an evaluation its progress; the exit code is 128 + the signal."""

from __future__ import annotations

import re
import signal

from conftest import TINY_SET, assert_ok, interrupt_zoo, invoke, read_metrics


def test_sigterm_stops_a_training_that_keeps_its_finished_epochs_and_exits_143(tmp_path):
    run = tmp_path / "run"
    rc, out = interrupt_zoo(["train", "convae", "--dataset", "digits", "--epochs", "500", "--out", run, *TINY_SET],
                            tmp_path / "train.log", ready=lambda: len(_rows(run)) >= 2, sig=signal.SIGTERM)
    assert rc == 128 + signal.SIGTERM, out
    saved = re.search(r"epochs up to (\d+) are saved", out)
    assert saved and "Traceback" not in out, out
    # (Sent once the second epoch's line is written: epoch 1's checkpoint is then surely saved. After the first
    # line alone, the stop can land before epoch 1's checkpoint, and "no epoch was finished" is then right.)
    # A stop between an epoch's metrics line and its checkpoint leaves the line of an epoch not saved (a resume
    # drops it): the saved epochs are all there, and at most that one more.
    epochs, n = [r["epoch"] for r in read_metrics(run)], int(saved[1])
    assert epochs[:n] == list(range(1, n + 1)) and len(epochs) <= n + 1
    assert (run / "checkpoint.safetensors").is_file()
    assert "# run: `convae` trained on digits" in (run / "README.md").read_text()  # its card, as a push would make


def test_sighup_stops_an_evaluation_that_saves_its_progress_and_goes_on_from_it(vae_copy, tmp_path):
    log = tmp_path / "eval.log"
    args = ["eval", vae_copy, "--iwae-k", "12000", "--limit", "48", "--progress"]  # its first batch: over 2 s
    # the bar, drawn after 2 s, shows a batch of 16 images or two done while the next one is measured (which of
    # them depends on the machine's speed)
    rc, out = interrupt_zoo(args, log, ready=lambda: re.search(r"\b(16|32)\.0/48", log.read_text()) is not None,
                            sig=signal.SIGHUP)
    assert rc == 128 + signal.SIGHUP, out
    done = re.search(r"(16|32) of 48 images were measured and saved", out)
    assert done and "Stopped by SIGHUP." in out, out
    assert len(list(vae_copy.glob("eval-progress-*.safetensors"))) == 1 and not (vae_copy / "eval.json").exists()
    out = assert_ok(invoke(*args[:-1], "--no-progress"))
    assert "going on with the evaluation saved in" in out and f"{done[1]} of 48 images done" in out
    assert (vae_copy / "eval.json").is_file() and not list(vae_copy.glob("eval-progress*"))


def _rows(run):
    path = run / "metrics.jsonl"
    return path.read_text().splitlines() if path.is_file() else []
