"""The training engine and run folders: contents, early stopping, divergence, resume, crashes."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import (TINY, TINY_SET, assert_clean_error, assert_ok, assert_same_tensors, invoke, is_png, quiet,
                      read_config, read_metrics, weights)

import zoo
from zoo.errors import ConfigError, Interrupted, RunError, TrainingDiverged

TIMING = {"images_per_s", "seconds"}


def _without_timing(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in history]


def train(out: Path, **kw):
    return zoo.train("convae", dataset="digits", out=out, log=quiet, progress=False, **{**TINY, **kw})


# ------------------------------------------------------------------------------------------ the run folder

def test_run_folder_holds_every_file(digits_run):
    names = {p.name for p in digits_run.iterdir()}
    assert {"config.json", "model.safetensors", "checkpoint.safetensors", "metrics.jsonl", "loss.png",
            "reconstructions.png", "README.md"} <= names
    assert not [n for n in names if n.startswith(".") or n.endswith(".tmp")]  # no half-written files left
    assert is_png(digits_run / "loss.png") and is_png(digits_run / "reconstructions.png")


def test_run_config_describes_model_plugin_training_and_data(digits_run):
    cfg = read_config(digits_run)
    assert cfg["model"] == "convae"
    assert cfg["plugin"] == {"name": "convae", "package": "zoo", "version": zoo.__version__}
    assert cfg["zoo_version"] == zoo.__version__
    assert cfg["config"]["channels"] == [4, 8, 8] and cfg["config"]["latent_dim"] == 4
    assert cfg["train"]["epochs"] == 2 and cfg["train"]["dataset"] == "digits" and cfg["train"]["optimizer"] == "adam"
    assert cfg["data"]["name"] == "digits"
    assert cfg["data"]["shape"] == [1, 28, 28]
    assert cfg["data"]["sizes"] == {"train": 1294, "val": 144, "test": 359}
    assert cfg["data"]["classes"] == [str(i) for i in range(10)]


def test_metrics_has_one_line_per_epoch(digits_run):
    lines = read_metrics(digits_run)
    assert [r["epoch"] for r in lines] == [1, 2]
    for r in lines:
        assert {"train_loss", "val_loss", "val_mse", "best"} <= set(r)
        assert 0 < r["val_loss"] < 1 and math.isfinite(r["train_loss"])


def test_readme_is_a_model_card(digits_run):
    card = (digits_run / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: zoo\n")
    assert "`convae` trained on digits" in card
    assert f'zoo.load("{digits_run}")' in card  # the run as it was reached: the line works as written
    assert "![loss.png](loss.png)" in card and "![reconstructions.png](reconstructions.png)" in card


def test_saved_weights_are_the_returned_model(tmp_path):
    result = train(tmp_path / "run", epochs=1)
    assert_same_tensors(weights(tmp_path / "run" / "model.safetensors"), result.model.state_dict())
    assert result.stopped == "completed" and result.best_epoch == 1
    assert not result.model.training


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    a, b, c = train(tmp_path / "a", epochs=1), train(tmp_path / "b", epochs=1), train(tmp_path / "c", epochs=1, seed=1)
    assert_same_tensors(a.model.state_dict(), b.model.state_dict(), rtol=0, atol=0)
    assert not torch.equal(a.model.encoder[0].weight, c.model.encoder[0].weight)


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd", "adagrad"])
def test_each_optimizer_trains_an_epoch(tmp_path, optimizer):
    torch.manual_seed(0)
    init = zoo.create("convae", **TINY).state_dict()  # the weights a seed-0 run starts from
    result = train(tmp_path / "run", epochs=1, optimizer=optimizer, lr=0.01)
    (record,) = result.history
    assert math.isfinite(record["train_loss"]) and math.isfinite(record["val_loss"])
    assert read_config(tmp_path / "run")["train"]["optimizer"] == optimizer
    trained = weights(tmp_path / "run" / "model.safetensors")
    assert not torch.equal(trained["encoder.0.weight"], init["encoder.0.weight"])


# ------------------------------------------------------------------------------------------ early stopping

def test_early_stopping_keeps_the_best_epoch(tmp_path):
    run = tmp_path / "run"
    # plain SGD with a large step overshoots: the validation loss gets worse after a few epochs
    result = train(run, epochs=12, patience=1, optimizer="sgd", lr=2.0)
    lines = read_metrics(run)
    last = lines[-1]["epoch"]
    assert result.stopped == "early_stopping"
    assert last < 12
    assert result.best_epoch == last - 1  # patience 1: one worse epoch, then stop
    best = min(lines, key=lambda r: r["val_loss"])
    assert best["epoch"] == result.best_epoch and best["best"] is True
    assert lines[-1]["val_loss"] > best["val_loss"] and lines[-1]["best"] is False
    assert result.best_value == pytest.approx(best["val_loss"])
    # model.safetensors (and the returned model) hold the best epoch's weights, not the last epoch's
    saved = weights(run / "model.safetensors")
    assert_same_tensors(saved, result.model.state_dict())
    val = zoo.evaluate(run, split="val", save=False)["metrics"]["mse"]
    assert val == pytest.approx(best["val_mse"], rel=1e-4)
    assert val != pytest.approx(lines[-1]["val_mse"], rel=1e-4)
    # ... which are exactly those of the same run stopped after its best epoch
    again = train(tmp_path / "again", epochs=result.best_epoch, optimizer="sgd", lr=2.0)
    assert_same_tensors(saved, again.model.state_dict())
    # the checkpoint holds the last epoch (to resume from), not the best
    assert not torch.equal(weights(run / "checkpoint.safetensors")["model.encoder.0.weight"],
                           saved["encoder.0.weight"])


def test_resumed_early_stopped_run_reports_completion(tmp_path):
    run = tmp_path / "run"
    first = train(run, epochs=12, patience=1, optimizer="sgd", lr=2.0)
    assert first.stopped == "early_stopping"
    last = read_metrics(run)[-1]["epoch"]
    result = zoo.train(resume=run, epochs=last + 1, patience=0, log=quiet, progress=False)
    assert [r["epoch"] for r in read_metrics(run)][-1] == last + 1
    assert result.stopped == "completed"


def test_resuming_an_early_stopped_run_trains_only_when_asked(tmp_path):
    run = tmp_path / "run"
    assert train(run, epochs=12, patience=1, optimizer="sgd", lr=2.0).stopped == "early_stopping"
    before = (run / "metrics.jsonl").read_text()
    said = []
    result = zoo.train(resume=run, log=said.append, progress=False)  # like a finished run: nothing to do
    assert (run / "metrics.jsonl").read_text() == before and result.stopped == "early_stopping"
    assert any("already stopped early" in m and "--patience" in m for m in said)
    last = read_metrics(run)[-1]["epoch"]
    result = zoo.train(resume=run, patience=3, log=said.append, progress=False)  # asked: it trains on
    assert read_metrics(run)[-1]["epoch"] > last
    assert any("continuing to epoch 12 with patience 3" in m for m in said)


def test_a_resume_that_stretches_a_cosine_schedule_says_the_learning_rate_rises_and_by_how_much(tmp_path):
    """Resuming a cosine run with more --epochs stretched its schedule: the learning rate rose at once (the loss
    jumped) without a word."""
    run = tmp_path / "run"
    train(run, epochs=2, lr_schedule="cosine", lr=0.01)
    said = []
    zoo.train(resume=run, epochs=10, log=said.append, progress=False)
    note = next(m for m in said if "cosine learning-rate schedule now spans 10 epochs, not 2" in m)
    rows = read_metrics(run)
    rate = next(k for k in rows[0] if k.startswith("lr"))
    assert f"from {rows[1][rate]:.3g} in epoch 2 to {rows[2][rate]:.3g} in epoch 3" in note
    assert rows[2][rate] > rows[1][rate]
    said.clear()
    zoo.train(resume=run, epochs=10, log=said.append, progress=False)  # nothing stretched: nothing said
    assert not any("schedule" in m for m in said)


# ------------------------------------------------------------------------------------------ divergence

DIVERGE = {"optimizer": "sgd", "lr": 6.0, "sigmoid_output": False}  # unbounded output, huge steps


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_best_weights(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged) as e:
        train(run, epochs=20, **DIVERGE)
    text = str(e.value)
    assert "training diverged at epoch" in text and "not finite" in text
    assert str(run / "model.safetensors") in text
    assert "lower learning rate" in e.value.hint and "bf16" not in e.value.hint  # it was never on
    assert "Train a new run (another --out, or --overwrite)" in e.value.hint  # a resume would diverge again
    lines = read_metrics(run)
    assert lines[-1]["diverged"] is True
    bad = lines[-1]["not_finite"]  # named, and written as null: NaN is not JSON
    assert bad and all(lines[-1][k] is None for k in bad)
    model = zoo.load(run).model
    assert all(torch.isfinite(p).all() for p in model.state_dict().values())
    best_epoch = int(text.split("best weights (epoch ")[1].split(")")[0])
    assert best_epoch >= 1, text  # this configuration learns for an epoch before it blows up
    best = next(r for r in lines if r["epoch"] == best_epoch)
    # the saved model is the best epoch's: its validation MSE (of unclamped outputs) is that epoch's
    val_x = zoo.load_dataset("digits").val_x.float() / 255
    with torch.no_grad():
        mse = torch.nn.functional.mse_loss(model.reconstruct(val_x), val_x).item()
    assert mse == pytest.approx(best["val_mse"], rel=1e-4)


def test_zoo_info_says_how_each_training_ended(tmp_path):
    """`zoo info RUN` said "3 of 20 epochs" alike for a run that diverged, stopped early or was interrupted."""
    class StopAfterFirst(zoo.Callback):
        def on_epoch_end(self, trainer, epoch, record):
            raise KeyboardInterrupt

    with pytest.raises(TrainingDiverged):
        train(tmp_path / "diverged", epochs=20, **DIVERGE)
    with pytest.raises(Interrupted):
        train(tmp_path / "interrupted", epochs=3, callbacks=[StopAfterFirst()])
    train(tmp_path / "early", epochs=40, patience=1, lr=0.05)
    train(tmp_path / "completed", epochs=1)
    said = {name: json.loads(assert_ok(invoke("info", tmp_path / name, "--json")))["training"]["ended"]
            for name in ("diverged", "interrupted", "early", "completed")}
    assert said == {"diverged": "diverged", "interrupted": "interrupted", "early": "early_stopping",
                    "completed": "completed"}
    out = assert_ok(invoke("info", tmp_path / "interrupted"))
    assert f"1 of 3 epochs (interrupted; `zoo train --resume {tmp_path / 'interrupted'}` continues it)" in out
    assert "(stopped early)" in assert_ok(invoke("info", tmp_path / "early"))


def test_the_resume_command_a_stop_suggests_works_pasted_for_a_folder_with_a_space(tmp_path):
    """`zoo train --resume runs/my run` was suggested as such: pasted, the shell split it in two."""
    class StopAfterFirst(zoo.Callback):
        def on_epoch_end(self, trainer, epoch, record):
            raise KeyboardInterrupt

    run = tmp_path / "my run"
    with pytest.raises(Interrupted) as e:
        train(run, epochs=3, callbacks=[StopAfterFirst()])
    assert f"zoo train --resume '{run}'" in str(e.value)
    assert f"`zoo train --resume '{run}'` continues it" in assert_ok(invoke("info", run))
    command = str(e.value).split("Resume with: ")[1].split(" (from Python")[0]
    assert_ok(invoke(*shlex.split(command)[1:], "--no-progress"))  # as a shell would split it
    assert read_metrics(run)[-1]["epoch"] == 3


def test_cli_divergence_is_one_message(tmp_path):
    run = tmp_path / "run"
    assert_clean_error(invoke("train", "convae", "--dataset", "digits", "--epochs", "20", "--out", run, *TINY_SET,
                              "--set", "optimizer=sgd", "--set", "lr=6", "--set", "sigmoid_output=false"),
                       "training diverged at epoch", "lower learning rate (--lr)", code=1)
    assert (run / "model.safetensors").is_file()


def test_a_run_whose_optimizer_overflowed_is_said_to_have_diverged_not_to_be_damaged(tmp_path):
    """At lr 10 the loss stayed finite (5e13) but Adam's squared gradients overflowed: the run 'completed', and
    resuming it called its own, intact checkpoint damaged and told the user to restore it from a copy."""
    run = tmp_path / "run"
    zoo.train("vae", dataset="digits", epochs=2, lr=10.0, device="cpu", out=run, log=quiet, progress=False)
    before = (run / "checkpoint.safetensors").read_bytes()
    out = assert_clean_error(invoke("train", "--resume", run, "--epochs", "3"), "cannot go on: its training diverged",
                             "state overflowed", "train anew with a lower --lr", code=1)
    assert "damaged" not in out and "Restore" not in out
    assert (run / "checkpoint.safetensors").read_bytes() == before
    assert zoo.evaluate(run, save=False)["metrics"]  # its best weights still load and evaluate


def test_a_run_whose_first_epoch_diverged_is_compared_and_pushed_as_holding_its_starting_weights(tmp_path):
    """Its only metrics.jsonl row is the diverged epoch's (losses null): not its result, nor its "best epoch"."""
    from zoo import hub

    class NanLoss(zoo.Callback):
        def on_loss(self, trainer, step):
            step.loss = step.loss * float("nan")

    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged):
        train(run, epochs=2, callbacks=[NanLoss()])
    row = zoo.compare([run]).runs[0]
    assert row.best_epoch == 0 and not row.metrics
    assert any("diverged at epoch 1: it holds the weights it started with" in note for note in row.notes)
    hub.push(run, f"file://{tmp_path / 'hub'}")
    card = (tmp_path / "hub" / "README.md").read_text()
    assert "training: {best_epoch: 0, epochs: 1}" in card and "these are the weights it started with" in card
    assert "## Training metrics" not in card


