"""A hostile plugin author's noise model (kinds24 §1, §2, §8, §9): one that raises, gives images in [0, 255], NaN,
uint8 or of another shape, or whose check() raises a ValueError, is said as its plugin's bug naming its package (not
blamed on the user's images, not a traceback), in zoo denoise, zoo eval, the noise sweep and a DAE's training; a
broken one is left out of other DAEs' noise sweeps; a run records the package of its noise model. The plugin is a
real package written into tmp_path and registered in this process (conftest.plugin_installer)."""

from __future__ import annotations

import importlib
import json
import shutil

import pytest
from conftest import TINY, assert_clean_error, invoke, quiet

import zoo
from zoo import registry
from zoo.data.noise import parse_noise
from zoo.errors import ConfigError, PluginError, RunError, TrainingDiverged
from zoo.runs.plugin_uses import uses_record

SPECKLE = '''\
import os

import torch

import zoo


class Speckle(zoo.NoiseModel):
    name = "speckle24"
    params = ("sigma",)
    defaults = (0.2,)
    ranges = {"sigma": (0, 5)}

    def check(self):
        if self.values["sigma"] > 1:
            raise ValueError("sigma above 1 makes no sense")

    def __call__(self, x, generator=None):
        n = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        out = (x * (1 + self.values["sigma"] * n)).clamp(0, 1)
        mode = os.environ.get("NOISE24", "")  # the author's mistake the test switches on
        if mode == "raise":
            raise RuntimeError("speckle exploded")
        return {"range": out * 255, "nan": out * float("nan"), "uint8": (out * 255).to(torch.uint8),
                "shape": out[:, :, 1:, :], "": out,
                "late": out * float("nan") if x.shape[0] != 8 else out}[mode]  # right on check_training's 8 only


@zoo.hookimpl
def zoo_noise_models():
    return [Speckle]
'''

NAMED = "noise model 'speckle24' (noiseplug24 0.1)"
SAID = {"raise": "its __call__() raised RuntimeError: speckle exploded",
        "range": "its __call__() gave images with values from 0 to 255, not in [0, 1]",
        "nan": "its __call__() gave images holding NaN or infinite values",
        "uint8": "its __call__() gave a torch.uint8 tensor, not float images",
        "shape": "its __call__() gave shape (4, 1, 27, 28) for images of shape (4, 1, 28, 28)"}


@pytest.fixture
def speckle(plugin_installer):
    plugin_installer("noiseplug24", SPECKLE)


@pytest.fixture(scope="module")
def gaussian_dae(tmp_path_factory):
    """A DAE trained with zoo's own gaussian noise, before any plugin noise is installed."""
    out = tmp_path_factory.mktemp("dae24") / "dae"
    return zoo.train("dae", dataset="digits", epochs=1, out=out, log=quiet, progress=False, **TINY).run_dir


def train_dae(out, **keys):
    return zoo.train("dae", dataset="digits", epochs=1, noise="speckle24:0.3", out=out, log=quiet, progress=False,
                     **TINY, **keys)


@pytest.mark.parametrize("mode", ["raise", "range", "nan", "uint8"])
def test_denoise_names_a_noise_model_that_raises_or_gives_bad_images_not_the_users_images(
        speckle, gaussian_dae, mode, monkeypatch, tmp_path):
    monkeypatch.setenv("NOISE24", mode)
    result = invoke("denoise", gaussian_dae, "--noise", "speckle24:0.3", "--n", "4", "--out", tmp_path / "d.png")
    out = assert_clean_error(result, f"{NAMED}: {SAID[mode]}", "report it to its author", code=1)
    assert "Divide 0..255" not in out and not (tmp_path / "d.png").exists()


