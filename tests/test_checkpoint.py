"""Damaged, foreign or missing run files end in a clear RunError, never in a traceback."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import TINY, assert_clean_error, invoke, read_metrics, run_zoo, weights
from safetensors.torch import save_file

import zoo
from zoo.errors import RunError


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage(path):
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())


def _empty(path):
    path.write_bytes(b"")


def _header_only(path):
    header = json.dumps({"w": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}).encode()
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 10)


def _pickle(path):
    torch.save({"w": torch.zeros(3)}, path)  # a .pt pickle under the safetensors name


DAMAGE = {"truncated": _truncate, "garbage": _garbage, "empty": _empty, "header-only": _header_only,
          "pickle": _pickle}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_weights_are_a_run_error(run_copy, damage):
    DAMAGE[damage](run_copy / "model.safetensors")
    with pytest.raises(RunError) as e:
        zoo.load(run_copy)
    assert str(run_copy / "model.safetensors") in str(e.value)
    assert "truncated or corrupt" in str(e.value)
    assert "only reads intact safetensors" in e.value.hint


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_cli_eval_of_damaged_weights(run_copy, damage):
    DAMAGE[damage](run_copy / "model.safetensors")
    assert_clean_error(invoke("eval", run_copy), "model.safetensors is truncated or corrupt", code=1)
    assert not (run_copy / "eval.json").exists()


def test_cli_eval_of_damaged_weights_in_a_real_process(run_copy):
    _truncate(run_copy / "model.safetensors")
    result = run_zoo("eval", run_copy)
    assert_clean_error(result, "truncated or corrupt", code=1)
    assert result.stdout == ""


def test_weights_of_another_architecture_are_refused(run_copy):
    other = zoo.create("convae", **{**TINY, "latent_dim": 6})
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(run_copy / "model.safetensors"))
    with pytest.raises(RunError) as e:
        zoo.load(run_copy)
    assert "does not fit the model described by its config.json" in str(e.value)
    assert "wrong shape" in str(e.value) and "encoder" in str(e.value)
    assert_clean_error(invoke("eval", run_copy), "does not fit the model", code=1)


def test_weights_with_missing_and_extra_tensors_are_refused(run_copy):
    state = weights(run_copy / "model.safetensors")
    state.pop("encoder.0.bias")
    state["extra.weight"] = torch.zeros(2)
    save_file(state, str(run_copy / "model.safetensors"))
    with pytest.raises(RunError) as e:
        zoo.load(run_copy)
    assert "missing encoder.0.bias" in str(e.value) and "unexpected extra.weight" in str(e.value)


def test_missing_weights_file(run_copy):
    (run_copy / "model.safetensors").unlink()
    assert_clean_error(invoke("eval", run_copy), "model.safetensors is missing")


def test_damaged_checkpoint_refuses_resume(run_copy):
    _truncate(run_copy / "checkpoint.safetensors")
    assert_clean_error(invoke("train", "--resume", run_copy, "--epochs", "3"),
                       "checkpoint.safetensors is truncated or corrupt", "Restore checkpoint.safetensors to train on",
                       "model.safetensors (its best weights) is a file of its own")
    assert zoo.load(run_copy) is not None  # the model itself is intact, as the message says


def test_damaged_best_weights_refuse_resume_before_any_epoch_and_say_how_to_go_on(run_copy):
    _truncate(run_copy / "model.safetensors")
    checkpoint = (run_copy / "checkpoint.safetensors").read_bytes()
    assert_clean_error(invoke("train", "--resume", run_copy, "--epochs", "3"),
                       "model.safetensors is truncated or corrupt", "It holds the run's best weights (epoch 2)",
                       "delete it to resume", code=1)
    assert (run_copy / "checkpoint.safetensors").read_bytes() == checkpoint  # no epoch was trained
    assert [r["epoch"] for r in read_metrics(run_copy)] == [1, 2]


def test_best_weights_of_another_model_refuse_resume_before_any_epoch(run_copy):
    other = zoo.create("convae", **{**TINY, "latent_dim": 6})
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(run_copy / "model.safetensors"))
    checkpoint = (run_copy / "checkpoint.safetensors").read_bytes()
    assert_clean_error(invoke("train", "--resume", run_copy, "--epochs", "3"), "does not fit the model",
                       "It holds the run's best weights (epoch 2)", code=1)
    assert (run_copy / "checkpoint.safetensors").read_bytes() == checkpoint


def test_missing_best_weights_are_said_and_the_best_epoch_from_then_on_is_kept(run_copy):
    (run_copy / "model.safetensors").unlink()
    result = invoke("train", "--resume", run_copy, "--epochs", "3")
    assert result.exit_code == 0, result.output
    assert "model.safetensors (the best weights, of epoch 2) is missing" in result.output
    rows = read_metrics(run_copy)
    assert [r["epoch"] for r in rows] == [1, 2, 3] and rows[-1]["best"]
    assert zoo.load(run_copy) is not None


def test_a_missing_training_log_is_said_on_resume(run_copy):
    (run_copy / "metrics.jsonl").unlink()
    result = invoke("train", "--resume", run_copy, "--epochs", "3")
    assert result.exit_code == 0, result.output
    assert "metrics.jsonl is missing: the log of epochs 1-2 (their metrics and times) is lost" in result.output
    assert [r["epoch"] for r in read_metrics(run_copy)] == [3]


def test_weights_file_as_checkpoint_refuses_resume(run_copy):
    (run_copy / "checkpoint.safetensors").write_bytes((run_copy / "model.safetensors").read_bytes())
    assert_clean_error(invoke("train", "--resume", run_copy, "--epochs", "3"), "does not fit the model")


def test_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "model.safetensors").write_bytes(b"x")
    with pytest.raises(RunError, match="is not a zoo run"):
        zoo.load(tmp_path / "pics")
    assert_clean_error(invoke("eval", tmp_path / "pics"), "is not a zoo run (no config.json)",
                       "Pass a folder written by `zoo train`")


def test_file_that_is_not_a_run(run_copy):
    assert_clean_error(invoke("eval", run_copy / "model.safetensors"), "is a file, not a run folder")


def test_missing_folder(tmp_path):
    with pytest.raises(RunError, match="does not exist"):
        zoo.load(tmp_path / "nope")
    assert_clean_error(invoke("eval", tmp_path / "nope"), "does not exist")
    assert_clean_error(invoke("reconstruct", tmp_path / "nope"), "does not exist")


@pytest.mark.parametrize("text, words", [
    ("{not json", ["config.json is not valid JSON"]),
    ("[1, 2]", ["is not a zoo run config"]),
    ('{"model": "convae"}', ["is not a zoo run config"]),
    ('{"model": "nosuchmodel", "config": {}, "train": {}, "data": {"shape": [1, 28, 28]}}',
     ["'nosuchmodel', which is not installed"]),
])
def test_damaged_run_config(run_copy, text, words):
    (run_copy / "config.json").write_text(text)
    assert_clean_error(invoke("eval", run_copy), *words)


def test_run_config_with_an_ill_typed_value(run_copy):
    cfg = json.loads((run_copy / "config.json").read_text())
    cfg["config"]["latent_dim"] = "many"
    (run_copy / "config.json").write_text(json.dumps(cfg))
    assert_clean_error(invoke("eval", run_copy), "latent_dim='many' is not a valid int")


def test_run_config_without_training_settings(run_copy):
    cfg = json.loads((run_copy / "config.json").read_text())
    del cfg["train"]
    (run_copy / "config.json").write_text(json.dumps(cfg))
    assert_clean_error(invoke("eval", run_copy), "config.json")


def test_weights_are_never_unpickled(run_copy, tmp_path):
    """A pickle that would run code when unpickled is only ever read as (invalid) safetensors."""
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"w": Evil()}, run_copy / "model.safetensors")
    with pytest.raises(RunError):
        zoo.load(run_copy)
    assert not marker.exists()


@pytest.mark.parametrize("made_by, says", [("0.1.0", "written by zoo 0.1.0, and zoo"),
                                           (None, "another model or configuration")])
def test_weights_that_do_not_fit_say_when_another_zoo_version_wrote_the_run(run_copy, made_by, says):
    config = json.loads((run_copy / "config.json").read_text())
    config["config"]["hidden"] = [17]  # the weights file holds a [16] layer
    config["zoo_version"] = made_by or zoo.__version__
    (run_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(RunError, match="does not fit the model described by its config.json") as e:
        zoo.load(run_copy)
    assert says in e.value.hint
    assert ("train it again with zoo " + zoo.__version__ in e.value.hint) == (made_by is not None)


WRITE_PEAK = """
import resource, sys, torch
from pathlib import Path
from zoo.runs.checkpoint import load_tensors, save_tensors
state = {f"w{i}": torch.randn(12_500_000) for i in range(4)}  # 200 MB
state["tied"] = state["w0"][:1000]  # tied weights share memory: copied, as safetensors asks
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
save_tensors(Path(sys.argv[1]), state, {"kind": "test"})
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024 / 200e6)
back, meta = load_tensors(Path(sys.argv[1]))
assert all(torch.equal(back[k], state[k]) for k in state) and meta["kind"] == "test"
"""


def test_writing_tensors_takes_a_small_part_of_their_size_in_memory_and_reads_back_the_same(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", WRITE_PEAK, str(tmp_path / "w.safetensors")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) < 0.25  # it was 2.9 (a copy of every tensor, then of the whole file as bytes)