# ------------------------------------------------------------------------------------------ resume

@pytest.mark.parametrize("optimizer", ["adam", "sgd", "adagrad"])
def test_resumed_run_equals_an_uninterrupted_one(tmp_path, optimizer):
    """2 epochs, then --resume to 4, is the same run as 4 epochs straight (RNG and optimizer state saved)."""
    kw = {"optimizer": optimizer, "lr": 0.01, "dropout": 0.2}  # dropout draws from torch's RNG
    straight = train(tmp_path / "straight", epochs=4, **kw)
    train(tmp_path / "resumed", epochs=2, **kw)
    resumed = zoo.train(resume=tmp_path / "resumed", epochs=4, log=quiet, progress=False)
    assert resumed.best_epoch == straight.best_epoch
    assert_same_tensors(weights(tmp_path / "resumed" / "model.safetensors"),
                        weights(tmp_path / "straight" / "model.safetensors"), rtol=1e-5, atol=1e-7)
    assert_same_tensors(weights(tmp_path / "resumed" / "checkpoint.safetensors"),
                        weights(tmp_path / "straight" / "checkpoint.safetensors"), rtol=1e-5, atol=1e-7)
    a, b = _without_timing(read_metrics(tmp_path / "straight")), _without_timing(read_metrics(tmp_path / "resumed"))
    assert [r["epoch"] for r in b] == [1, 2, 3, 4]
    for ra, rb in zip(a, b):
        assert ra == pytest.approx(rb, rel=1e-5)
    assert read_config(tmp_path / "resumed")["train"]["epochs"] == 4


