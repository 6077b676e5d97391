"""Configuration: typing of `--set` values, errors, TOML files, presets and the order of the layers."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_SET, assert_clean_error, assert_ok, invoke, quiet, read_config

import zoo
from zoo.errors import ConfigError


# ------------------------------------------------------------------------------------------ typing

@pytest.mark.parametrize("key, text, expected", [
    ("latent_dim", "6", 6),
    ("dropout", "0.25", 0.25),
    ("dropout", "1e-1", 0.1),
    ("batch_norm", "true", True),
    ("batch_norm", "yes", True),
    ("batch_norm", "off", False),
    ("channels", "8,16,32", [8, 16, 32]),
    ("channels", "[8, 16, 32]", [8, 16, 32]),
    ("kernel", "3", [3]),
    ("activation", "elu", "elu"),
])
def test_string_values_are_converted_to_the_field_type(key, text, expected):
    model = zoo.create("convae", **{key: text})
    value = getattr(model.config, key)
    assert value == expected
    assert type(value) is type(expected)


def test_set_values_reach_the_run_config_typed(tmp_path):
    run = tmp_path / "run"
    assert_ok(invoke("train", "convae", "--dataset", "digits", "--epochs", "1", "--out", run, *TINY_SET,
                     "--set", "latent-dim=3",            # '-' in a key means '_'
                     "--set", "lr=2e-3",
                     "--set", "batch_size=512",
                     "--set", "bf16=no",
                     "--set", "dropout=0.25",
                     "--set", "val_fraction=0.5",
                     "--set", "kernel=[3]"))
    cfg = read_config(run)
    assert cfg["config"]["latent_dim"] == 3
    assert cfg["config"]["channels"] == [4, 8, 8]
    assert cfg["config"]["kernel"] == [3]
    assert cfg["config"]["dropout"] == 0.25
    assert cfg["train"]["lr"] == 2e-3 and isinstance(cfg["train"]["lr"], float)
    assert cfg["train"]["batch_size"] == 512 and isinstance(cfg["train"]["batch_size"], int)
    assert cfg["train"]["bf16"] is False
    assert cfg["train"]["val_fraction"] == 0.5
    assert cfg["data"]["sizes"]["val"] + cfg["data"]["sizes"]["train"] == 1438


# ------------------------------------------------------------------------------------------ errors

def test_unknown_key_suggests_the_close_match():
    with pytest.raises(ConfigError) as e:
        zoo.create("convae", latnt_dim=3)
    assert "unknown key 'latnt_dim'" in str(e.value)
    assert "Did you mean: latent_dim" in str(e.value)


def test_unknown_training_key_suggests_the_close_match():
    with pytest.raises(ConfigError, match="unknown key 'batchsize'") as e:
        zoo.train("convae", dataset="digits", batchsize=64, out="never")
    assert "batch_size" in e.value.hint
    assert not Path("never").exists()


@pytest.mark.parametrize("key, value, words", [
    ("latent_dim", "four", ["latent_dim='four'", "not a valid int"]),
    ("latent_dim", "6.5", ["not a valid int"]),
    ("channels", "8,x,32", ["not a valid list[int]"]),
    ("batch_norm", "maybe", ["not a valid bool"]),
    ("lr", "fast", ["lr='fast'", "not a valid float"]),
    ("activation", ["relu"], ["not a valid str"]),
])
def test_ill_typed_value_names_the_type(key, value, words):
    with pytest.raises(ConfigError) as e:
        zoo.create("convae", **{key: value})
    for w in words:
        assert w in str(e.value)


@pytest.mark.parametrize("key, value, words", [
    ("latent_dim", "0", ["latent_dim='0' is out of range", "1 .. 4096"]),
    ("dropout", "1.5", ["out of range", "0 .. 0.95"]),
    ("channels", "8,0,32", ["out of range", "1 .. 4096"]),
    ("activation", "swish", ["out of range", "one of relu, leaky_relu"]),
    ("loss", "BCE", ["out of range", "one of mse, bce"]),
    ("optimizer", "rmsprop", ["out of range", "adam, adamw, sgd, adagrad"]),
    ("lr", "11", ["out of range", "0 .. 10"]),
    ("lr", "-1e-3", ["out of range"]),
    ("lr", "inf", ["out of range"]),
])
def test_out_of_range_value_names_the_range(key, value, words):
    with pytest.raises(ConfigError) as e:
        zoo.create("convae", **{key: value})
    for w in words:
        assert w in str(e.value)


@pytest.mark.parametrize("key", ["lr", "dropout"])
def test_nan_is_out_of_range(key):
    with pytest.raises(ConfigError, match="out of range"):
        zoo.create("convae", **{key: "nan"})


def test_cli_nan_learning_rate_is_a_clean_error(tmp_path):
    assert_clean_error(invoke("train", "convae", "--dataset", "digits", "--epochs", "1", "--out", tmp_path / "r",
                              *TINY_SET, "--set", "lr=nan"), "lr")


def test_set_without_equals_sign_is_an_error():
    assert_clean_error(invoke("train", "convae", "--set", "latent_dim"), "--set expects key=value", code=2)


def test_a_set_key_given_twice_keeps_its_last_value_and_says_so(tmp_path):
    out = assert_ok(invoke("train", "convae", "--dataset", "digits", "--epochs", "1", "--out", tmp_path / "r",
                           *TINY_SET, "--set", "latent_dim=3", "--set", "latent_dim=4"))
    assert "note: --set latent_dim=4 wins over the earlier --set latent_dim=3" in out
    assert read_config(tmp_path / "r")["config"]["latent_dim"] == 4


def test_an_output_name_with_a_control_character_is_refused(tmp_path):
    assert_clean_error(invoke("train", "convae", "--dataset", "digits", "--out", f"{tmp_path}/a\nb", *TINY_SET),
                       "holds a control character", code=2)
    assert list(tmp_path.iterdir()) == []


def test_a_key_given_twice_with_one_value_trains(tmp_path):
    assert_ok(invoke("train", "convae", "--dataset", "digits", "--epochs", "1", "--set", "epochs=1", "--set",
                     "latent_dim=3", "--set", "latent_dim=3", "--out", tmp_path / "r", *TINY_SET))
    saved = read_config(tmp_path / "r")
    assert saved["train"]["epochs"] == 1 and saved["config"]["latent_dim"] == 3


# ------------------------------------------------------------------------------------------ TOML files

def test_toml_file_with_model_and_train_tables(tmp_path):
    cfg_file = tmp_path / "ae.toml"
    cfg_file.write_text(
        '[model]\nchannels = [4, 8, 8]\nhidden = [16]\nlatent_dim = 5\nactivation = "elu"\n'
        '[train]\nlr = 0.004\nbatch_size = 128\nepochs = 1\nval_fraction = 0.5\ndevice = "cpu"\n')
    run = tmp_path / "run"
    assert_ok(invoke("train", "convae", "--dataset", "digits", "--config", cfg_file, "--out", run, "--no-progress"))
    cfg = read_config(run)
    assert cfg["config"]["latent_dim"] == 5
    assert cfg["config"]["activation"] == "elu"
    assert cfg["config"]["hidden"] == [16]
    assert cfg["train"]["lr"] == 0.004
    assert cfg["train"]["batch_size"] == 128
    assert cfg["train"]["epochs"] == 1


def test_flat_toml_file_through_the_api(tmp_path):
    cfg_file = tmp_path / "flat.toml"
    cfg_file.write_text('model = "convae"\nlatent_dim = 2\nchannels = [4, 8, 8]\nhidden = [16]\n'
                        'epochs = 1\nval_fraction = 0.5\ndevice = "cpu"\n')
    result = zoo.train("convae", dataset="digits", config=cfg_file, out=tmp_path / "run", log=quiet, progress=False)
    assert result.model.config.latent_dim == 2
    assert read_config(tmp_path / "run")["train"]["epochs"] == 1


def test_toml_file_for_another_model_is_refused(tmp_path):
    cfg_file = tmp_path / "other.toml"
    cfg_file.write_text('model = "vae"\nlatent_dim = 2\n')
    with pytest.raises(ConfigError, match="the config file is for model 'vae', not 'convae'"):
        zoo.train("convae", dataset="digits", config=cfg_file, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text, words", [
    ("[model]\nlatent_dim = 'four'\n", ["latent_dim='four'", "not a valid int"]),
    ("[model]\nlatent_dim = true\n", ["not a valid int"]),
    ("[train]\nepochs = 0\n", ["epochs=0 is out of range"]),
    ("[model]\nlatnt_dim = 3\n", ["unknown key 'latnt_dim'", "latent_dim"]),
    ("[modle]\nlatent_dim = 3\n", ["unknown key 'modle'"]),
    ("latent_dim = \n", ["not valid TOML"]),
])
def test_bad_toml_file_is_a_clean_error(tmp_path, text, words):
    cfg_file = tmp_path / "bad.toml"
    cfg_file.write_text(text)
    assert_clean_error(invoke("train", "convae", "--dataset", "digits", "--config", cfg_file,
                              "--out", tmp_path / "run"), *words)
    assert not (tmp_path / "run").exists()


def test_missing_toml_file_is_a_clean_error(tmp_path):
    assert_clean_error(invoke("train", "convae", "--config", tmp_path / "nope.toml"), "config file not found")


def test_a_runs_config_json_as_config_trains_the_same_model_and_config_again(tmp_path, digits_run):
    """`zoo cv --config RUN/config.json` was refused: a run's config was only to be copied out by hand."""
    again = tmp_path / "again"
    assert_ok(invoke("train", "--config", digits_run / "config.json", "--epochs", "1", "--no-progress", "--out", again))
    first, second = read_config(digits_run), read_config(again)
    assert second["model"] == first["model"] and second["config"] == first["config"]
    assert {k: v for k, v in second["train"].items() if k != "epochs"} == \
        {k: v for k, v in first["train"].items() if k != "epochs"}
    (tmp_path / "other.json").write_text('{"latent_dim": 3}')
    assert_clean_error(invoke("train", "convae", "--config", tmp_path / "other.json"),
                       "is not a run's config.json (model, config and train)")
    with pytest.raises(ConfigError, match="or a run's config.json: .*config.json"):
        zoo.train(config=digits_run, dataset="digits")
    assert_clean_error(invoke("cv", "--config", digits_run), "is not a file", f"{digits_run / 'config.json'}")


