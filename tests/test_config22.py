"""How zoo reads configuration, the config22 walk's findings: a data_dir that is no folder, the decoder_* keys'
mirror, settings that cannot act (image_size on a named set, pruning that never prunes), a run's config.json
given as --config (a newer zoo's, a dict, its preset), ranges printed exactly, and smaller reading slips."""

from __future__ import annotations

import json

import pytest
from conftest import TINY, TINY_SET, assert_clean_error, assert_ok, invoke, read_config

import zoo
from zoo.errors import ConfigError


def _train(tmp_path, name: str, **settings) -> tuple[dict, str]:
    said: list[str] = []
    zoo.train("convae", dataset="digits", epochs=1, out=tmp_path / name, log=said.append, progress=False,
              **{**TINY, **settings})
    return read_config(tmp_path / name), "\n".join(said)


# ---------------------------------------------------------------------------------------------- F9

@pytest.mark.parametrize("how", [["--data-dir", "{typo}"], ["--set", "data_dir={typo}"]])
def test_a_data_dir_that_is_no_folder_is_refused_naming_it_before_anything_is_written(tmp_path, how):
    typo = tmp_path / "typo" / "dir"
    result = invoke("train", "convae", "--dataset", "digits", "--epochs", "1", "--out", tmp_path / "run",
                    *[a.format(typo=typo) for a in how], *TINY_SET)
    assert_clean_error(result, f"data_dir {typo}: no such folder", "--set data_dir=", code=2)
    assert not (tmp_path / "run").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a folder"):
        zoo.train("convae", dataset="digits", data_dir=str(tmp_path / "file"), epochs=1, out=tmp_path / "r2",
                  log=lambda s: None, progress=False, **TINY)


# ---------------------------------------------------------------------------------------------- F1

def test_one_decoder_key_set_says_the_empty_ones_do_not_mirror_the_encoder():
    with pytest.raises(ConfigError) as e:
        zoo.create("convae", decoder_kernel=[3])
    assert "With decoder_kernel set, the decoder does not mirror the encoder" in e.value.hint
    assert "decoder_stride (empty: stride 1), decoder_padding (empty: padding 0)" in e.value.hint
    assert "leave all four of decoder_channels, decoder_kernel, decoder_stride and decoder_padding" in e.value.hint
    helps = {p["name"]: p["help"] for p in zoo.model_info("convae")["params"]}
    assert "(empty: 1; all four decoder_channels/kernel/stride/padding empty: mirror the encoder)" \
        in helps["decoder_stride"]
    assert "empty: the encoder's last kernel" in helps["decoder_kernel"]


# ---------------------------------------------------------------------------------------------- F2, F4

def test_image_size_on_a_named_set_is_noted_and_recorded_as_the_zero_it_acted_as(tmp_path):
    record, said = _train(tmp_path, "run", image_size=32)
    assert "note: image_size=32 applies to folder: data sets only; digits is read at its own size" in said
    assert record["train"]["image_size"] == 0 and record["data"]["shape"] == [1, 28, 28]


def test_pruning_settings_that_prune_nothing_are_noted(tmp_path):
    _, said = _train(tmp_path, "amounts", prune_encoder_linear=0.5)
    assert "note: prune_encoder_linear=0.5 has no effect: prune_every is 0 (never)" in said
    _, said = _train(tmp_path, "late", prune_encoder_linear=0.5, prune_every=1)
    assert "prune_every=1 with epochs=1: nothing is pruned (the first pruning is before epoch 2)" in said
    _, said = _train(tmp_path, "every", prune_every=1)
    assert "prune_every=1 has no effect: every prune_* amount is 0" in said


# ---------------------------------------------------------------------------------------------- F5, F10, F11

def test_a_newer_zoos_config_json_given_as_config_says_which_zoo_wrote_it(digits_run, tmp_path):
    record = read_config(digits_run)
    record["zoo_version"], record["train"]["new_setting"] = "9.0.0", 1
    (tmp_path / "newer.json").write_text(json.dumps(record))
    result = invoke("train", "--config", tmp_path / "newer.json", "--out", tmp_path / "run")
    assert_clean_error(result, "does not know: new_setting (written by zoo 9.0.0)", "the zoo that wrote it", code=2)
    assert "zoo info MODEL" not in result.output


def test_a_runs_config_json_as_a_dict_trains_as_the_file_does(digits_run, tmp_path):
    record = read_config(digits_run)
    zoo.train(config=record, out=tmp_path / "run", epochs=1, log=lambda s: None, progress=False)
    again = read_config(tmp_path / "run")
    assert again["config"] == record["config"] and again["model"] == record["model"]


def test_a_run_trained_from_a_runs_config_json_keeps_the_preset_it_records(digits_run, tmp_path):
    record = read_config(digits_run)
    record["preset"] = "convae-lab"  # as a run started from that preset records it
    (tmp_path / "config.json").write_text(json.dumps(record))
    assert_ok(invoke("train", "--config", tmp_path / "config.json", "--epochs", "1", "--out", tmp_path / "run",
                     "--no-progress"))
    assert read_config(tmp_path / "run")["preset"] == "convae-lab"


# ---------------------------------------------------------------------------------------------- F7

def test_whole_bounds_are_printed_with_every_digit():
    result = invoke("info", "convae")
    assert "[0 .. 4294967295]" in assert_ok(result) and "[1 .. 1000000]" in result.output
    assert_clean_error(invoke("train", "convae", "--set", "seed=4294970000"), "seed must be 0 .. 4294967295")


# ---------------------------------------------------------------------------------------------- F8

def test_set_reads_a_whole_float_for_an_int_as_a_file_does_and_refuses_nested_brackets():
    _, model_cfg, _ = zoo.resolve_config("convae", overrides={"latent_dim": "6.0"})
    assert model_cfg.latent_dim == 6
    assert_clean_error(invoke("train", "convae", "--set", "latent_dim=6.5"), "is not a valid int")
    assert_clean_error(invoke("train", "convae", "--set", "hidden=[[32]]"), "hidden='[[32]]' is not a valid list[int]")


def test_config_file_slips_are_said_as_what_they_are(tmp_path):
    (tmp_path / "aot.toml").write_text("[[model]]\nlatent_dim = 3\n")
    assert_clean_error(invoke("train", "convae", "--config", tmp_path / "aot.toml"), "a model is named by a string")
    (tmp_path / "other.toml").write_text("pseudo_inputs = 100\n")
    assert_clean_error(invoke("train", "convae", "--config", tmp_path / "other.toml"),
                       "unknown key 'pseudo_inputs'", "pseudo_inputs is a key of", "vampprior", "not of convae")
    (tmp_path / "both.toml").write_text('model = "convae"\n[model]\nlatent_dim = 3\n')
    assert_clean_error(invoke("train", "--config", tmp_path / "both.toml"), "is not valid TOML",
                       'names it inside the table: [model] then model = "NAME"')


def test_a_dropout_schedules_fractional_epochs_is_refused_not_cut_to_a_whole_number(tmp_path):
    from conftest import assert_clean_error, invoke

    assert_clean_error(invoke("train", "convae", "--dataset", "digits", "--set",
                              "train_callbacks=dropout-schedule:0.5:1.5", "--out", tmp_path / "r"),
                       "epochs must be a whole number, got 1.5")
    assert not (tmp_path / "r").exists()
