"""Plugins: the built-in ConvAE, a third-party plugin installed through a real entry point, a broken
plugin, and runs whose plugin is not installed."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from conftest import (TINY_SET, assert_clean_error, assert_ok, invoke, read_config, read_metrics, run_zoo,
                      with_pythonpath, write_plugin)

import zoo
from zoo.errors import ConfigError, RunError, UnknownModelError


def test_list_shows_convae_with_its_package():
    out = assert_ok(invoke("list"))
    assert re.search(rf"^convae\s+zoo {re.escape(zoo.__version__)}\s+Convolutional autoencoder", out, re.M), out
    assert "convae" in zoo.list_models()


def test_list_json():
    data = json.loads(assert_ok(invoke("list", "--json")))
    convae = next(m for m in data["models"] if m["name"] == "convae")
    assert convae["package"] == f"zoo {zoo.__version__}"
    assert data["failed"] == []


def test_model_info_describes_params_and_presets():
    info = zoo.model_info("convae")
    assert info["package"] == "zoo"
    assert set(info["capabilities"]) == {"encode", "decode", "reconstruct"}
    params = {p["name"]: p for p in info["params"]}
    assert params["latent_dim"]["type"] == "int"
    assert params["latent_dim"]["default"] == 4
    assert params["latent_dim"]["range"] == "1 .. 4096"
    assert params["channels"]["type"] == "list[int]"
    assert params["activation"]["range"].startswith("one of relu")
    train = {p["name"]: p for p in info["train_params"]}
    assert train["optimizer"]["default"] == "adam"
    assert {"convae-lab", "convae-fashion-report", "convae-latent2-report"} <= set(info["presets"])


def test_info_cli_lists_keys_and_presets():
    out = assert_ok(invoke("info", "convae"))
    for word in ("latent_dim", "list[int]", "batch_size", "convae-lab", "convae-fashion-report"):
        assert word in out
    assert "differ only in dropout (and lr" in out  # held in tensors where the rate is above 0
    assert "differ only in beta, dropout (and lr, weight decay, momentum, seed, patience) train together" in \
        assert_ok(invoke("info", "vae"))
    assert "differ only in dropout, noise (and lr" in assert_ok(invoke("info", "dae"))


def test_unknown_model_suggests_the_close_match():
    with pytest.raises(UnknownModelError) as e:
        zoo.create("convea")
    assert "unknown model 'convea'" in str(e.value)
    assert "Did you mean: convae" in str(e.value)


def test_a_preset_or_catalogued_name_given_as_the_model_says_how_to_use_it(tmp_path):
    assert_clean_error(invoke("train", "sngan", "--dataset", "digits", "--out", tmp_path / "r"),
                       "'sngan' is not a model", "zoo train --preset sngan")
    with pytest.raises(UnknownModelError) as e:
        zoo.create("convae-mnist")
    assert "preset='convae-mnist'" in str(e.value) and "zoo.load('convae-mnist')" in str(e.value)
    assert not (tmp_path / "r").exists()


def test_training_arguments_that_are_no_function_or_no_callback_are_refused_before_any_folder(tmp_path):
    for kw, fragment in (({"callbacks": [object()]}, "callbacks= takes zoo.Callback objects"),
                         ({"log": "stdout"}, "log= takes a function")):
        with pytest.raises(ConfigError, match=fragment):
            zoo.train("convae", dataset="digits", out=tmp_path / "r", epochs=1, progress=False, **kw)
        assert not (tmp_path / "r").exists()
    with pytest.raises(ConfigError, match="unknown split 'tst'"):
        zoo.load_dataset("digits").split("tst")


# ------------------------------------------------------------------------------------------ third-party plugin

@pytest.fixture(scope="module")
def tinyae_run(tinyplug_dir, tmp_path_factory) -> Path:
    """A tinyae run trained by a real `python -m zoo train` that finds the plugin by its entry point."""
    run = tmp_path_factory.mktemp("tinyae") / "run"
    assert_ok(run_zoo("train", "tinyae", "--dataset", "digits", "--epochs", "1", "--out", run,
                      "--device", "cpu", "--no-progress", env=with_pythonpath(tinyplug_dir)))
    return run


def test_third_party_plugin_is_listed_with_its_package(tinyplug_dir):
    out = assert_ok(run_zoo("list", env=with_pythonpath(tinyplug_dir)))
    assert re.search(r"^tinyae\s+tinyplug 0\.1\s+one linear layer each way", out, re.M), out
    assert re.search(r"^convae\s+zoo ", out, re.M), out


def test_third_party_plugin_trains_into_a_run(tinyae_run):
    cfg = read_config(tinyae_run)
    assert cfg["model"] == "tinyae"
    assert cfg["plugin"] == {"name": "tinyae", "package": "tinyplug", "version": "0.1"}
    assert cfg["config"] == {"latent_dim": 3}
    assert len(read_metrics(tinyae_run)) == 1
    for name in ("model.safetensors", "checkpoint.safetensors", "README.md", "reconstructions.png"):
        assert (tinyae_run / name).is_file(), name
    card = (tinyae_run / "README.md").read_text()
    assert "The model comes from the plugin package `tinyplug`: install it beside zoo first (`pip install " \
           "tinyplug`)." in card


def test_third_party_run_evaluates_through_the_cli(tinyae_run, tinyplug_dir, tmp_path):
    run = Path(shutil.copytree(tinyae_run, tmp_path / "run"))
    out = assert_ok(run_zoo("eval", run, "--json", env=with_pythonpath(tinyplug_dir)))
    result = json.loads(out[out.index("{"):])
    assert result["model"] == "tinyae"
    assert result["images"] == 359
    assert 0 < result["metrics"]["mse"] < 1
    assert json.loads((run / "eval.json").read_text())["metrics"] == result["metrics"]


def test_third_party_run_loads_in_python(tinyae_run, tinyplug_installed):
    assert "tinyae" in zoo.list_models()
    model = zoo.load(tinyae_run).model
    assert type(model).__name__ == "MLPAE"
    assert model.name == "tinyae"
    assert not model.training
    x = torch.rand(2, 1, 28, 28)
    assert model.reconstruct(x).shape == (2, 1, 28, 28)
    assert model.encode(x).shape == (2, 3)
    assert zoo.model_info("tinyae")["package"] == "tinyplug"


def test_third_party_model_is_created_and_configured(tinyplug_installed):
    model = zoo.create("tinyae", latent_dim="7")
    assert model.encode(torch.rand(1, 1, 28, 28)).shape == (1, 7)
    with pytest.raises(ConfigError, match="out of range"):
        zoo.create("tinyae", latent_dim=65)
    with pytest.raises(ConfigError, match="unknown key 'channels'"):
        zoo.create("tinyae", channels=[4])


def test_run_of_a_model_that_is_not_installed_names_its_package(tinyae_run):
    assert "tinyae" not in zoo.list_models()
    with pytest.raises(RunError) as e:
        zoo.load(tinyae_run)
    assert "'tinyae', which is not installed" in str(e.value)
    assert "pip install tinyplug" in str(e.value)


def test_cli_eval_of_a_model_that_is_not_installed(tinyae_run, tmp_path):
    run = Path(shutil.copytree(tinyae_run, tmp_path / "run"))
    assert_clean_error(invoke("eval", run), "not installed", "pip install tinyplug")


# ------------------------------------------------------------------------------------------ broken plugin

def test_broken_plugin_is_reported_and_convae_still_works(brokenplug_dir, tmp_path):
    env = with_pythonpath(brokenplug_dir)
    listed = run_zoo("list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"^convae\s+zoo ", listed.stdout, re.M), listed.stdout
    assert "plugin 'broken' from package brokenplug failed to load" in listed.stderr
    assert "ImportError: brokenplug needs a library that is not installed" in listed.stderr
    assert "Traceback" not in listed.stderr


def test_broken_plugin_in_process(brokenplug_installed, tmp_path):
    assert "convae" in zoo.list_models()
    data = json.loads(assert_ok(invoke("list", "--json")))
    assert data["failed"] == [{"entry_point": "broken", "package": "brokenplug", "partial": False,
                               "error": "ImportError: brokenplug needs a library that is not installed"}]
    out = assert_clean_error(invoke("train", "broken", "--dataset", "digits", "--out", tmp_path / "r"))
    assert "model 'broken' is installed (package brokenplug) but failed to load" in out
    run = tmp_path / "ok"
    assert_ok(invoke("train", "convae", "--dataset", "digits", "--epochs", "1", "--out", run, *TINY_SET))
    assert (run / "model.safetensors").is_file()


HIJACK = '''\
import zoo
from zoo.plugins.convae import ConvAE


class Impostor(ConvAE):
    description = "not zoo's convae"


@zoo.hookimpl
def zoo_models():
    return [Impostor]
'''


def test_a_plugin_cannot_take_over_a_built_in_name(tmp_path):
    root = write_plugin(tmp_path / "site", "impostor", "convae", HIJACK)
    data = json.loads(run_zoo("list", "--json", env=with_pythonpath(root)).stdout)
    convae = next(m for m in data["models"] if m["name"] == "convae")
    assert convae["package"] == f"zoo {zoo.__version__}"
    assert [f["package"] for f in data["failed"]] == ["impostor"]


# ------------------------------------------------------------------ noise models and samplers from a plugin

NOISEPLUG = '''\
import torch

import zoo
from zoo.data.noise import NoiseModel
from zoo.analysis.latent_samplers import LatentSampler


class Erase(NoiseModel):
    name = "erase"
    description = "set a random fraction of the pixels to 0"
    params = ("fraction",)
    defaults = (0.25,)
    ranges = {"fraction": (0, 1)}

    def __call__(self, x, generator=None):
        return x * (torch.rand(x.shape, device=x.device, generator=generator) >= self.values["fraction"])


class Clash(Erase):
    name = "gaussian"


class Uniform(LatentSampler):
    name = "uniform"
    description = "U(-1, 1) in every dimension"
    needs_fit = False

    def sample(self, n, generator=None):
        return torch.rand((n, self.dim), generator=generator) * 2 - 1


@zoo.hookimpl
def zoo_noise_models():
    return [Erase, Clash]


@zoo.hookimpl
def zoo_samplers():
    return [Uniform]
'''


@pytest.fixture
def noiseplug_installed(tmp_path):
    from conftest import _install_in_process

    yield from _install_in_process(write_plugin(tmp_path / "site", "noiseplug", "erase", NOISEPLUG), "noiseplug")


def test_a_plugin_adds_a_noise_model_and_a_sampler(noiseplug_installed, tmp_path):
    data = json.loads(assert_ok(invoke("list", "--json")))
    assert data == zoo.list_plugins()  # the CLI prints the public API's listing
    erase = next(m for m in data["noise_models"] if m["name"] == "erase")
    assert (erase["package"], erase["params"]) == ("noiseplug 0.1", ["fraction"])
    assert next(m for m in data["noise_models"] if m["name"] == "gaussian")["package"].startswith("zoo ")
    assert data["failed"] == [{"entry_point": "erase", "package": "noiseplug", "partial": True,
                               "error": "noise model 'gaussian' is already provided by zoo"}]
    assert "uniform" in [m["name"] for m in data["samplers"]]
    listed = invoke("list")
    assert re.search(r"^erase:fraction\s+noiseplug 0\.1\s+set a random fraction", assert_ok(listed), re.M)
    # its one refused class is said as such: the plugin itself loaded, and its noise model and sampler work
    assert "plugin 'erase' from package noiseplug loaded, but zoo refused a part of it: noise model" in listed.output
    assert "failed to load" not in listed.output

    run = tmp_path / "dae"
    assert_ok(invoke("train", "dae", "--dataset", "digits", "--epochs", "1", "--out", run, *TINY_SET,
                     "--set", "noise=erase:0.3"))
    assert read_config(run)["config"]["noise"] == "erase:0.3"
    assert_ok(invoke("generate", run, "--sampler", "uniform", "--n", "4", "--out", tmp_path / "samples.png"))
    assert (tmp_path / "samples.png").is_file()
    assert_clean_error(invoke("train", "dae", "--dataset", "digits", "--out", tmp_path / "bad", *TINY_SET,
                              "--set", "noise=erase:2"), "erase noise: fraction must be in 0..1, got 2")


@pytest.mark.parametrize("name, said, use", [
    ("gmm", "'gmm' is not a model but a latent sampler", "zoo generate RUN --sampler gmm"),
    ("gaussian", "'gaussian' is not a model but a latent sampler and a noise model",
     "zoo train dae --set noise=gaussian:VALUE"),
    ("mlflow", "'mlflow' is not a model but a logger", "zoo train MODEL --log mlflow")])
def test_a_sampler_noise_model_or_logger_named_as_a_model_is_said_as_what_it_is(tmp_path, name, said, use):
    """`zoo search gmm` said only "unknown model 'gmm'"."""
    for args in (("search", name, "--space", "x.toml"),
                 ("train", name, "--dataset", "digits", "--out", tmp_path / "r")):
        assert_clean_error(invoke(*args), said, use)
    assert not (tmp_path / "r").exists()
