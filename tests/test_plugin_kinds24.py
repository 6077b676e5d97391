"""A hostile author's plugin of the other kinds (kinds24): a latent sampler that raises or draws NaN, names with
capitals, a logger whose open() or prepare() goes wrong, one-element-tuple slips in `params`/`defaults`, a typo in
`ranges`, a callback whose check() or __init__ raises. Each is said as the plugin's failure, naming its package:
refused when the plugin loads where zoo can tell then, else one clean error (exit 1), never a traceback or a
message blaming the user. The plugin is a real package written into tmp_path and registered as pip would leave it;
KINDS24 in the environment picks its mistake."""

from __future__ import annotations

import importlib
import json
import shutil

import pytest

import zoo
from conftest import TINY, TINY_SET, assert_clean_error, assert_ok, failures_of, invoke
from zoo import registry
from zoo.console import quiet

KINDS = '''
import os

import torch
import zoo
from zoo.tracking import Logger

BREAK = set(filter(None, os.environ.get("KINDS24", "").split(",")))


def broken(mode):
    return mode in os.environ.get("KINDS24", "").split(",")


class Speckle(zoo.NoiseModel):
    name = "speckle24"
    params = ("sigma",)
    defaults = (0.2,)
    ranges = {"sigma": (0, 5)}

    def __call__(self, x, generator=None):
        noise = torch.randn(x.shape, generator=generator, device=x.device)
        return (x * (1 + self.values["sigma"] * noise)).clamp(0, 1)


class DiagGaussian(zoo.LatentSampler):
    name = "diag24"

    def _fit(self, codes, seed):
        if broken("fit_raise"):
            raise ValueError("cannot fit diag24")
        self.mean, self.std = codes.mean(0), codes.std(0)

    def sample(self, n, generator=None):
        if broken("sample_raise"):
            raise RuntimeError("sample blew up")
        out = self.mean.float() + torch.randn((n, self.dim), generator=generator) * self.std.float()
        if broken("sample_nan"):
            out[0, 0] = float("nan")
        return out

    def state(self):
        return {"mean": self.mean, "std": self.std}

    def _load(self, tensors):
        if broken("load_raise"):
            raise TypeError("bad load")
        t = zoo.check_state(tensors, {"mean": (self.dim,), "std": (self.dim,)})
        self.mean, self.std = t["mean"], t["std"]


class L1Weights(zoo.Callback):
    name = "l1w24"
    params = ("weight",)
    defaults = (1e-4,)
    ranges = {"weight": (0, 1)}

    def __init__(self, weight=1e-4):
        if broken("init_value") and weight == 0:
            raise ValueError("weight must be positive")
        self.weight = weight

    def check(self, model):
        if broken("check_attr"):
            model.encoder.weight

    def on_epoch_end(self, trainer, epoch, record):
        if broken("epoch_raise"):
            raise RuntimeError("callback bug")

    def on_loss(self, trainer, step):
        if broken("nan_loss"):
            step.loss = step.loss * float("nan")


class CsvLog(Logger):
    name = "csv24"
    run_files = ("csv24.csv",)

    def prepare(self, folder):
        if broken("prepare_rt"):
            raise RuntimeError("no token configured")
        if broken("prepare_conn"):
            raise ConnectionError("cannot reach server in prepare")

    def open(self, run):
        self.path = run.folder / "csv24.csv"
        return "0" if broken("open_str") else 0

    def log_epoch(self, record):
        with open(self.path, "a") as f:
            f.write(f"{record['epoch']}\\n")


def upper(cls, name):
    return [cls, type(cls.__name__ + "Upper", (cls,), {"name": name})] if "upper" in BREAK else [cls]


@zoo.hookimpl
def zoo_noise_models():
    return upper(Speckle, "Speckle24")


@zoo.hookimpl
def zoo_samplers():
    return upper(DiagGaussian, "Diag24")


@zoo.hookimpl
def zoo_callbacks():
    return upper(L1Weights, "L1W24")


@zoo.hookimpl
def zoo_loggers():
    return upper(CsvLog, "CsvLog24")


if "params_str" in BREAK:
    Speckle.params = ("sigma")
    L1Weights.params = ("weight")
if "defaults_float" in BREAK:
    Speckle.defaults = (0.2)
    L1Weights.defaults = (1e-4)
if "ranges_typo" in BREAK:
    Speckle.ranges = {"sigmaa": (0, 5)}
    L1Weights.ranges = {"wieght": (0, 1)}
if "vectorized" in BREAK:
    Speckle.vectorized = True  # but __call__ takes no strength=
'''


@pytest.fixture
def kinds(plugin_installer, monkeypatch):
    """install(*mistakes): the plugin package kinds24, with KINDS24 set to those mistakes while it loads and runs."""
    def install(*mistakes: str) -> None:
        monkeypatch.setenv("KINDS24", ",".join(mistakes))
        plugin_installer("kinds24", KINDS)

    return install


