"""The `zoo` command line: help without torch, eval, reconstruct, and one clean message for every mistake."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from conftest import TINY_SET, assert_clean_error, assert_ok, invoke, is_png, read_metrics, run_zoo
from PIL import Image

import zoo

HELP_WITHOUT_TORCH = """
import sys
from zoo.cli.main import cli
try:
    cli({args!r}, prog_name="zoo")
except SystemExit as e:
    assert e.code in (0, None), e.code
print("TORCH-IMPORTED" if "torch" in sys.modules else "NO-TORCH")
"""


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["eval", "--help"], ["--version"]])
def test_help_does_not_import_torch(args):
    result = subprocess.run([sys.executable, "-c", HELP_WITHOUT_TORCH.format(args=args)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("NO-TORCH"), result.stdout
    assert "Usage: zoo" in result.stdout or "version" in result.stdout


def test_python_dash_m_zoo_help():
    result = run_zoo("--help")
    out = assert_ok(result)
    for command in ("list", "info", "train", "eval", "reconstruct"):
        assert command in out
    assert "zoo train --resume" in out


def test_version():
    assert zoo.__version__ in assert_ok(invoke("--version"))


def test_train_help_lists_the_options():
    out = assert_ok(invoke("train", "--help"))
    for option in ("--dataset", "--preset", "--config", "--set", "--out", "--resume", "--epochs", "--data-dir"):
        assert option in out


# ------------------------------------------------------------------------------------------ eval, reconstruct

def test_eval_prints_metrics_and_writes_eval_json(run_copy):
    out = assert_ok(invoke("eval", run_copy))
    assert "convae on digits (test, 359 images" in out
    for metric in ("mse", "bce", "psnr"):
        assert metric in out
    saved = json.loads((run_copy / "eval.json").read_text())
    assert saved["model"] == "convae" and saved["split"] == "test" and saved["images"] == 359
    m = saved["metrics"]
    assert set(m) == {"mse", "bce", "psnr"}
    assert 0 < m["mse"] < 0.25 and m["bce"] > 0 and m["psnr"] > 0
    rows = [line.split() for line in out.splitlines() if line.startswith("  ") and " ± " in line]
    printed = {name: (float(value), float(se)) for name, value, _, se in rows}  # name, mean, ±, standard error
    assert set(printed) == set(m) == set(saved["standard_errors"])
    for name, value in m.items():  # the printed figures are the saved ones, to the digits shown
        assert printed[name][0] == pytest.approx(value, rel=1e-5), name
        assert printed[name][1] == pytest.approx(saved["standard_errors"][name], rel=0.05), name
    assert f"written to {run_copy / 'eval.json'}" in out
    assert m == pytest.approx(zoo.evaluate(run_copy, save=False)["metrics"], rel=1e-9)  # the test set, measured
    card = (run_copy / "README.md").read_text()
    assert "## Test metrics (359 test images, grey levels)" in card and "model-index:" in card
    assert "test metrics (359 images, grey levels): mse" in assert_ok(invoke("info", run_copy))  # binarised or not


def test_eval_json_and_splits(run_copy):
    result = json.loads(assert_ok(invoke("eval", run_copy, "--split", "val", "--json")))
    assert result["split"] == "val" and result["images"] == 144
    # the best epoch's validation MSE, as the engine measured it
    best = [r for r in read_metrics(run_copy) if r["best"]][-1]
    assert result["metrics"]["mse"] == pytest.approx(best["val_mse"], rel=1e-4)
    assert zoo.evaluate(run_copy, split="train", save=False)["images"] == 1294


def test_eval_unknown_split_is_a_usage_error(run_copy):
    result = invoke("eval", run_copy, "--split", "holdout")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "holdout" in result.output


def test_reconstruct_writes_a_png(run_copy, tmp_path):
    out = tmp_path / "x.png"
    assert str(out) in assert_ok(invoke("reconstruct", run_copy, "--n", "8", "--out", out))
    assert is_png(out)
    with Image.open(out) as im:
        assert im.width > 100 and im.height > 50


def test_reconstruct_default_path_keeps_trainings_picture(run_copy):
    """zoo reconstruct's default picture is its own (reconstructions-SPLIT.png), never training's
    reconstructions.png of the best epoch, which the run's card shows."""
    trained = (run_copy / "reconstructions.png").read_bytes()
    assert_ok(invoke("reconstruct", run_copy, "--n", "4"))
    assert is_png(run_copy / "reconstructions-test.png")
    assert_ok(invoke("reconstruct", run_copy, "--n", "4", "--split", "train"))
    assert is_png(run_copy / "reconstructions-train.png")
    assert (run_copy / "reconstructions.png").read_bytes() == trained


def test_reconstruct_n_out_of_range(run_copy):
    result = invoke("reconstruct", run_copy, "--n", "0")
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_cli_train_then_eval_end_to_end(tmp_path):
    run = tmp_path / "run"
    out = assert_ok(invoke("train", "convae", "--dataset", "digits", "--epochs", "2", "--out", run, *TINY_SET))
    assert "completed: best epoch 2" in out and str(run) in out
    assert "epoch 1/2" in out and "epoch 2/2" in out
    assert len(read_metrics(run)) == 2
    assert_ok(invoke("eval", run))
    model = zoo.load(run)
    assert model.reconstruct(torch.rand(3, 1, 28, 28)).shape == (3, 1, 28, 28)