def test_cli_resume_continues(run_copy):
    out = assert_ok(invoke("train", "--resume", run_copy, "--epochs", "3", "--no-progress"))
    assert f"resuming {run_copy} after epoch 2 of 3" in out
    assert [r["epoch"] for r in read_metrics(run_copy)] == [1, 2, 3]
    assert read_config(run_copy)["train"]["epochs"] == 3


def test_resume_of_a_finished_run_changes_nothing(run_copy):
    before = weights(run_copy / "model.safetensors")
    metrics = (run_copy / "metrics.jsonl").read_text()
    out = assert_ok(invoke("train", "--resume", run_copy, "--no-progress"))
    assert "already finished its 2 epochs" in out
    assert_same_tensors(weights(run_copy / "model.safetensors"), before, rtol=0, atol=0)
    assert (run_copy / "metrics.jsonl").read_text() == metrics


@pytest.mark.parametrize("args, word", [
    (["--set", "latent_dim=8"], "latent_dim"),
    (["--set", "optimizer=sgd"], "optimizer"),
    (["--lr", "0.5"], "lr"),
    (["--dataset", "mnist"], "dataset"),
])
def test_resume_refuses_changed_settings(run_copy, args, word):
    before = (run_copy / "config.json").read_text()
    assert_clean_error(invoke("train", "--resume", run_copy, *args),
                       f"cannot change {word}", "start a new run", code=2)
    assert (run_copy / "config.json").read_text() == before