def train_cli(out, *extra: str):
    return invoke("train", "convae", "--dataset", "digits", "--epochs", "1", *TINY_SET, "--out", out, *extra)


# ---------------------------------------------------------------- §3 a latent sampler that raises or draws NaN

@pytest.mark.parametrize("mistake, said", [
    ("sample_nan", "its sample() drew codes holding NaN or infinite values"),
    ("sample_raise", "its sample() raised RuntimeError: sample blew up"),
    ("fit_raise", "its _fit() raised ValueError: cannot fit diag24"),
])
def test_a_plugin_sampler_raising_or_drawing_nan_is_said_as_its_packages_bug_not_the_users(
        kinds, run_copy, tmp_path, mistake, said):
    kinds(mistake)
    out = tmp_path / "s.png"
    result = invoke("generate", run_copy, "--sampler", "diag24", "--n", "4", "--out", out)
    text = assert_clean_error(result, f"sampler 'diag24' (kinds24 0.1): {said}", "report it to its author", code=1)
    assert "run.encode" not in text and not out.exists()


def test_a_plugin_samplers_load_raising_other_than_a_damaged_files_errors_is_said_as_its_bug(
        kinds, run_copy, tmp_path, monkeypatch):
    kinds()
    assert invoke("generate", run_copy, "--sampler", "diag24", "--n", "4", "--out", tmp_path / "a.png").exit_code == 0
    assert (run_copy / "sampler-diag24.safetensors").is_file()  # fitted and saved: read back next time
    monkeypatch.setenv("KINDS24", "load_raise")
    assert_clean_error(invoke("generate", run_copy, "--sampler", "diag24", "--n", "4", "--out", tmp_path / "b.png"),
                       "sampler 'diag24' (kinds24 0.1): its _load() raised TypeError: bad load", code=1)


# ---------------------------------------------------------------- §4 names with capitals

def test_plugin_names_with_capitals_are_refused_at_load_as_the_plugins_failure(kinds):
    kinds("upper")
    reg = registry.load_registry()
    said = " ".join(failures_of("kinds24"))
    for kind, name, where in (("noise model", "Speckle24", reg.noise_models), ("sampler", "Diag24", reg.samplers),
                              ("callback", "L1W24", reg.callbacks), ("logger", "CsvLog24", reg.loggers)):
        assert name not in where, name
        assert f"{kind} name '{name}' has capitals, which zoo's options never match: name it '{name.lower()}'" \
            in said
    assert {"speckle24", "diag24", "l1w24", "csv24"} <= {*reg.noise_models, *reg.samplers, *reg.callbacks,
                                                         *reg.loggers}  # its other classes still load
    assert "name 'Diag24' has capitals" in invoke("list").output


# ---------------------------------------------------------------- §5 a logger's open() and prepare()

def test_a_plugin_logger_whose_open_returns_no_int_is_left_out_with_a_note_and_training_completes(kinds, tmp_path):
    kinds("open_str")
    result = train_cli(tmp_path / "run", "--log", "csv24")
    assert result.exit_code == 0, result.output
    assert "note: csv24: opening the run failed (TypeError: its open() returned '0', not the last epoch" \
        in result.output
    assert (tmp_path / "run" / "model.safetensors").is_file()


@pytest.mark.parametrize("mistake, raised", [("prepare_rt", "RuntimeError: no token configured"),
                                             ("prepare_conn", "ConnectionError: cannot reach server in prepare")])
def test_a_plugin_loggers_prepare_raising_is_its_packages_bug_not_a_disk_error(kinds, tmp_path, mistake, raised):
    kinds(mistake)
    result = train_cli(tmp_path / "run", "--log", "csv24")
    text = assert_clean_error(result, f"logger 'csv24' (kinds24 0.1): its prepare() raised {raised}",
                              "Or leave csv24 out of --log.", code=1)
    assert "disk" not in text and not (tmp_path / "run").exists()


# ---------------------------------------------------------------- §6 params, defaults, ranges, vectorized

@pytest.mark.parametrize("mistake, noise, callback", [
    ("params_str", "Speckle.params is 'sigma', not a tuple: a one-element tuple needs its comma, ('sigma',)",
     "L1Weights.params is 'weight', not a tuple: a one-element tuple needs its comma, ('weight',)"),
    ("defaults_float", "Speckle.defaults is 0.2, not a tuple: a one-element tuple needs its comma, (0.2,)",
     "L1Weights.defaults is 0.0001, not a tuple"),
    ("ranges_typo", "Speckle.ranges names sigmaa, not one of its params (sigma)",
     "L1Weights.ranges names wieght, not one of its params (weight)"),
])
def test_a_noise_models_or_callbacks_malformed_params_defaults_or_ranges_are_refused_at_load(
        kinds, mistake, noise, callback):
    kinds(mistake)
    reg = registry.load_registry()
    assert "speckle24" not in reg.noise_models and "l1w24" not in reg.callbacks
    said = failures_of("kinds24")
    assert f"noise model speckle24: {noise}" in said and any(callback in e for e in said), said
    assert "diag24" in reg.samplers  # the plugin's other classes still load
    listed = invoke("list")
    assert "speckle24:s:i" not in listed.output and noise in listed.output


