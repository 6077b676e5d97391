"""What a run folder guarantees (README, "What zoo guarantees"): one writer at a time, a folder that is a
complete run from the moment it is one, no temporaries left by kills, weights verified by their recorded
checksum, dtypes and shapes checked against the model before anything is allocated, options of a resume
honoured or refused, and samples streamed to a file whatever their number."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import zoo
from zoo import hub as zhub
from zoo.api import generate
from zoo.errors import ConfigError, RunError
from conftest import (TINY, TINY_SET, assert_clean_error, assert_ok, invoke, quiet, read_config, read_metrics,
                            run_zoo)

ZOO = [sys.executable, "-m", "zoo"]


def _popen(*args, **kw) -> subprocess.Popen:
    return subprocess.Popen([*ZOO, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ}, **kw)


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 60) -> None:
    end = time.time() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < end, f"{path} never appeared"
        time.sleep(0.02)


def _slow_train(out: Path, epochs: int = 2, batch_size: int = 1) -> subprocess.Popen:
    """A tiny ConvAE whose epochs take a while (small batches), so it can be caught mid-epoch."""
    return _popen("train", "convae", "--dataset", "digits", "--epochs", epochs, "--batch-size", batch_size,
                  "--out", out, *TINY_SET)


# ------------------------------------------------------------------------------------------ one writer

def test_a_second_writer_of_a_run_folder_is_refused_while_the_first_trains(tmp_path):
    out = tmp_path / "run"
    first = _slow_train(out, epochs=100)  # far longer than the checks take on a loaded machine; killed below
    try:
        _wait_for(out / "config.json", first)
        assert_clean_error(run_zoo("train", "--resume", out, "--epochs", 101),
                           "is being written by another zoo process", f"pid {first.pid}")
        # said as the writer it is, not "already holds a run" (whose hints, --resume and --overwrite, are refused)
        assert_clean_error(run_zoo("train", "convae", "--dataset", "digits", "--out", out, *TINY_SET),
                           "is being written by another zoo process", f"pid {first.pid}")
        assert_clean_error(run_zoo("push", out, f"file://{tmp_path / 'hub' / 'run'}"),  # a mid-training snapshot
                           "is being trained by another zoo process", f"pid {first.pid}", "between two epochs")
        assert not (tmp_path / "hub").exists()
        assert first.poll() is None  # the first writer goes on, undisturbed
    finally:
        first.kill()
        first.wait()


def test_two_trainings_started_at_once_into_one_folder_never_interleave(tmp_path):
    out = tmp_path / "run"
    procs = [_popen("train", "convae", "--dataset", "digits", "--epochs", 3, "--out", out, *TINY_SET)
             for _ in range(2)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes[0] == 0 and codes[1] != 0, results
    loser = next(r for r in results if r[0] != 0)
    assert "Traceback" not in loser[2]
    assert ("is being written by another zoo process" in loser[2]) or ("already holds a run" in loser[2])
    assert [r["epoch"] for r in read_metrics(out)] == [1, 2, 3]
    zoo.evaluate(out, save=False)


# ------------------------------------------------------------------------------------------ complete or absent

def test_a_run_killed_in_its_first_epoch_is_loadable_and_resumes(tmp_path):
    out = tmp_path / "run"
    proc = _slow_train(out, epochs=2, batch_size=8)
    _wait_for(out / "config.json", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert {"config.json", "model.safetensors", "checkpoint.safetensors"} <= {p.name for p in out.iterdir()}
    zoo.load(out)  # the initial weights: loadable from the moment the folder is a run
    resumed = run_zoo("train", "--resume", out, "--epochs", 1, "--no-progress", timeout=300)
    assert_ok(resumed)
    assert [r["epoch"] for r in read_metrics(out)] == [1]


@pytest.mark.parametrize("delay", [0.0, 1.5, 3.0])
def test_a_start_killed_at_any_moment_leaves_a_complete_run_or_none(tmp_path, delay):
    out = tmp_path / "run"
    proc = _slow_train(out, epochs=1)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if out.exists() and (out / "config.json").exists():
        zoo.load(out)
        assert (out / "checkpoint.safetensors").is_file()
    else:  # not a run: then training into it starts anew, without --resume
        assert_ok(invoke("train", "convae", "--dataset", "digits", "--epochs", 1, "--out", out, *TINY_SET))
        zoo.load(out)


def test_a_start_refused_after_the_model_is_built_leaves_no_folder(tmp_path):
    out = tmp_path / "gan-run"
    assert_clean_error(invoke("train", "gan", "--dataset", "digits", "--epochs", 1, "--out", out,
                              "--set", "cuda_graph=true", "--device", "cpu", "--no-progress"), "cuda_graph")
    assert not out.exists()


def test_a_refused_start_in_an_existing_folder_keeps_the_users_files(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert_clean_error(invoke("train", "gan", "--dataset", "digits", "--epochs", 1, "--out", out,
                              "--set", "cuda_graph=true", "--device", "cpu", "--no-progress"), "cuda_graph")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_temporaries_left_by_a_kill_are_removed_by_the_next_writer_and_nothing_else(run_copy):
    stale = [run_copy / ".model.safetensors.k2j3x9a_.tmp", run_copy / ".checkpoint.safetensors.x9q2w3e4.tmp"]
    fresh = run_copy / ".eval.json.a1b2c3d4.tmp"      # another command's write in progress
    mine = run_copy / ".notes.tmp"                     # a user's file that merely looks temporary
    for p in [*stale, fresh, mine]:
        p.write_bytes(b"\0" * 4096)
    hour_ago = time.time() - 3600
    for p in [*stale, mine]:
        os.utime(p, (hour_ago, hour_ago))
    assert_ok(invoke("train", "--resume", run_copy, "--epochs", 3, "--no-progress"))
    assert not [p for p in stale if p.exists()]
    assert fresh.exists() and mine.exists()


# ------------------------------------------------------------------------------------------ resume options

def test_resume_refuses_fewer_epochs_than_done_and_keeps_config_true(run_copy):
    before = (run_copy / "config.json").read_bytes()
    assert_clean_error(invoke("train", "--resume", run_copy, "--epochs", 1), "already trained 2 epochs",
                       "--epochs 2 or more")
    assert (run_copy / "config.json").read_bytes() == before


@pytest.mark.parametrize("args, words", [
    (["--preset", "convae-mnist"], "--preset cannot be used with --resume"),
    (["--out", "elsewhere"], "a resumed run stays in its own folder"),
])
def test_resume_refuses_options_it_cannot_honour(run_copy, args, words):
    before = {p.name: p.read_bytes() for p in run_copy.iterdir()}
    assert_clean_error(invoke("train", "--resume", run_copy, *args), words)
    assert {p.name: p.read_bytes() for p in run_copy.iterdir()} == before


def test_resume_honours_a_config_file_of_changeable_keys(run_copy, tmp_path):
    (tmp_path / "more.toml").write_text("epochs = 3\npatience = 5\n")
    assert_ok(invoke("train", "--resume", run_copy, "--config", tmp_path / "more.toml", "--no-progress"))
    cfg = read_config(run_copy)
    assert cfg["train"]["epochs"] == 3 and cfg["train"]["patience"] == 5
    assert [r["epoch"] for r in read_metrics(run_copy)] == [1, 2, 3]


@pytest.mark.parametrize("text, words", [
    ("epochs = 3\nlatnet_dim = 8\n", "unknown key 'latnet_dim'"),
    ("latent_dim = 8\n", "cannot change latent_dim"),
    ('model = "vae"\n', "the config file is for model 'vae'"),
])
def test_resume_refuses_a_config_file_it_cannot_honour(run_copy, tmp_path, text, words):
    (tmp_path / "c.toml").write_text(text)
    before = (run_copy / "config.json").read_bytes()
    assert_clean_error(invoke("train", "--resume", run_copy, "--config", tmp_path / "c.toml"), words)
    assert (run_copy / "config.json").read_bytes() == before


# ------------------------------------------------------------------------------------------ verified on load

def _flip(path: Path, count: int = 50) -> None:
    data = bytearray(path.read_bytes())
    n = int.from_bytes(data[:8], "little")
    start = 8 + n
    for i in range(count):
        data[start + (i * 97) % (len(data) - start)] ^= 0x5A
    path.write_bytes(bytes(data))


def test_flipped_bytes_in_the_weights_are_refused_not_measured(run_copy):
    _flip(run_copy / "model.safetensors")
    with pytest.raises(RunError, match="do not match the checksum recorded when it was written"):
        zoo.load(run_copy)
    assert_clean_error(invoke("eval", run_copy), "model.safetensors is damaged")


def test_a_damaged_checkpoint_is_reported_as_damaged_not_diverged(run_copy):
    _flip(run_copy / "checkpoint.safetensors")
    out = assert_clean_error(invoke("train", "--resume", run_copy, "--epochs", 3), "checkpoint.safetensors is damaged")
    assert "diverged" not in out


def test_weights_of_the_wrong_dtype_are_refused_not_truncated(run_copy):
    tensors = load_file(str(run_copy / "model.safetensors"))
    save_file({k: (v * 1000).to(torch.int64) for k, v in tensors.items()}, str(run_copy / "model.safetensors"))
    assert_clean_error(invoke("eval", run_copy), "wrong dtype", "I64")


def test_weights_that_are_not_finite_are_refused(run_copy):
    tensors = load_file(str(run_copy / "model.safetensors"))
    first = sorted(k for k in tensors if tensors[k].is_floating_point())[0]
    tensors[first] = torch.full_like(tensors[first], float("nan"))
    from zoo.runs.checkpoint import save_tensors

    save_tensors(run_copy / "model.safetensors", tensors)  # a valid checksum over NaN weights
    assert_clean_error(invoke("eval", run_copy), "not finite")


def _rewrite_checkpoint_meta(run: Path, change) -> None:
    from zoo.runs.checkpoint import load_tensors, save_tensors

    tensors, meta = load_tensors(run / "checkpoint.safetensors")
    meta.pop("zoo_sha256")
    change(tensors, meta)
    save_tensors(run / "checkpoint.safetensors", tensors, meta)


@pytest.mark.parametrize("change", [
    lambda t, m: m.pop("trainer"),
    lambda t, m: m.update(trainer="{not json"),
    lambda t, m: m.update(trainer='["a", "list"]'),
    lambda t, m: m.update(trainer='{"epoch": "two", "best_epoch": 1, "bad_epochs": 0}'),
    lambda t, m: m.update({"opt.main.param_groups": "[]"}),
    lambda t, m: m.update({"opt.main.param_groups": '{"lr": 1}'}),
    lambda t, m: t.update({"rng.shuffle": torch.zeros(3, dtype=torch.uint8)}),
    lambda t, m: t.update({"rng.torch": torch.zeros(5, dtype=torch.float32)}),
    lambda t, m: t.update({"opt.main.0.exp_avg": torch.zeros(7)}),
], ids=["no-trainer", "trainer-not-json", "trainer-a-list", "epoch-a-string", "no-param-groups",
        "param-groups-a-table", "rng-wrong-size", "rng-wrong-dtype", "optimizer-state-wrong-shape"])
def test_checkpoint_metadata_that_is_damaged_is_one_clear_message(run_copy, change):
    _rewrite_checkpoint_meta(run_copy, change)
    before = (run_copy / "model.safetensors").read_bytes()
    assert_clean_error(invoke("train", "--resume", run_copy, "--epochs", 3), "checkpoint.safetensors is damaged")
    assert (run_copy / "model.safetensors").read_bytes() == before


@pytest.mark.parametrize("change, words", [
    (lambda c: c.update(model=None), "'model' must be the name of a model"),
    (lambda c: c.update(model=7), "'model' must be the name of a model"),
    (lambda c: c.update(config=None), "'config' must be a table"),
    (lambda c: c.update(train=[1]), "'train' must be a table"),
    (lambda c: c.pop("data"), "'data' must be a table, it is missing"),
    (lambda c: c["data"].update(shape=None), "data.shape must be"),
    (lambda c: c["data"].update(shape=[1, 28]), "data.shape must be"),
    (lambda c: c["data"].update(shape=[1, 28.5, 28]), "data.shape must be"),
    (lambda c: c["data"].update(shape=[1, 100000, 100000]), "data.shape must be"),
    (lambda c: c["data"].update(classes="0123"), "data.classes must be"),
    (lambda c: c["train"].update(dataset=["digits"]), "train.dataset must be"),
    (lambda c: c["config"].update(latent_dim="four"), "latent_dim='four' is not a valid int"),
    (lambda c: c["train"].update(val_fraction=None), "val_fraction=None"),
], ids=["model-null", "model-int", "config-null", "train-list", "no-data", "shape-null", "shape-short",
        "shape-float", "shape-huge", "classes-string", "dataset-list", "latent-string", "val-fraction-null"])
def test_config_fields_of_the_wrong_type_are_one_clear_message(run_copy, change, words):
    cfg = read_config(run_copy)
    change(cfg)
    (run_copy / "config.json").write_text(json.dumps(cfg))
    assert_clean_error(invoke("eval", run_copy), words)
    assert_clean_error(invoke("train", "--resume", run_copy, "--epochs", 3), words)


# ------------------------------------------------------------------------------------------ sizes checked first

def _peak_rss_mb(args: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    """Run `python -m zoo ARGS` alone and return it with its peak resident memory (MiB)."""
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "sys.stdout.write(r.stdout); sys.stderr.write(r.stderr); "
            "print('PEAK', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024); sys.exit(r.returncode)")
    proc = subprocess.run([sys.executable, "-c", code, *ZOO, *map(str, args)], capture_output=True, text=True,
                          env={**os.environ}, timeout=300)
    peak = float(proc.stdout.rsplit("PEAK", 1)[1].split()[0])
    proc.stdout = proc.stdout.rsplit("PEAK", 1)[0]
    return proc, peak


def test_a_config_that_implies_huge_weights_is_refused_before_allocating(run_copy):
    cfg = read_config(run_copy)
    cfg["config"].update(hidden=[65536, 65536], latent_dim=4096)
    (run_copy / "config.json").write_text(json.dumps(cfg))
    proc, peak = _peak_rss_mb(["eval", run_copy])
    assert_clean_error(proc, "does not fit the model described by its config.json", "wrong shape")
    assert peak < 1500, f"peak memory {peak:.0f} MiB"


@pytest.mark.parametrize("assignment", [["--set", "hidden=65536,65536", "--set", "latent_dim=4096"]])
def test_a_new_model_too_large_for_memory_is_refused_before_allocating(tmp_path, assignment):
    proc, peak = _peak_rss_mb(["train", "convae", "--dataset", "digits", "--epochs", 1, "--device", "cpu",
                               "--out", tmp_path / "big", *assignment])
    assert_clean_error(proc, "would need about", "GiB", "are free")
    assert peak < 1500, f"peak memory {peak:.0f} MiB"
    assert not (tmp_path / "big").exists()
    with pytest.raises(ConfigError, match="would need about"):
        zoo.create("convae", hidden=[65536, 65536], latent_dim=4096)


def test_a_weights_header_declaring_more_than_the_file_holds_is_refused(run_copy):
    path = run_copy / "model.safetensors"
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    name = sorted(k for k in header if k != "__metadata__")[0]
    header[name]["shape"] = [1 << 20, 1 << 20]
    header[name]["data_offsets"] = [0, 4 << 40]
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + data[8 + n:])
    assert_clean_error(invoke("eval", run_copy), "model.safetensors")


# ------------------------------------------------------------------------------------------ generate

@pytest.fixture(scope="module")
def vae_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vae") / "vae"
    zoo.train("vae", dataset="digits", epochs=1, out=out, log=quiet, progress=False, **TINY)
    return out


def test_generate_streams_samples_to_a_file_with_memory_flat_in_n(vae_run, tmp_path):
    small, small_peak = _peak_rss_mb(["generate", vae_run, "--n", 500, "--out", tmp_path / "a.safetensors"])
    big, big_peak = _peak_rss_mb(["generate", vae_run, "--n", 60000, "--out", tmp_path / "b.safetensors"])
    assert_ok(small), assert_ok(big)
    # 60,000 images of 28×28 floats are 188 MB: none of it may be held at once.
    assert big_peak - small_peak < 60, (small_peak, big_peak)
    from zoo.runs.checkpoint import load_tensors

    images = load_tensors(tmp_path / "b.safetensors")[0]["images"]  # checksum verified
    assert images.shape == (60000, 1, 28, 28) and float(images.min()) >= 0 and float(images.max()) <= 1
    first = load_file(str(tmp_path / "a.safetensors"))["images"]
    assert torch.equal(images[:256], first[:256])  # the same seed gives the same images


def test_generate_refuses_a_picture_too_large_to_read(vae_run, tmp_path):
    assert_clean_error(invoke("generate", vae_run, "--n", 5000, "--out", tmp_path / "g.png"),
                       "a picture shows at most 2,500 samples", ".safetensors")
    assert not (tmp_path / "g.png").exists()


@pytest.mark.parametrize("seed", ["-1", str(2**64), str(2**70)])
def test_generate_refuses_a_seed_out_of_range(vae_run, seed):
    assert_clean_error(invoke("generate", vae_run, "--n", 4, "--seed", seed), "--seed")
    with pytest.raises(ConfigError, match="--seed must be a whole number"):
        generate(vae_run, n=4, seed=int(seed))


# ------------------------------------------------------------------------------- found by the second hostile run

def test_a_start_into_a_folder_holding_a_users_run_files_is_refused_and_keeps_them(digits_run, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    for name in ("model.safetensors", "checkpoint.safetensors", "metrics.jsonl"):
        (out / name).write_bytes((digits_run / name).read_bytes())
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert_clean_error(invoke("train", "convae", "--dataset", "digits", "--epochs", 1, "--out", out, *TINY_SET),
                       "holds files a new run would replace", "model.safetensors")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize("command", [
    ["generate", "{run}", "--sampler", "gaussian", "--n", "4", "--out", "{run}/model.safetensors"],
    ["reconstruct", "{run}", "--n", "4", "--out", "{run}/checkpoint.safetensors"],
    ["generate", "{run}", "--sampler", "gaussian", "--n", "4", "--out", "{run}/config.json"],
])
def test_an_output_may_not_replace_a_runs_own_records(run_copy, command):
    before = {p.name: p.read_bytes() for p in run_copy.iterdir()}
    assert_clean_error(invoke(*[c.format(run=run_copy) for c in command]), "would replace the run's own")
    after = {p.name: p.read_bytes() for p in run_copy.iterdir() if not p.name.startswith("sampler-")}
    assert after == {k: v for k, v in before.items() if not k.startswith("sampler-")}


def test_an_edited_optimizer_setting_in_the_checkpoint_is_damage(run_copy):
    path = run_copy / "checkpoint.safetensors"
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    groups = json.loads(header["__metadata__"]["opt.main.param_groups"])
    groups[0]["weight_decay"] = 50.0
    header["__metadata__"]["opt.main.param_groups"] = json.dumps(groups)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + data[8 + n:])
    assert_clean_error(invoke("train", "--resume", run_copy, "--epochs", 3), "checkpoint.safetensors is damaged")


def test_a_forged_optimizer_setting_that_disagrees_with_the_config_is_refused(run_copy):
    def change(tensors, meta):
        groups = json.loads(meta["opt.main.param_groups"])
        groups[0]["amsgrad"] = True
        meta["opt.main.param_groups"] = json.dumps(groups)

    _rewrite_checkpoint_meta(run_copy, change)  # with a recomputed checksum
    assert_clean_error(invoke("train", "--resume", run_copy, "--epochs", 3), "amsgrad", "disagrees with")


def test_bytes_appended_to_the_weights_are_refused_before_being_read(run_copy):
    with open(run_copy / "model.safetensors", "ab") as fh:
        fh.write(b"\0" * 4096)
    assert_clean_error(invoke("eval", run_copy), "bytes past its tensors")


def test_a_deeply_nested_config_file_is_one_message(tmp_path):
    (tmp_path / "d.toml").write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    assert_clean_error(invoke("train", "convae", "--config", tmp_path / "d.toml"), "nested too deeply")


def test_out_that_is_a_hub_location_is_refused(tmp_path):
    assert_clean_error(invoke("train", "convae", "--dataset", "digits", "--out", f"file://{tmp_path}/x", *TINY_SET),
                       "is a hub location", "zoo push")
    assert not (Path.cwd() / "file:").exists()


def test_resume_drops_hand_edited_metrics_and_writes_strict_json(run_copy):
    lines = (run_copy / "metrics.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    edited = [json.dumps({**first, "val_loss": "oops"}).replace('"oops"', "1e999"), *lines[1:],
              json.dumps({**first, "epoch": 99})]  # an infinity and an epoch from nowhere
    (run_copy / "metrics.jsonl").write_text("\n".join(edited) + "\n")
    done = len(lines)
    out = assert_ok(invoke("train", "--resume", run_copy, "--epochs", done + 1))
    assert "1 damaged line(s)" in out
    rows = read_metrics(run_copy)  # strict JSON: no Infinity survives the rewrite
    assert [r["epoch"] for r in rows] == list(range(2, done + 2))
    push_card = zhub.model_card(run_copy, "file:///hub/x")
    assert ": inf" not in push_card and "| inf |" not in push_card and "epochs: 99" not in push_card


def test_a_run_loaded_while_a_training_replaces_its_weights_records_the_digest_of_the_weights_it_read(
        run_copy, monkeypatch):
    """The digest was read from the file again after its tensors: a `zoo train --resume` that replaced it between the
    two reads had `zoo eval` record the old weights' figures as the new weights' (concurrent19)."""
    from zoo.runs import checkpoint as ckpt

    path = run_copy / "model.safetensors"
    read = ckpt.load_tensors

    def replaced_right_after_reading(p):
        tensors, meta = read(p)
        if Path(p) == path:
            ckpt.save_tensors(path, {k: v * 2 if v.is_floating_point() else v for k, v in tensors.items()})
        return tensors, meta
    before = ckpt.weights_digest(path)
    monkeypatch.setattr(ckpt, "load_tensors", replaced_right_after_reading)
    run = zoo.load(run_copy)
    monkeypatch.undo()
    assert run.file_digest == before != ckpt.weights_digest(path)
    assert "holds other weights than were loaded" in run.weights_changed()
    with pytest.raises(RunError, match="would be recorded as those of the weights in the file") as refused:
        zoo.evaluate(run, limit=10)  # its figures are of the weights read, not of the file's now
    assert refused.value.hint.startswith("Run the command again")  # a CLI user has no save=False