def test_resume_refuses_another_model_name(run_copy):
    with pytest.raises(ConfigError, match="is a 'convae' run, not 'tinyae'"):
        zoo.train("tinyae", resume=run_copy)


def test_resume_accepts_a_setting_given_again_unchanged(run_copy):
    assert_ok(invoke("train", "--resume", run_copy, "--epochs", "3", "--set", "batch_size=256", "--no-progress"))


def test_resume_without_checkpoint_is_refused(run_copy):
    (run_copy / "checkpoint.safetensors").unlink()
    assert_clean_error(invoke("train", "--resume", run_copy, "--epochs", "3"), "has no checkpoint to resume from")


@pytest.mark.parametrize("source, what", [("iwae-mnist", "a catalogued name"),
                                          ("file:///somewhere/hub/entry", "a hub location")])
def test_resume_of_published_weights_is_refused_saying_what_they_are(source, what):
    assert_clean_error(invoke("train", "--resume", source, "--epochs", "3"), f"--resume {source}: {what}, not a "
                       "run of yours: published weights carry no checkpoint", code=1)


def test_resume_of_a_folder_hub_entry_named_by_its_path_is_refused_and_never_advised_to_be_removed(digits_run,
                                                                                                   tmp_path):
    entry = tmp_path / "hub" / "entry"
    assert_ok(invoke("push", digits_run, entry.as_uri()))
    said = assert_clean_error(invoke("train", "--resume", entry, "--epochs", "3"),
                              f"--resume {entry}: a folder hub's entry (a push made it: .zoo-pushed.json), not a run "
                              "of yours: published weights carry no checkpoint", code=1)
    assert "remove" not in said