def test_a_vectorized_noise_model_whose_call_takes_no_strength_is_refused_at_load(kinds):
    kinds("vectorized")
    assert "speckle24" not in registry.load_registry().noise_models
    assert any("Speckle has vectorized = True, but its __call__ takes no strength=" in e
               for e in failures_of("kinds24"))


def test_well_formed_noise_models_and_callbacks_of_zoo_and_the_plugin_load(kinds):
    kinds()
    reg = registry.load_registry()
    assert failures_of("kinds24") == [] and failures_of("zoo") == []
    assert {"gaussian", "salt-pepper", "occlusion", "speckle24"} <= set(reg.noise_models)
    assert {"dropout-schedule", "l1w24"} <= set(reg.callbacks)


# ---------------------------------------------------------------- §8 a callback's check() and __init__

@pytest.mark.parametrize("mistake, spec, said", [
    ("check_attr", "l1w24", "its check() raised AttributeError"),
    ("init_value", "l1w24:0", "its __init__() raised ValueError: weight must be positive"),
])
def test_a_plugin_callbacks_check_or_init_raising_is_one_error_naming_it_before_anything_is_written(
        kinds, tmp_path, mistake, spec, said):
    kinds(mistake)
    result = train_cli(tmp_path / "run", "--set", f"train_callbacks={spec}")
    assert_clean_error(result, f"callback 'l1w24' (kinds24 0.1): {said}", "report it to its author", code=1)
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- §7 what a callback's failure and absence say

def test_a_failing_plugin_callbacks_hint_says_a_resume_keeps_it(kinds, tmp_path):
    kinds("epoch_raise")
    with pytest.raises(zoo.ZooError) as caught:
        zoo.train("convae", dataset="digits", epochs=1, out=tmp_path / "run", log=quiet, progress=False,
                  train_callbacks=["l1w24"], **TINY)
    assert "train a new run without it" in caught.value.hint and "a resumed run keeps the callbacks" \
        in caught.value.hint


def test_an_unknown_callback_names_the_plugins_that_failed_to_load(kinds, tmp_path):
    kinds("params_str")
    result = train_cli(tmp_path / "run", "--set", "train_callbacks=l1w24")
    assert_clean_error(result, "unknown callback 'l1w24'", "'kinds24' (kinds24)", "On --resume")


# ---------------------------------------------------------------- §10 zoo info of a callback, help texts

def test_zoo_info_of_a_training_callback_says_what_it_is_and_how_it_is_used(kinds):
    kinds()
    assert_clean_error(invoke("info", "l1w24"), "'l1w24' is not a model but a training callback",
                       "zoo train MODEL --set train_callbacks=l1w24:VALUES")
    assert_clean_error(invoke("info", "pruning"), "not a model but a training callback", "--set prune_every=VALUE")


def test_log_options_help_mentions_plugin_loggers_and_zoo_list_help_every_kind():
    said = lambda *command: " ".join(invoke(*command, "--help").output.split())  # noqa: E731  (as wrapped)
    for command in ("train", "eval", "search"):
        assert "or a plugin's (zoo list shows them)" in said(command) or "or a plugin's: zoo list shows them" \
            in said(command), command
    assert "training callbacks and loggers" in said("list")


def test_a_run_records_its_plugin_callback_and_logger_and_a_resume_without_them_says_what_to_install(
        plugin_installer, tmp_path):
    folder = plugin_installer("kinds24", KINDS)
    assert_ok(train_cli(tmp_path / "run", "--set", "train_callbacks=l1w24", "--log", "csv24"))
    uses = json.loads((tmp_path / "run" / "config.json").read_text())["uses"]
    assert {(u["kind"], u["name"], u["package"]) for u in uses} == {("callback", "l1w24", "kinds24"),
                                                                    ("logger", "csv24", "kinds24")}
    shutil.rmtree(folder.parent / "kinds24-0.1.dist-info")  # pip uninstall, as zoo's entry points see it
    importlib.invalidate_caches()
    registry.load_registry(refresh=True)
    assert zoo.load(tmp_path / "run").can("reconstruct")  # opened without them: they only train
    assert_clean_error(invoke("train", "--resume", tmp_path / "run", "--epochs", "2"),
                       "uses callback 'l1w24', which is not installed", "pip install kinds24", code=1)



def test_a_training_a_plugin_callback_took_part_in_that_diverged_says_it_may_be_left_out(kinds, tmp_path):
    kinds("nan_loss")
    with pytest.raises(zoo.errors.TrainingDiverged) as caught:
        zoo.train("convae", dataset="digits", epochs=1, out=tmp_path / "run", log=quiet, progress=False,
                  train_callbacks=["l1w24"], **TINY)
    assert "lower learning rate (--lr), or without callback 'l1w24' (kinds24 0.1)" in caught.value.hint
