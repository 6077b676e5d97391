"""What a third hostile run and a second newcomer found (issues 11 and 12): output paths spelled with
`..`, outputs over another run's files, the Python API's inputs, and model settings that mean nothing."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch

import zoo
from conftest import TINY_SET, assert_clean_error, assert_ok, invoke


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).iterdir()) if p.is_file()}


@pytest.mark.parametrize("name", ["model.safetensors", "checkpoint.safetensors", "loss.png"])
def test_an_out_spelled_with_dotdot_cannot_replace_a_runs_records(run_copy, name):
    before = digest(run_copy)
    assert_clean_error(invoke("generate", run_copy, "--sampler", "gaussian", "--n", "2",
                              "--out", run_copy / "x" / ".." / name), f"would replace the run's own {name}")
    assert digest(run_copy) == before
    assert not (run_copy / "x").exists()


def test_an_out_spelled_with_dotdot_cannot_write_into_zoos_cache(digits_run, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "cache" / "zoo" / "hub").mkdir(parents=True)
    out = tmp_path / "cache" / "zoo" / "q" / ".." / "hub" / "x.safetensors"
    assert_clean_error(invoke("generate", digits_run, "--sampler", "gaussian", "--n", "2", "--out", out),
                       "inside a folder zoo or the Hugging Face Hub manages")
    assert not (tmp_path / "cache" / "zoo" / "hub" / "x.safetensors").exists()


def test_no_run_is_trained_into_zoos_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "cache" / "zoo" / "hub" / "file" / "copy" / "sub"
    assert_clean_error(invoke("train", "convae", "--dataset", "digits", "--epochs", "1", "--out", out, *TINY_SET),
                       "is in a folder zoo or the Hugging Face Hub manages: no run is trained there", code=1)
    assert not out.exists()


def test_an_output_may_not_replace_a_file_of_another_run_but_may_replace_its_own(digits_run, tmp_path):
    other = Path(shutil.copytree(digits_run, tmp_path / "other"))
    mine = Path(shutil.copytree(digits_run, tmp_path / "mine"))
    before = digest(other)
    assert_clean_error(invoke("reconstruct", mine, "--n", "4", "--out", other / "reconstructions.png"),
                       f"would replace another run's ({other}) reconstructions.png")
    assert digest(other) == before
    # training's picture of the best epoch, which the card shows, is the run's record: its own outputs are not
    assert_clean_error(invoke("interpolate", mine, "--from", "1", "--to", "2", "--out", mine / "reconstructions.png"),
                       "would replace the run's own reconstructions.png")
    assert_ok(invoke("reconstruct", mine, "--n", "4", "--out", mine / "recon.png"))
    assert_ok(invoke("reconstruct", mine, "--n", "4", "--out", mine / "recon.png"))
    assert_ok(invoke("generate", mine, "--sampler", "gaussian", "--n", "4", "--out", mine / "samples.png"))
    assert_ok(invoke("generate", mine, "--sampler", "gaussian", "--n", "4", "--out", mine / "samples.png"))


def test_train_into_a_run_spelled_with_dotdot_is_refused_and_leaves_no_folder(digits_run, tmp_path):
    run = Path(shutil.copytree(digits_run, tmp_path / "run"))
    assert_clean_error(invoke("train", "convae", "--dataset", "digits", "--epochs", "1", *TINY_SET,
                              "--out", run / "nd" / ".."), "already holds a run")
    assert not (run / "nd").exists()


@pytest.mark.parametrize("call, fragment", [
    (lambda: zoo.create(None), "named by a string"),
    (lambda: zoo.create("convae", shape=(0, 28, 28)), "channels 1.."),
    (lambda: zoo.create("convae", shape="abc"), "(channels, height, width)"),
    (lambda: zoo.create("convae", num_classes=-1), "num_classes"),
])
def test_create_refuses_what_cannot_build_a_model_in_one_message(call, fragment):
    with pytest.raises(zoo.ZooError, match=None) as caught:
        call()
    assert fragment in str(caught.value)


def test_a_runs_methods_take_uint8_or_float_images_one_or_a_batch_without_gradients(digits_run):
    run = zoo.load(digits_run)
    images, labels = run.data("test")
    assert images.dtype == torch.uint8 and labels.shape[0] == images.shape[0]
    x = images[:4]
    codes = run.encode(x)
    assert codes.shape[0] == 4 and not codes.requires_grad
    assert torch.allclose(codes, run.encode(x.float() / 255.0))
    assert torch.allclose(run.encode(x[0]), codes[:1])
    assert run.reconstruct(x).shape == (4, *run.shape)
    assert run.decode(codes).shape == (4, *run.shape)


@pytest.mark.parametrize("call, fragment", [
    (lambda run: run.encode(torch.zeros(2, 3, 28, 28)), "takes images of shape [1, 28, 28]"),
    (lambda run: run.encode([[0.0]]), "must be a torch tensor"),
    (lambda run: run.decode(torch.zeros(3)), "decode takes latent codes as a float tensor [N, 4]"),
    (lambda run: run.sample(4), "cannot sample"),
])
def test_a_runs_methods_refuse_wrong_inputs_and_missing_abilities_in_one_message(digits_run, call, fragment):
    with pytest.raises(zoo.ZooError) as caught:
        call(zoo.load(digits_run))
    assert fragment in str(caught.value)


def test_a_gan_asked_to_encode_says_what_it_can_do():
    with pytest.raises(zoo.ZooError, match="cannot encode") as caught:
        zoo.load("gan-mnist").encode(torch.zeros(1, 1, 28, 28))
    assert "sample" in caught.value.hint


def test_zoo_info_of_a_model_shows_the_defaults_new_trainings_use():
    params = {p["name"]: p["default"] for p in zoo.model_info("gan")["params"]}
    assert params["clusters"] == 50 and params["ema"] == 0.999


def test_a_classifier_says_its_decoder_keys_do_nothing_and_refuses_them_when_set(tmp_path):
    info = {p["name"]: p["help"] for p in zoo.model_info("classifier")["params"]}
    assert info["decoder_hidden"] == "not used: a classifier has no decoder"
    assert_clean_error(invoke("train", "classifier", "--dataset", "digits", "--epochs", "1", *TINY_SET,
                              "--set", "decoder_hidden=4", "--out", tmp_path / "c"), "a classifier has no decoder")
    assert not (tmp_path / "c").exists()


def test_info_of_a_run_whose_plugin_is_not_installed_says_so_instead_of_listing_defaults(run_copy):
    import json

    record = json.loads((run_copy / "config.json").read_text())
    record["model"], record["plugin"] = "gone-model", {"package": "gonepkg", "version": "0.1"}
    (run_copy / "config.json").write_text(json.dumps(record))
    out = assert_ok(invoke("info", run_copy))
    assert "model 'gone-model' is not installed here, so its defaults are unknown" in out
    assert "where not the default" not in out
    assert "install the package that provides 'gone-model' first (pip install gonepkg)" in out


def test_compare_takes_one_run_as_a_string_and_load_refuses_what_names_no_run(digits_run):
    assert [r.name for r in zoo.compare(str(digits_run)).runs] == [str(digits_run)]
    for bad in (None, 3):
        with pytest.raises(zoo.ZooError, match="names no run"):
            zoo.load(bad)


def test_a_storage_error_names_the_option_that_chooses_another_place():
    import errno

    from zoo.errors import storage_error

    denied = OSError(errno.EACCES, "Permission denied", "/ro/plot.png")
    assert "(--plot)" in storage_error(denied, "--plot /ro/plot.png: cannot write", option="--plot").hint
    assert "(--out, -o, XDG_CACHE_HOME)" in storage_error(denied, "cannot write").hint


# ----------------------------------------------------------------- the fourth pass, on the fixes above

def test_compare_plot_and_out_may_not_replace_files_of_a_run_or_its_sub_folders(digits_run, tmp_path):
    other = Path(shutil.copytree(digits_run, tmp_path / "other"))
    (other / "progress").mkdir(exist_ok=True)
    (other / "progress" / "epoch_0001.png").write_bytes(b"picture")
    before = {str(p): p.read_bytes() for p in other.rglob("*") if p.is_file()}
    assert_clean_error(invoke("compare", digits_run, other, "--plot", other / "reconstructions.png"),
                       "would replace the run's own reconstructions.png")
    assert_clean_error(invoke("reconstruct", digits_run, "--n", "4", "--out", other / "progress" / "epoch_0001.png"),
                       "of another run")
    assert {str(p): p.read_bytes() for p in other.rglob("*") if p.is_file()} == before
    assert_ok(invoke("compare", digits_run, other, "--plot", tmp_path / "curves.png"))


def test_a_refused_resume_or_eval_writes_nothing(run_copy):
    import os

    (run_copy / "README.md").unlink()
    (run_copy / "README.md").mkdir()
    (run_copy / "eval.json").unlink(missing_ok=True)
    before = digest(run_copy)
    assert_clean_error(invoke("eval", run_copy), "README.md is a folder, where zoo writes its README.md")
    assert_clean_error(invoke("train", "--resume", run_copy, "--epochs", "3", "--no-progress"), "nothing was done")
    assert digest(run_copy) == before and not (run_copy / "eval.json").exists()
    (run_copy / "README.md").rmdir()
    (run_copy / "model.safetensors").unlink()
    os.mkfifo(run_copy / "model.safetensors")
    before = digest(run_copy)
    assert_clean_error(invoke("train", "--resume", run_copy, "--epochs", "3", "--no-progress"),
                       "model.safetensors is not a regular file")
    assert digest(run_copy) == before
    out = assert_ok(invoke("info", run_copy))
    assert "not regular files (zoo will not read them): model.safetensors" in out and "zoo.load(" not in out


@pytest.mark.parametrize("damage", [{"mse": "abc"}, {"mse": {"a": 1}}, {"mse": float("nan")}, {"x" * 5000: 0.1}])
def test_an_eval_json_with_values_zoo_does_not_write_is_ignored_by_info_compare_and_push(run_copy, tmp_path, damage):
    import json

    assert_ok(invoke("eval", run_copy))
    record = json.loads((run_copy / "eval.json").read_text())
    record["metrics"].update(damage)
    (run_copy / "eval.json").write_text(json.dumps(record))
    out = assert_ok(invoke("info", run_copy))
    assert "holds values zoo does not write" in out and "test metrics" not in out
    assert_ok(invoke("compare", run_copy))
    assert_ok(invoke("push", run_copy, f"file://{tmp_path / 'hub' / 'x'}"))
    assert not (tmp_path / "hub" / "x" / "eval.json").exists()


@pytest.mark.parametrize("error", [None, "n/a", [1]])
def test_an_eval_json_whose_standard_error_is_no_number_is_pushed_and_resumed_without_it(run_copy, tmp_path, error):
    """A null or text standard error (another writer's eval.json) crashed the model card: push and a no-op resume
    ended in a traceback."""
    import json

    assert_ok(invoke("eval", run_copy))
    record = json.loads((run_copy / "eval.json").read_text())
    record["standard_errors"]["mse"] = error
    (run_copy / "eval.json").write_text(json.dumps(record))
    assert_ok(invoke("push", run_copy, f"file://{tmp_path / 'hub'}"))
    assert f"| mse | {record['metrics']['mse']:.5g} | — |" in (tmp_path / "hub" / "README.md").read_text()
    assert_ok(invoke("train", "--resume", run_copy, "--no-progress"))


def test_a_run_with_a_newer_zoos_training_setting_evaluates_and_its_resume_says_why_it_is_refused(run_copy):
    """A training key a newer zoo writes made eval, reconstruct and latent refuse the run as if the user had
    mistyped a key; a resume said 'unknown key' without naming config.json."""
    import json

    record = json.loads((run_copy / "config.json").read_text())
    record["train"]["future_knob"] = 3
    (run_copy / "config.json").write_text(json.dumps(record))
    out = assert_ok(invoke("eval", run_copy))
    assert "holds training settings this zoo does not know (future_knob" in out and "mse" in out
    assert_clean_error(invoke("train", "--resume", run_copy, "--epochs", "3"),
                       f"{run_copy / 'config.json'} holds keys this zoo", "future_knob", "the zoo that trained it")
    record["config"]["future_layer"], record["zoo_version"] = 3, "9.0.0"  # a newer zoo's architecture key
    (run_copy / "config.json").write_text(json.dumps(record))
    out = assert_clean_error(invoke("eval", run_copy), "unknown key 'future_layer'",
                             "written by zoo 9.0.0, newer than this zoo")
    assert "since 0.2 the decoder" not in out  # (the hint of an older zoo's run)


@pytest.mark.parametrize("make, fragment", [
    (lambda x: x.long() * 1000, "uint8 (0..255) or floats in [0, 1]"),
    (lambda x: x.bool(), "uint8 (0..255) or floats in [0, 1]"),
    (lambda x: x.float(), "must lie in [0, 1]"),
    (lambda x: x.float() / 0 * 0, "must lie in [0, 1] (and be finite)"),
])
def test_a_runs_methods_refuse_images_the_model_would_turn_into_garbage(digits_run, make, fragment):
    run = zoo.load(digits_run)
    images, _ = run.data("test")
    with pytest.raises(zoo.ZooError) as caught:
        run.encode(make(images[:4]))
    assert fragment in str(caught.value)


@pytest.mark.parametrize("labels", [[[1, 2]], "a", [3.7], [True], [-1], [10]])
def test_sample_class_takes_only_class_indices(labels):
    with pytest.raises(zoo.ZooError, match="sample_class"):
        zoo.load("cgan-mnist").sample_class(labels)


def test_codes_of_the_wrong_width_and_counts_beyond_memory_are_one_message(digits_run):
    run = zoo.load(digits_run)
    with pytest.raises(zoo.ZooError, match=r"float tensor \[N, 4\]"):
        run.decode(torch.zeros(2, 5))
    with pytest.raises(zoo.ZooError, match="GiB are free"):
        zoo.load("gan-mnist").sample(10**12)