def test_resume_of_zoos_copy_of_bundled_weights_is_refused():
    from zoo import registry

    folder = registry.weights_folder("iwae-mnist")
    before = sorted(p.name for p in folder.iterdir())
    assert_clean_error(invoke("train", "--resume", folder, "--epochs", "3"), "zoo's copy of published weights")
    assert sorted(p.name for p in folder.iterdir()) == before


def test_resume_of_a_missing_folder(tmp_path):
    assert_clean_error(invoke("train", "--resume", tmp_path / "nope"), "does not exist")


def test_crash_between_metrics_line_and_checkpoint_keeps_every_epoch_once(run_copy):
    # The state a kill leaves after metrics.jsonl got its epoch-3 line and before checkpoint.safetensors
    # (still at epoch 2) was replaced: resume drops the orphan line and writes epoch 3 again.
    with open(run_copy / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps({"epoch": 3, "train_loss": -1.0}) + "\n")
    zoo.train(resume=run_copy, epochs=3, log=quiet, progress=False)
    rows = read_metrics(run_copy)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[-1]["train_loss"] > 0


def test_a_newer_zoos_text_column_in_the_training_log_is_read_past_and_kept_by_a_resume(run_copy):
    """A column of text, null-free lists or tables (a newer zoo's) made every row 'damaged': info said 0 epochs,
    and a resume rewrote metrics.jsonl without them: the log of every epoch lost."""
    lines = (run_copy / "metrics.jsonl").read_text().splitlines()
    newer = [json.dumps({**json.loads(line), "phase": "warmup", "per_class": [0.1, 0.2]}) for line in lines]
    (run_copy / "metrics.jsonl").write_text("\n".join(newer) + "\n")
    history = zoo.load(run_copy).training_history()
    assert [r["epoch"] for r in history] == [1, 2] and "phase" not in history[0] and history[0]["val_loss"] > 0
    assert "2 of 2 epochs" in assert_ok(invoke("info", run_copy))
    said = []
    zoo.train(resume=run_copy, epochs=3, log=said.append, progress=False)
    kept = (run_copy / "metrics.jsonl").read_text().splitlines()
    assert kept[:2] == newer and json.loads(kept[2])["epoch"] == 3  # the rows as written, then the new epoch
    assert not any("damaged" in m or "lost" in m for m in said)


def _train_in_background(run: Path) -> subprocess.Popen:
    """`python -m zoo train` for (far) more epochs than it will get, once it has finished two of them."""
    cmd = [sys.executable, "-m", "zoo", "train", "convae", "--dataset", "digits", "--epochs", "100000",
           "--out", str(run), *TINY_SET]
    # A shell that starts the suite in the background hands its children SIGINT ignored, and Python then
    # installs no Ctrl-C handler: give the child the default disposition, as a terminal would.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not ((run / "metrics.jsonl").is_file() and len(read_metrics(run)) >= 2):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"no two epochs (rc {proc.returncode}):\n{out}\n{err}")
        time.sleep(0.05)
    return proc


def test_killed_training_resumes(tmp_path):
    """SIGKILL in the middle of training leaves a loadable run that --resume continues."""
    run = tmp_path / "run"
    proc = _train_in_background(run)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    done = len(read_metrics(run))

    model = zoo.load(run)
    assert model.reconstruct(torch.rand(2, 1, 28, 28)).shape == (2, 1, 28, 28)

    out = assert_ok(invoke("train", "--resume", run, "--epochs", str(done + 2), "--no-progress"))
    assert "completed" in out
    epochs = [r["epoch"] for r in read_metrics(run)]
    assert epochs[-1] == done + 2
    assert epochs == sorted(set(epochs))
    assert read_config(run)["train"]["epochs"] == done + 2
    assert zoo.evaluate(run)["images"] == 359