# ------------------------------------------------------------------------------------------ mistakes

MISTAKES = [
    (["train", "convea"], ["unknown model 'convea'", "Did you mean: convae"], 1),
    (["info", "convea"], ["unknown model 'convea'", "Did you mean: convae"], 1),
    (["train"], ["which model?"], 2),
    (["train", "convae", "--set", "latnt_dim=3"], ["unknown key 'latnt_dim'", "Did you mean: latent_dim"], 2),
    (["train", "convae", "--set", "latent_dim=four"], ["not a valid int", "type int"], 2),
    (["train", "convae", "--set", "dropout=2"], ["dropout=", "out of range", "0 .. 0.95"], 2),
    (["train", "convae", "--set", "activation=swish"], ["out of range", "one of relu"], 2),
    (["train", "convae", "--batch-size", "0"], ["batch_size=0 is out of range"], 2),
    (["train", "convae", "--preset", "nope"], ["unknown preset 'nope'"], 2),
    (["train", "convae", "--preset", "convae-lba"], ["unknown preset", "Did you mean: convae-lab"], 2),
    (["train", "convae", "--dataset", "cifar10"], ["unknown data set 'cifar10'", "Known data sets"], 1),
    (["train", "convae", "--dataset", "folder:/no/such/folder"], ["image folder not found"], 1),
    (["train", "convae", "--set", "channels=8,8,8,8,8,8", "--set", "stride=2", "--set", "padding=0"],
     ["reduces", "to nothing"], 2),
    (["train", "convae", "--set", "kernel=3,3"], ["kernel=[3, 3] has 2 values, and channels gives 3 conv layers"], 2),
    (["train", "convae", "--set", "loss=bce", "--set", "sigmoid_output=false"], ["needs sigmoid_output"], 2),
    (["train", "convae", "--device", "tpu"], ["unknown device 'tpu'", "cuda:N"], 2),
]


@pytest.mark.parametrize("args, words, code", MISTAKES, ids=[" ".join(m[0]) for m in MISTAKES])
def test_mistake_is_one_message_and_a_non_zero_exit(tmp_path, args, words, code):
    run = tmp_path / "run"
    if args[0] == "train" and len(args) > 1:
        args = [*args, "--out", run]  # a mistake must stop before the run folder is made
    output = assert_clean_error(invoke(*args), *words, code=code)
    assert output.count("Error:") == 1
    assert not run.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_clean_error_naming_the_device_asked_for(tmp_path):
    assert_clean_error(invoke("train", "convae", "--device", "cuda", "--out", tmp_path / "r"),
                       "CUDA is not available")
    assert_clean_error(invoke("train", "convae", "--device", "cuda:3", "--out", tmp_path / "r"),
                       "device 'cuda:3' was asked for but CUDA is not available here")


def test_missing_data_offline(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_clean_error(invoke("train", "convae", "--dataset", "kmnist", "--data-dir", empty, "--out", tmp_path / "r"),
                       "data set 'kmnist' not found", "downloads are off")


def test_eval_of_a_folder_that_is_not_a_run(tmp_path):
    assert_clean_error(invoke("eval", tmp_path), "is not a zoo run")


@pytest.mark.parametrize("args, words", [
    (["train", "convea"], ["unknown model 'convea'", "Did you mean: convae"]),
    (["train", "convae", "--set", "latent_dim=4.5"], ["not a valid int"]),
    (["eval", "{tmp}/nowhere"], ["nowhere does not exist"]),
])
def test_mistake_in_a_real_process_prints_no_traceback(tmp_path, args, words):
    result = run_zoo(*(a.format(tmp=tmp_path) for a in args))
    assert_clean_error(result, *words)
    assert result.stdout == ""  # the message goes to stderr


def test_threads_sets_the_cpu_threads_a_training_runs_on_and_its_first_line_says_so(tmp_path):
    """`zoo --threads N` (or ZOO_THREADS) before any command: a training on a shared CPU can be held to
    fewer threads than cores, and its first line names the count it computes with."""
    flag = run_zoo("--threads", 1, "train", "convae", "--dataset", "digits", "--epochs", 1, "--out",
                   tmp_path / "a", *TINY_SET, env={"OMP_NUM_THREADS": "2"})
    assert_ok(flag)
    assert "on cpu (1 thread) ->" in flag.stderr
    env = run_zoo("train", "convae", "--dataset", "digits", "--epochs", 1, "--out", tmp_path / "b", *TINY_SET,
                  env={"ZOO_THREADS": "2", "OMP_NUM_THREADS": "1"})
    assert_ok(env)
    assert "on cpu (2 threads) ->" in env.stderr


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_a_thread_count_that_is_not_a_positive_count_is_refused(value):
    assert_clean_error(run_zoo("--threads", value, "list"), "Invalid value for '--threads'")