def test_dict_config_with_tables_is_read_like_a_toml_file(tmp_path):
    result = zoo.train("convae", dataset="digits", out=tmp_path / "run", log=quiet, progress=False,
                       config={"model": {"latent_dim": 2, "channels": [4, 8, 8], "hidden": [16]},
                               "train": {"epochs": 1, "device": "cpu"}})
    assert result.model.config.latent_dim == 2


# ------------------------------------------------------------------------------------------ presets

def test_preset_from_the_registry_is_applied(tmp_path):
    run = tmp_path / "run"
    assert_ok(invoke("train", "convae", "--dataset", "digits", "--preset", "convae-fashion-report", "--epochs", "1",
                     "--out", run, "--set", "val_fraction=0.8", "--device", "cpu", "--no-progress"))
    cfg = read_config(run)
    assert cfg["config"]["channels"] == [10, 20, 30]
    assert cfg["config"]["stride"] == [2, 2, 1]
    assert cfg["config"]["decoder_kernel"] == [3, 3, 5]
    assert cfg["config"]["latent_dim"] == 10
    assert cfg["config"]["loss"] == "bce"
    assert cfg["train"]["lr"] == 0.01
    assert cfg["train"]["weight_decay"] == 1e-5


def test_unknown_preset_suggests_the_close_match():
    with pytest.raises(ConfigError, match="unknown preset 'convae-lb'") as e:
        zoo.train("convae", dataset="digits", preset="convae-lb", out="never")
    assert "convae-lab" in e.value.hint