def test_ctrl_c_saves_and_says_how_to_resume(tmp_path):
    run = tmp_path / "run"
    proc = _train_in_background(run)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted during epoch" in err or "interrupted after epoch" in err  # (after: held during its files)
    assert ("no epoch was finished (a resume starts at epoch 1)" in err) != ("are saved" in err)
    assert "epochs up to 0 " not in err
    assert f"zoo train --resume {run}" in err
    assert "Traceback" not in err
    assert zoo.load(run) is not None
    done = len(read_metrics(run))
    assert_ok(invoke("train", "--resume", run, "--epochs", str(done + 1), "--no-progress"))


def test_ctrl_c_just_after_the_best_weights_are_written_still_saves_that_epochs_checkpoint(tmp_path, monkeypatch):
    """A Ctrl-C that lands between an epoch's best weights and its checkpoint is held until both are written:
    model.safetensors is never an epoch ahead of the checkpoint and metrics.jsonl that `zoo eval` reads."""
    import os

    from zoo.runs import checkpoint as ckpt

    real = ckpt.save_tensors
    sent = []

    def save_then_interrupt(path, tensors, metadata=None):
        real(path, tensors, metadata)
        if Path(path).name == ckpt.WEIGHTS and (Path(path).parent / ckpt.CONFIG).exists() and not sent:
            sent.append(1)  # the epoch-1 best weights (epoch 0's are written before config.json)
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(ckpt, "save_tensors", save_then_interrupt)
    run = tmp_path / "run"
    with pytest.raises(Interrupted, match="interrupted after epoch 1") as e:  # (held back until it was saved)
        train(run, epochs=3)
    assert sent and "epochs up to 1 are saved" in str(e.value)
    assert [r["epoch"] for r in read_metrics(run)] == [1]
    trainer = json.loads(ckpt.load_tensors(run / ckpt.CHECKPOINT)[1]["trainer"])
    assert trainer["epoch"] == 1 and trainer["best_epoch"] == 1


_SIGTERM_AFTER_BEST_WEIGHTS = """
import os, signal, sys
from pathlib import Path
from zoo.runs import checkpoint as ckpt
real = ckpt.save_tensors
def save_then_terminate(path, tensors, metadata=None):
    real(path, tensors, metadata)
    if Path(path).name == ckpt.WEIGHTS and (Path(path).parent / ckpt.CONFIG).exists():
        os.kill(os.getpid(), signal.SIGTERM)  # between the epoch's best weights and its checkpoint
ckpt.save_tensors = save_then_terminate
run, how = sys.argv[1], sys.argv[2]
if how == "cli":
    sys.argv = ["zoo", "--threads", "1", "train", "convae", "--dataset", "digits", "--epochs", "3", "--out", run,
                "--set", "channels=[4,8,8]", "--set", "hidden=[16]", "--no-progress"]
    from zoo.cli.main import main
    main()
else:  # a Python program that set no SIGTERM handler: the signal's default ends it
    import zoo
    zoo.train("convae", dataset="digits", epochs=3, out=run, channels=[4, 8, 8], hidden=[16], progress=False)
print("trained on")
"""


@pytest.mark.parametrize("how", ["cli", "python"])
def test_a_sigterm_between_an_epochs_files_lands_once_they_are_all_written(tmp_path, how):
    """Ctrl-C was held back across an epoch's files, SIGTERM (`kill`, `timeout`, a scheduler) was not: it cut
    them in two, leaving a training log and best weights one epoch ahead of the checkpoint."""
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", _SIGTERM_AFTER_BEST_WEIGHTS, str(run), how], capture_output=True,
                          text=True, timeout=120)
    if how == "cli":  # stopped as by Ctrl-C, with the signal's exit code, after the epoch it held back for
        assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
        assert "interrupted after epoch 1; epochs up to 1 are saved" in proc.stderr
        assert "epoch 1/3" in proc.stdout + proc.stderr  # the epoch's line, though the stop came before it
    else:  # ended by the signal's default, once the files were whole
        assert proc.returncode == -signal.SIGTERM, proc.stderr
    assert "trained on" not in proc.stdout and "Traceback" not in proc.stderr
    from zoo.runs.training_state import recorded_trainer
    assert [r["epoch"] for r in read_metrics(run)] == [1] and recorded_trainer(run)["epoch"] == 1


def test_a_stop_held_across_a_write_that_fails_is_still_handed_on_and_the_handlers_are_put_back():
    """A signal caught during a hold whose body then raised was dropped: the user's Ctrl-C (or kill) was lost."""
    import os

    from zoo.interrupts import STOPPING, holding_interrupts

    before = {sig: signal.getsignal(sig) for sig in STOPPING}
    with pytest.raises(KeyboardInterrupt) as stopped:
        with holding_interrupts():
            os.kill(os.getpid(), signal.SIGINT)
            raise OSError("disk full")
    assert isinstance(stopped.value.__context__, OSError)  # the error is kept beside the stop
    assert {sig: signal.getsignal(sig) for sig in STOPPING} == before


