"""Fine-tuning reads the source's code and records where it came from (transfer19): the head's features are the
source's `encode(x)` for every family, the source's encoder keys cannot be --set, init_from is an absolute path
with the weights' digest, a head's config.json does not train a random encoder, and a source changed in memory
or named as --out is refused."""

import json
import shutil
from pathlib import Path

import pytest
import torch

import zoo
from conftest import TINY, assert_clean_error, assert_ok, invoke, quiet, read_config

FAST = {"dataset": "digits", "epochs": 1, "log": quiet, "progress": False, **TINY}


@pytest.fixture(scope="module")
def head_run(tmp_path_factory, digits_run) -> Path:
    """A 1-epoch head on the tiny ConvAE. Read-only."""
    out = tmp_path_factory.mktemp("heads") / "head"
    zoo.finetune(digits_run, hidden=[8], out=out, epochs=1, log=quiet, progress=False)
    return out


@pytest.mark.parametrize("model, extra", [("hvae", {"layer_hidden": 16}),
                                          ("hvae", {"layer_hidden": 16, "pixel_layers": 1, "pixel_channels": 4}),
                                          ("vae", {})])
def test_the_heads_features_are_the_sources_code(tmp_path, model, extra):
    zoo.train(model, out=tmp_path / "src", **FAST, **extra)
    zoo.finetune(tmp_path / "src", hidden=[8], out=tmp_path / "head", epochs=1, log=quiet, progress=False)
    src, head = zoo.load(tmp_path / "src"), zoo.load(tmp_path / "head")
    x = torch.rand(6, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(head.model.features_of(x), src.encode(x))


@pytest.mark.parametrize("assignment, key", [("activation=tanh", "activation"), ("latent_dim=2", "latent_dim"),
                                             ("dropout=0.5", "dropout"), ("channels=4,8,16", "channels")])
def test_finetune_refuses_a_set_of_a_key_the_sources_encoder_fixes(digits_run, assignment, key):
    out = assert_clean_error(invoke("finetune", str(digits_run), "--epochs", "1", "--set", assignment,
                                    "--out", "head", "--no-progress"), f"'{key}' comes from the source run")
    assert "Leave" in out and not Path("head").exists()


def test_finetune_takes_the_heads_own_weight_init(digits_run):
    """weight_init starts the head (the encoder's weights are copied over it): it was refused as the encoder's."""
    assert_ok(invoke("finetune", str(digits_run), "--epochs", "1", "--set", "weight_init=he", "--out", "head",
                     "--no-progress"))
    assert json.loads(Path("head/config.json").read_text())["config"]["weight_init"] == "he"


def test_finetune_refuses_a_set_of_the_head_that_its_options_set(digits_run):
    assert_clean_error(invoke("finetune", str(digits_run), "--epochs", "1", "--hidden", "12", "--set", "head=5",
                              "--out", "head", "--no-progress"), "zoo finetune sets 'head' itself", "--hidden")


def test_the_head_records_its_source_by_absolute_path_and_weights_digest(digits_run):
    shutil.copytree(digits_run, "src")  # named relative to the working directory
    zoo.finetune("src", hidden=[8], out="head", epochs=1, log=quiet, progress=False)
    config = read_config(Path("head"))["config"]
    assert config["init_from"] == str(Path("src").absolute())
    assert config["init_digest"] == zoo.load("src").file_digest != ""


def test_finetune_refuses_a_set_init_from(digits_run):
    assert_clean_error(invoke("finetune", str(digits_run), "--epochs", "1", "--set", "init_from=/nowhere",
                              "--out", "head", "--no-progress"), "init_from='/nowhere'", "only zoo finetune")


@pytest.mark.parametrize("command", [["train", "--epochs", "1", "--out", "again", "--no-progress"],
                                     ["cv", "--folds", "2", "--epochs", "1"]])
def test_training_a_heads_config_again_is_refused_not_a_random_frozen_encoder(head_run, command):
    out = assert_clean_error(invoke(command[0], "--config", str(head_run / "config.json"), *command[1:]),
                             "only zoo finetune copies", "random", "zoo finetune")
    assert str(read_config(head_run)["config"]["init_from"]) in out and not Path("again").exists()


def test_a_fine_tuned_head_still_resumes(head_run, tmp_path):
    head = shutil.copytree(head_run, tmp_path / "head")
    assert_ok(invoke("train", "--resume", str(head), "--epochs", "2", "--no-progress"))
    assert read_config(head)["train"]["epochs"] == 2


def test_finetune_refuses_a_source_changed_in_memory_since_loading(digits_run):
    src = zoo.load(digits_run)
    with torch.no_grad():
        for p in src.model.encoder.parameters():
            p.zero_()
    with pytest.raises(zoo.ZooError, match="changed since they were loaded"):
        zoo.finetune(src, out="head", epochs=1, log=quiet, progress=False)
    assert not Path("head").exists()


def test_finetune_refuses_to_write_the_head_over_its_source(run_copy):
    with pytest.raises(zoo.ZooError, match="is the run it fine-tunes"):
        zoo.finetune(str(run_copy), out=run_copy / ".." / run_copy.name, overwrite=True, epochs=1, log=quiet,
                     progress=False)
    assert read_config(run_copy)["model"] == "convae"


def test_eval_of_the_val_split_names_the_val_split(head_run, tmp_path):
    head = shutil.copytree(head_run, tmp_path / "head")
    out = assert_ok(invoke("eval", str(head), "--split", "val"))
    assert "val accuracy" in out and "test accuracy" not in out


def test_finetune_takes_overwrite_and_data_dir(digits_run):
    args = ["finetune", str(digits_run), "--epochs", "1", "--hidden", "8", "--out", "head", "--no-progress"]
    assert_ok(invoke(*args))
    assert_clean_error(invoke(*args), "already holds a run", "--overwrite")
    assert_ok(invoke(*args, "--overwrite"))
    assert "--data-dir" in assert_ok(invoke("finetune", "--help"))


def test_finetune_refuses_freeze_none_rather_than_training_the_whole_encoder(digits_run):
    with pytest.raises(zoo.ZooError, match="freeze=None"):
        zoo.finetune(digits_run, freeze=None, out="head", epochs=1, log=quiet, progress=False)


def test_a_frozen_encoders_dropout_drops_nothing_in_training(tmp_path):
    zoo.train("convae", out=tmp_path / "src", dropout=0.5, **FAST)
    zoo.finetune(tmp_path / "src", hidden=[8], out=tmp_path / "head", epochs=1, log=quiet, progress=False)
    model = zoo.load(tmp_path / "head").model.train()
    x = torch.rand(6, 1, 28, 28)
    torch.testing.assert_close(model.features_of(x), model.features_of(x))


def test_finetune_notes_a_source_whose_training_was_interrupted(run_copy, capsys):
    config = json.loads((run_copy / "config.json").read_text())
    config["train"]["epochs"] = 5  # trained 2 of 5 epochs: a stopped training, as zoo info says
    (run_copy / "config.json").write_text(json.dumps(config))
    zoo.finetune(run_copy, hidden=[8], out="head", epochs=1, progress=False)
    assert "an interrupted training (2 of 5 epochs)" in capsys.readouterr().err
