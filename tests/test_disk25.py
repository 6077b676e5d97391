"""Storage errors said as the place the user can act on, and files that stay one epoch's (fsfail25 §4, §6, §7):
a pull into a full or size-limited cache names the cache, not the hub; a resume of a read-only run names the run
folder and says what can be done (not --out, which a resume refuses); `zoo latent --out` into a read-only folder
names the picture asked for; a checkpoint that cannot be written leaves the best weights at the saved epoch, and
a resume repairs best weights that lag the checkpoint (a kill between the two writes)."""

from __future__ import annotations

import json
import shlex
import shutil

import pytest
from conftest import TINY, TINY_SET, assert_same_tensors, quiet, weights
from test_oserrors import mounts  # noqa: F401  (a fixture: mount namespaces, or the test is skipped)
from test_oserrors import (ZOO, assert_storage_error, fill, in_mount_namespace, q, read_only, tmpfs,
                           zoo_with_file_size_limit)

from zoo.runs.lock import LOCK, RESULTS_LOCK


# ------------------------------------------------------------------------------------------ §4 pull into the cache

@pytest.mark.usefixtures("mounts")
def test_pull_into_a_full_cache_names_the_cache_not_the_hub(digits_run, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    pull = shlex.join([*ZOO, "pull", f"file://{digits_run}"])
    result = in_mount_namespace(tmpfs(cache, 64), fill(cache), f"XDG_CACHE_HOME={q(cache)} {pull}")
    line = assert_storage_error(result, "no space left on device", "XDG_CACHE_HOME")
    assert str(cache / "zoo" / "hub") in line and str(digits_run) not in line and ".tmp-" not in line


def test_pull_over_a_file_size_limit_names_the_cache_and_leaves_no_temporary(digits_run, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    result = zoo_with_file_size_limit(8_000, "pull", f"file://{digits_run}")  # the weights are larger
    line = assert_storage_error(result, "file too large", "XDG_CACHE_HOME")
    assert str(cache / "zoo" / "hub") in line and str(digits_run) not in line and ".tmp-" not in line
    assert not list((cache / "zoo" / "hub" / "file").glob(".tmp-*"))


# ------------------------------------------------------------------------------------------ §6 read-only places

@pytest.mark.usefixtures("mounts")
def test_resume_of_a_read_only_run_names_the_run_folder_and_says_to_resume_a_copy(run_copy):
    resume = shlex.join([*ZOO, "train", "--resume", str(run_copy), "--epochs", "3", *TINY_SET])
    result = in_mount_namespace(read_only(run_copy), resume)
    line = assert_storage_error(result, "read-only file system", "resume the copy")
    assert str(run_copy) in line and LOCK not in line
    hint = result.stderr.strip().splitlines()[-1]
    assert "--out" not in hint and "XDG_CACHE_HOME" not in hint, result.stderr


@pytest.mark.usefixtures("mounts")
def test_latent_into_a_read_only_folder_names_the_picture_asked_for(digits_run, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    out = folder / "l.png"
    result = in_mount_namespace(read_only(folder), shlex.join([*ZOO, "latent", str(digits_run), "--out", str(out)]))
    line = assert_storage_error(result, "read-only file system")
    assert str(out) in line and RESULTS_LOCK not in line


# ------------------------------------------------------------------------------------------ §7 best weights

def test_a_checkpoint_that_cannot_be_written_leaves_the_best_weights_at_the_saved_epoch(run_copy):
    before = {n: (run_copy / n).read_bytes() for n in ("model.safetensors", "checkpoint.safetensors")}  # not rewritten
    assert len(before["model.safetensors"]) < 40_000 < len(before["checkpoint.safetensors"])
    result = zoo_with_file_size_limit(40_000, "train", "--resume", run_copy, "--epochs", "3", *TINY_SET)
    assert_storage_error(result, "file too large", "Epochs up to 2 are saved")
    rows = [json.loads(line) for line in (run_copy / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["epoch"] == 3 and rows[-1]["best"], "epoch 3 did not improve: the test proves nothing"
    assert {n: (run_copy / n).read_bytes() for n in before} == before
    assert not list(run_copy.glob(".*.tmp"))


def test_a_resume_writes_again_best_weights_that_lag_the_checkpoint(run_copy, tmp_path):
    import zoo

    best = {k: v.clone() for k, v in weights(run_copy / "model.safetensors").items()}  # a copy: the file is rewritten
    older = tmp_path / "one-epoch"
    zoo.train("convae", dataset="digits", epochs=1, out=older, log=quiet, progress=False, **TINY)
    shutil.copy(older / "model.safetensors", run_copy / "model.safetensors")  # as a kill after the checkpoint left
    notes = []
    zoo.train(resume=run_copy, log=notes.append, progress=False)
    assert_same_tensors(weights(run_copy / "model.safetensors"), best, rtol=0, atol=0)
    assert any("written again" in n for n in notes), notes


@pytest.mark.parametrize("damage", ["a write that failed after the last checkpoint", "deleted"])
def test_a_gan_resumed_after_its_last_epoch_writes_again_weights_that_are_not_its_checkpoints(tmp_path, damage):
    import zoo

    gan = {"g_channels": 8, "d_channels": 8, "latent_dim": 16, "device": "cpu"}
    first, run = tmp_path / "one-epoch", tmp_path / "run"
    zoo.train("gan", dataset="digits", epochs=1, out=first, log=quiet, progress=False, **gan)
    zoo.train("gan", dataset="digits", epochs=2, out=run, log=quiet, progress=False, **gan)
    last = {k: v.clone() for k, v in weights(run / "model.safetensors").items()}
    if damage == "deleted":
        (run / "model.safetensors").unlink()
    else:  # epoch 1's weights, as a failed write of epoch 2's (after its checkpoint) leaves them
        shutil.copy(first / "model.safetensors", run / "model.safetensors")
    notes = []
    zoo.train(resume=run, log=notes.append, progress=False)  # it finished its epochs: nothing is trained
    assert_same_tensors(weights(run / "model.safetensors"), last, rtol=0, atol=0)
    assert any("did not hold the weights of the last epoch, 2" in n and "written again" in n for n in notes), notes