def test_preset_for_another_model_is_refused(tinyplug_installed, tmp_path):
    with pytest.raises(ConfigError, match="preset 'convae-lab' is for model 'convae', not 'tinyae'"):
        zoo.train("tinyae", dataset="digits", preset="convae-lab", out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_layers_apply_in_order_preset_then_file_then_set(tmp_path):
    """defaults < preset < config file < --set (and the named options like --epochs)."""
    cfg_file = tmp_path / "layer.toml"
    cfg_file.write_text("[model]\nlatent_dim = 3\nhidden = [16]\n"
                        "[train]\nlr = 0.002\nweight_decay = 0.0\nbatch_size = 512\nepochs = 5\n")
    run = tmp_path / "run"
    assert_ok(invoke("train", "convae", "--dataset", "digits", "--preset", "convae-latent2-report",
                     "--config", cfg_file, "--set", "latent_dim=5", "--set", "weight_decay=0.0001",
                     "--set", "val_fraction=0.8", "--epochs", "1", "--out", run, "--device", "cpu", "--no-progress"))
    cfg = read_config(run)
    assert cfg["config"]["channels"] == [8, 16, 64]    # preset over the default [8, 16, 32]
    assert cfg["config"]["dropout"] == 0.1             # preset over the default 0
    assert cfg["config"]["hidden"] == [16]             # file over the preset's [64]
    assert cfg["config"]["latent_dim"] == 5            # --set over file (3) over preset (2)
    assert cfg["train"]["lr"] == 0.002                 # file over preset (1e-3)
    assert cfg["train"]["batch_size"] == 512           # file over preset (256)
    assert cfg["train"]["weight_decay"] == 0.0001      # --set over file (0) over preset (1e-5)
    assert cfg["train"]["epochs"] == 1                 # --epochs over file (5)
    assert cfg["train"]["val_fraction"] == 0.8         # --set over the default
    assert cfg["train"]["momentum"] == 0.9             # untouched default


def test_named_cli_options_beat_set(tmp_path):
    run = tmp_path / "run"
    out = assert_ok(invoke("train", "convae", "--dataset", "digits", "--out", run, *TINY_SET, "--epochs", "1",
                           "--set", "epochs=3", "--set", "val_fraction=0.8"))
    assert read_config(run)["train"]["epochs"] == 1
    assert "note: --epochs 1 wins over --set epochs=3" in out


@pytest.mark.parametrize("value", [np.float32(5.5), torch.tensor(5.7), Fraction(11, 2), Decimal("5.5"), float("inf")])
def test_a_whole_number_key_refuses_a_fraction_of_any_kind(value):
    """A float 5.5 was refused, but numpy's float32, a 0-d tensor, a Fraction or a Decimal were cut down to 5 and
    trained as k=5 without a word."""
    with pytest.raises(ConfigError, match="is not a valid int"):
        zoo.resolve_config("iwae", overrides={"k": value})


@pytest.mark.parametrize("value", [np.float32(5.0), np.int64(5), torch.tensor(5), Fraction(10, 2), "5"])
def test_a_whole_number_key_takes_a_whole_number_of_any_kind(value):
    assert zoo.resolve_config("iwae", overrides={"k": value})[1].k == 5


@pytest.mark.parametrize("config, message", [
    ({1: 5}, "unknown key '1'"),
    ([("k", 5)], "config= takes a text or a path or a dict"),
    ({"k": 7, "model": {"k": 9}}, "config key k is given twice: 7 at the top and 9 in [model]"),
    ({"model": {"k": 9}, "train": {"k": 3}}, "config key k is given twice: 9 in [model] and 3 in [train]"),
])
def test_a_config_of_the_wrong_shape_is_one_config_error(config, message):
    """A key that is no text was a TypeError from difflib, a list one from pathlib; a key given twice kept its
    last value without a word."""
    for call in (lambda: zoo.resolve_config("iwae", config=config),
                 lambda: zoo.train("iwae", dataset="digits", config=config, out="never-made")):
        with pytest.raises(ConfigError) as e:
            call()
        assert message in str(e.value)
    assert not Path("never-made").exists()
    assert zoo.resolve_config("iwae", config={"k": 9, "model": {"k": 9}})[1].k == 9  # twice alike: one value


def test_a_misspelt_key_given_as_none_is_refused_as_any_unknown_key():
    """None means a key's default, and was dropped before the keys were checked: pseudo_input=None passed."""
    with pytest.raises(ConfigError, match="unknown key 'pseudo_input'.*\\n.*Did you mean: pseudo_inputs"):
        zoo.resolve_config("vampprior", overrides={"pseudo_input": None})
    assert zoo.resolve_config("vampprior", overrides={"pseudo_inputs": None})[1].pseudo_inputs > 0