def test_a_sigterm_while_the_card_is_written_after_the_last_epoch_still_leaves_the_card(tmp_path):
    """A stop after the last epoch, while the model card was being written, left a finished run without one."""
    script = _SIGTERM_AFTER_BEST_WEIGHTS.replace("ckpt.save_tensors = save_then_terminate", """
from zoo.runs import modelcard
real_render = modelcard.render_card
def render_then_terminate(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    return real_render(*args, **kwargs)
modelcard.render_card = render_then_terminate""")
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", script, str(run), "cli"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    assert (run / "README.md").is_file() and len(read_metrics(run)) == 3


def test_an_ignored_sigint_stays_ignored_and_a_callers_own_handler_gets_it_at_the_end_of_an_epoch(tmp_path,
                                                                                                   monkeypatch):
    """The end-of-epoch writes hold Ctrl-C back, then hand it to the handler that was in place: a process that
    ignores SIGINT (nohup) trains on, and a caller's own handler is called rather than bypassed."""
    import os

    from zoo.runs import checkpoint as ckpt

    real = ckpt.save_tensors

    def save_then_interrupt(path, tensors, metadata=None):
        real(path, tensors, metadata)
        if Path(path).name == ckpt.WEIGHTS and (Path(path).parent / ckpt.CONFIG).exists():
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(ckpt, "save_tensors", save_then_interrupt)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        assert train(tmp_path / "ignored", epochs=2).best_epoch >= 1  # trained to its end
        seen = []
        signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
        train(tmp_path / "own", epochs=2)
        assert seen and set(seen) == {signal.SIGINT}
    finally:
        signal.signal(signal.SIGINT, previous)
    assert [r["epoch"] for r in read_metrics(tmp_path / "ignored")] == [1, 2]


# ------------------------------------------------------------------------------------------ folders

def test_training_into_an_existing_run_is_refused(run_copy):
    before = {p.name: p.read_bytes() for p in run_copy.iterdir()}
    with pytest.raises(RunError) as e:
        train(run_copy, epochs=1)
    assert "already holds a run" in str(e.value)
    assert f"zoo train --resume {run_copy}" in e.value.hint
    assert {p.name: p.read_bytes() for p in run_copy.iterdir()} == before


def test_cli_training_into_an_existing_run_is_refused(run_copy):
    before = (run_copy / "model.safetensors").read_bytes()
    assert_clean_error(invoke("train", "convae", "--dataset", "digits", "--out", run_copy, *TINY_SET),
                       "already holds a run")
    assert (run_copy / "model.safetensors").read_bytes() == before


def test_out_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunError, match="is not a folder"):
        train(tmp_path / "file", epochs=1)


def test_default_run_folder_is_under_runs(tmp_path):
    result = zoo.train("convae", dataset="digits", epochs=1, log=quiet, progress=False, **TINY)
    assert result.run_dir.parent == Path("runs")
    assert result.run_dir.name.startswith("convae-digits-")
    assert (tmp_path / result.run_dir / "model.safetensors").is_file()


def test_default_run_folders_do_not_collide(tmp_path):
    # Runs that already took the names of this moment (and the next seconds): a new run must find its own folder.
    now = dt.datetime.now()
    for s in range(-1, 6):
        taken = Path("runs") / f"convae-digits-{(now + dt.timedelta(seconds=s)).strftime('%Y%m%d-%H%M%S')}"
        taken.mkdir(parents=True, exist_ok=True)
        (taken / "config.json").write_text(json.dumps({"model": "convae", "config": {}}))
    result = zoo.train("convae", dataset="digits", epochs=1, log=quiet, progress=False, **TINY)
    assert (result.run_dir / "model.safetensors").is_file()


@pytest.mark.parametrize("model, options", [("dae", {"noise": "gaussian:0.3"}), ("vae", {})])
def test_validation_draws_the_same_noise_every_epoch(tmp_path, model, options):
    """A DAE's validation noise and a VAE's z were drawn afresh each epoch: weights that did not move still scored
    differently, and early stopping kept the epoch of the luckiest draws. With the weights held still (a learning
    rate of 1e-12) every epoch's figure is now one number."""
    run = zoo.train(model, dataset="digits", epochs=3, lr=1e-12, out=tmp_path / model, log=quiet, progress=False,
                    **TINY, **options)
    assert len({row["val_loss"] for row in zoo.load(run.run_dir).training_history()}) == 1