@pytest.mark.parametrize("mode", ["raise", "range"])
def test_a_broken_plugin_noise_is_left_out_of_another_daes_noise_sweep_with_a_note(
        speckle, gaussian_dae, mode, monkeypatch):
    monkeypatch.setenv("NOISE24", mode)
    result = zoo.noise_sweep(gaussian_dae, factors=(1, 2), save=False)
    swept = [row["noise"] for row in result["rows"]]
    assert swept[:2] == ["gaussian:0.3", "gaussian:0.6"] and "salt-pepper:0.1" in swept
    assert not any(s.startswith("speckle24") for s in swept)
    assert any(note.startswith(NAMED) and "left out of the sweep" in note for note in result["notes"])
    with pytest.raises(PluginError, match="noise model 'speckle24'"):  # the noise swept: its sweep fails
        zoo.noise_sweep(gaussian_dae, noise="speckle24:0.3", factors=(1,), save=False)


@pytest.mark.parametrize("mode", ["shape", "range", "raise"])
def test_training_a_dae_on_a_noise_giving_bad_images_is_refused_before_anything_is_written(
        speckle, mode, monkeypatch, tmp_path):
    monkeypatch.setenv("NOISE24", mode)
    with pytest.raises(PluginError, match=NAMED.replace("(", r"\(").replace(")", r"\)")):
        train_dae(tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_dae_diverging_on_a_noise_that_turns_to_nan_after_its_check_is_told_to_train_without_it(
        speckle, monkeypatch, tmp_path):
    monkeypatch.setenv("NOISE24", "late")
    with pytest.raises(TrainingDiverged) as caught:
        train_dae(tmp_path / "run")
    assert caught.value.hint.endswith(f"with a lower learning rate (--lr), or without {NAMED}: --resume keeps the "
                                      "run's settings.")


def test_eval_of_a_dae_whose_noise_now_gives_bad_images_is_refused_naming_it(speckle, monkeypatch, tmp_path):
    run = train_dae(tmp_path / "run").run_dir
    for mode in ("shape", "range"):
        monkeypatch.setenv("NOISE24", mode)
        assert_clean_error(invoke("eval", run), NAMED, "its __call__() gave", code=1)
        assert not (run / "eval.json").exists()


def test_a_noise_check_raising_a_value_error_is_said_naming_the_noise_model(speckle, gaussian_dae, tmp_path):
    result = invoke("denoise", gaussian_dae, "--noise", "speckle24:2", "--n", "4", "--out", tmp_path / "d.png")
    assert_clean_error(result, f"{NAMED}: its check() raised ValueError: sigma above 1 makes no sense", code=1)


def test_a_dae_records_the_package_of_its_noise_and_without_it_says_which_to_install(plugin_installer, tmp_path):
    folder = plugin_installer("noiseplug24", SPECKLE)
    run_dir = train_dae(tmp_path / "run").run_dir
    record = json.loads((run_dir / "config.json").read_text())
    assert record["uses"] == [{"kind": "noise model", "name": "speckle24", "package": "noiseplug24", "version": "0.1"}]
    assert zoo.load(run_dir).can("reconstruct")  # installed: nothing to say
    shutil.rmtree(folder.parent / "noiseplug24-0.1.dist-info")  # pip uninstall, as zoo's entry points see it
    importlib.invalidate_caches()
    registry.load_registry(refresh=True)
    said = ("uses noise model 'speckle24', which is not installed", "pip install noiseplug24")
    with pytest.raises(RunError) as caught:
        zoo.load(run_dir)
    assert said[0] in caught.value.message and said[1] in caught.value.hint
    assert "edited" not in str(caught.value)
    assert_clean_error(invoke("train", "--resume", run_dir, "--epochs", "2"), *said, code=1)
    info = invoke("info", run_dir).output
    assert all(part in info for part in said), info
    assert uses_record(zoo.create("dae", **{k: v for k, v in TINY.items() if k != "device"})) == []  # zoo's noise


def test_an_unknown_noise_names_the_plugins_zoo_refused_where_it_may_be(plugin_installer):
    plugin_installer("noiseplug24", SPECKLE.replace('name = "speckle24"', 'name = "Speckle24"'))  # refused at load
    with pytest.raises(ConfigError) as caught:
        parse_noise("speckle24:0.3")
    assert "unknown noise 'speckle24'" in caught.value.message
    assert "failed to load" in caught.value.hint and "(noiseplug24)" in caught.value.hint
