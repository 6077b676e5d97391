"""A newcomer's first hour (newcomer25): presets named for a data set train on it, every option has help,
and the natural slips (--set KEY VALUE, a run folder for a model, a model for --resume, a data set for a
model, a misspelt logger) and the failures (no feature network, a failed download) say what was meant."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from conftest import TINY_SET, assert_clean_error, assert_ok, invoke, run_zoo

import zoo
from zoo import registry
from zoo.data import dataset_names
from zoo.runs.config import resolve_config

DATA_SETS = sorted(set(dataset_names()) - {"digits"} - {n for n in dataset_names() if ":" in n})


def test_a_preset_named_for_a_data_set_holds_it():
    named = {name: p for name, p in registry.presets().items()
             if any(re.search(rf"(^|-){re.escape(s.split('-')[0])}(-|$)", name) for s in DATA_SETS)}
    assert {"convae-mnist", "vae-mnist", "convae-fashion"} <= set(named)
    for name, preset in named.items():
        _, _, train = resolve_config(preset["model"], preset=name)
        assert train.dataset in DATA_SETS and train.dataset.split("-")[0] in name, (name, train.dataset)


def test_train_with_a_preset_for_mnist_and_no_dataset_reads_mnist_not_digits(tmp_path):
    said = assert_clean_error(invoke("train", "--preset", "convae-mnist", "--epochs", "1", "--out", tmp_path / "r",
                                     *TINY_SET), "data set 'mnist' not found")
    assert "digits" not in said.split("Fix:")[0], said


def test_a_dataset_given_wins_over_the_presets_and_says_so(tmp_path):
    out = assert_ok(invoke("train", "--preset", "convae-mnist", "--dataset", "digits", "--epochs", "1",
                           "--out", tmp_path / "r", *TINY_SET))
    assert "note: the data set given (digits) wins over preset convae-mnist's (mnist)" in out, out
    assert "training convae on digits" in out, out
    out = assert_ok(invoke("train", "--preset", "convae-lab", "--dataset", "digits", "--epochs", "1",
                           "--out", tmp_path / "lab", *TINY_SET))
    assert "wins over preset" not in out, out  # a preset made for no data set: nothing to say


def test_train_help_shows_the_default_data_set_and_training_settings():
    shown = " ".join(assert_ok(invoke("train", "--help")).split())
    assert "Default: the preset's, else the model's (`zoo info MODEL`; digits for most)" in shown, shown
    for default in ("10 for most", "256 for most", "0.001 for most"):
        assert default in shown, (default, shown)


def _commands(group: click.Group, prefix: str = ""):
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix}{name} ")
        elif not command.hidden:
            yield f"{prefix}{name}", command


def test_every_option_of_every_command_has_help_and_shows_its_default():
    from zoo.cli.main import cli

    missing = [f"zoo {p.opts[0]}" for p in cli.params if isinstance(p, click.Option) and not p.help]
    unshown = []
    for name, command in _commands(cli):
        for p in command.params:
            if not isinstance(p, click.Option) or p.hidden:
                continue
            if not p.help:
                missing.append(f"zoo {name} {p.opts[0]}")
            given = p.default not in (None, False, (), "") and type(p.default).__name__ != "Sentinel"
            if given and not p.is_flag and not p.show_default:
                unshown.append(f"zoo {name} {p.opts[0]}")
    assert not missing and not unshown, (missing, unshown)


def test_fid_without_a_catalogued_feature_network_exits_1_as_a_missing_capability(vae_copy):
    assert_clean_error(invoke("eval", vae_copy, "--fid"), "no feature network is catalogued for digits",
                       "--features RUN", code=1)
    with pytest.raises(zoo.errors.CapabilityError, match="no feature network is catalogued"):
        zoo.sample_quality(vae_copy)


def test_set_with_key_and_value_as_two_words_says_it_takes_one():
    assert_clean_error(invoke("train", "convae", "--dataset", "digits", "--set", "latent_dim", "3"),
                       "--set takes KEY=VALUE as one word: --set latent_dim=3", code=2)
    assert_clean_error(invoke("train", "--set", "latent_dim", "3"), "--set expects key=value, got 'latent_dim'",
                       "--set latent_dim=VALUE", code=2)  # the 3 taken for the model: the --set said first


def test_a_run_folder_given_as_the_model_points_to_resume_and_config(digits_run):
    said = assert_clean_error(invoke("train", digits_run), f"'{digits_run}' is a run folder, not a model", code=1)
    assert f"zoo train --resume {digits_run}" in said and f"zoo train --config {digits_run / 'config.json'}" in said


def test_a_model_given_to_resume_says_it_takes_a_run_folder():
    said = assert_clean_error(invoke("train", "--resume", "convae"), "--resume takes a run folder; convae is a model",
                              code=2)
    assert "zoo train convae" in said and "does not exist" not in said


def test_info_of_a_data_set_says_so_and_lists_every_weights_trained_on_it():
    said = assert_clean_error(invoke("info", "mnist"), "'mnist' is a data set, not a model",
                              "zoo train MODEL --dataset mnist", code=1)
    trained = [name for name, w in registry.weights().items() if w.get("dataset") == "mnist"]
    assert "convae-mnist" in trained and all(name in said for name in trained), said
    assert "of that name" not in said, said


def test_an_unknown_logger_lists_the_loggers_zoo_list_shows_and_no_resume_on_a_new_run(tmp_path):
    result = invoke("train", "convae", "--dataset", "digits", "--log", "tensorbord", "--out", tmp_path / "r", *TINY_SET)
    said = " ".join(assert_clean_error(result, "unknown logger 'tensorbord'").split())
    listed = re.search(r"The installed loggers are: (.*?) \(`zoo list`", said)[1]
    assert listed.split(", ") == sorted(r["name"] for r in zoo.list_plugins()["loggers"]), said
    assert "--resume" not in said and "metrics.jsonl, which is always written" in said, said
    from zoo.tracking import logger_classes

    with pytest.raises(zoo.ZooError) as refused:
        logger_classes("tensorbord", resume=True)
    assert "On --resume the run's own loggers are asked for" in str(refused.value)


def test_cv_says_a_first_line_before_its_first_fold_ends():
    out = assert_ok(invoke("cv", "convae", "--dataset", "digits", "--folds", "2", "--epochs", "1", *TINY_SET[:4]))
    lines = out.splitlines()
    first = next(i for i, line in enumerate(lines) if "2-fold cross-validation of convae on digits" in line)
    assert first < next(i for i, line in enumerate(lines) if line.startswith("fold 1/2")), out


@pytest.mark.skipif(Path("/usr/share/datasets/kmnist").exists(), reason="KMNIST is installed: nothing is downloaded")
def test_a_failed_download_names_its_reason():
    # a proxy that refuses every connection: no download can reach a server, with or without a network
    proxy = "http://127.0.0.1:9"
    result = run_zoo("train", "convae", "--dataset", "kmnist", "--epochs", "1",
                     env={"ZOO_OFFLINE": "0", "HF_HUB_OFFLINE": "0", "http_proxy": proxy, "https_proxy": proxy,
                          "HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "no_proxy": "", "NO_PROXY": ""})
    said = assert_clean_error(result, "data set 'kmnist' not found", "download failed")
    reason = re.search(r"download failed: (.*)", said)[1]
    assert not reason.rstrip(".").endswith(":") and re.search(r"[Rr]efused|[Ee]rrno", reason), said


def test_the_end_of_a_training_says_how_long_it_took(tmp_path):
    import re

    out = assert_ok(invoke("train", "convae", "--dataset", "digits", "--epochs", "1", "--out", tmp_path / "r",
                           *TINY_SET))
    done = next(line for line in out.splitlines() if line.startswith("completed: best epoch 1"))
    assert re.search(rf"; run in {re.escape(str(tmp_path / 'r'))}; took \d+\.\d s$", done), done