def test_a_run_trained_with_compile_goes_on_without_it_where_torch_compile_fails(tmp_path):
    """A run trained with compile=true could not be resumed where torch.compile fails (no C++ compiler here): with
    it the first step failed, and --set compile=false was refused; the failed resume had already rewritten its
    config.json (1 of 2 epochs, "interrupted", with nothing trained)."""
    run = tmp_path / "run"
    train(run, epochs=1)
    config = json.loads((run / "config.json").read_text())
    config["train"]["compile"] = True  # as trained on a machine that compiles
    (run / "config.json").write_text(json.dumps(config))
    bare = tmp_path / "bin"  # a PATH that holds python and no compiler
    bare.mkdir()
    (bare / "python").symlink_to(sys.executable)
    env = {**os.environ, "PATH": str(bare)}

    def resume(*args):
        return subprocess.run([sys.executable, "-m", "zoo", "--threads", "1", "train", "--resume", str(run),
                               "--epochs", "2", "--no-progress", *args], capture_output=True, text=True, env=env,
                              timeout=300)

    failed = resume()
    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    assert "torch.compile failed" in failed.stderr and f"zoo train --resume {run} --set compile=false" in failed.stderr
    assert json.loads((run / "config.json").read_text()) == config  # nothing trained: the run is as it was
    assert resume("--set", "compile=false").returncode == 0
    assert [r["epoch"] for r in zoo.load(run).training_history()] == [1, 2]
    assert json.loads((run / "config.json").read_text())["train"]["compile"] is False


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here: such a run resumes on it")
def test_a_run_of_a_device_missing_here_says_its_config_asked_for_it_and_how_to_go_on(tmp_path):
    """'device cuda was asked for' blamed the user, who asked for nothing: the run's config.json did."""
    run = tmp_path / "run"
    train(run, epochs=1)
    config = json.loads((run / "config.json").read_text())
    config["train"]["device"] = "cuda"  # as trained on a GPU machine
    (run / "config.json").write_text(json.dumps(config))
    assert_clean_error(invoke("train", "--resume", str(run), "--epochs", "2", "--no-progress"),
                       "was trained on device 'cuda' (its config.json), which is not available here",
                       f"zoo train --resume {run} --device cpu")
    assert_ok(invoke("train", "--resume", str(run), "--epochs", "2", "--device", "cpu", "--no-progress"))


def test_a_run_records_the_devices_it_trained_on_and_info_says_what_acted(tmp_path):
    """config.json held only the device asked for ("auto"), and `zoo info` said bf16=true and cuda_graph=true "as
    trained" of a run that trained on the CPU without either."""
    run = tmp_path / "run"
    assert_ok(invoke("train", "convae", "--dataset", "digits", "--epochs", "1", *TINY_SET, "--bf16", "--set",
                     "cuda_graph=true", "--out", str(run)))
    config = json.loads((run / "config.json").read_text())
    assert config["devices"] == ["cpu"]
    info = assert_ok(invoke("info", str(run)))
    assert "trained on: cpu" in info and "(bf16 and cuda_graph act on CUDA only: it trained as without them)" in info
    config["devices"] = ["cuda:0 (NVIDIA H200)"]  # as started on a GPU machine, resumed here
    (run / "config.json").write_text(json.dumps(config))
    assert_ok(invoke("train", "--resume", str(run), "--epochs", "2", "--device", "cpu", "--no-progress"))
    assert json.loads((run / "config.json").read_text())["devices"] == ["cuda:0 (NVIDIA H200)", "cpu"]
    assert "trained on: cuda:0 (NVIDIA H200), cpu" in assert_ok(invoke("info", str(run)))
    del config["devices"]  # an older zoo's run: which devices it trained on is unknown, and stays so
    config["train"]["epochs"] = 2
    (run / "config.json").write_text(json.dumps(config))
    assert_ok(invoke("train", "--resume", str(run), "--epochs", "3", "--device", "cpu", "--no-progress"))
    assert "devices" not in json.loads((run / "config.json").read_text())
    config = json.loads((run / "config.json").read_text())
    config["devices"] = ["cuda:0 (NVIDIA H200)"]
    (run / "config.json").write_text(json.dumps(config))
    assert_ok(invoke("train", "--resume", str(run), "--device", "cpu", "--no-progress"))  # finished: trains nothing
    assert json.loads((run / "config.json").read_text())["devices"] == ["cuda:0 (NVIDIA H200)"]
