"""The Python API with trained runs, as a hostile walk used it (pyhead22): a model converted to another dtype,
zoo.load_images' arguments, zoo.read_run of what zoo.load takes, codes beyond float32, zoo.finetune's out=,
config= and init=, a run without its weights, and a training's result passed on as a run."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from conftest import quiet
from PIL import Image

import zoo
from zoo.errors import ConfigError, RunError, ZooError


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_run_methods_feed_a_converted_model_in_its_own_dtype(digits_run, dtype):
    run = zoo.load(digits_run)
    x, _ = run.data("test")
    run.model.to(dtype)
    codes = run.encode(x[:2])
    assert codes.dtype == dtype
    assert run.decode(codes.double()).dtype == dtype and run.reconstruct(x[:2].double() / 255).dtype == dtype


def test_tasks_refuse_a_converted_model_saying_how_to_bring_it_back(digits_run):
    run = zoo.load(digits_run)
    run.model.half()
    with pytest.raises(ConfigError, match=r"float16.*float32 model") as e:
        zoo.evaluate(run, save=False, limit=10)
    assert "run.model.float()" in e.value.hint
    run.model.float()
    assert "mse" in zoo.evaluate(run, save=False, limit=10)["metrics"]


def test_a_converted_model_whose_own_code_computes_in_float32_fails_in_one_zoo_error(digits_vae_run):
    run = zoo.load(digits_vae_run)
    run.model.double()
    try:
        out = run.sample(2)  # the VAE draws its noise in float32: a plugin may or may not follow the dtype
    except ZooError as e:
        assert "float64" in e.message and "run.model.float()" in e.hint
    else:
        assert out.shape[0] == 2


def _images(folder):
    folder.mkdir()
    for i in range(2):
        Image.fromarray((np.random.rand(40, 30, 3) * 255).astype("uint8")).save(folder / f"{i}.png")
    return folder


@pytest.mark.parametrize("shape", [(28, 28), (1, 0, 28), (1, 28.5, 28), None, (2, 28, 28), (0, 28, 28)])
def test_load_images_refuses_a_shape_it_would_not_honour(tmp_path, shape):
    with pytest.raises(ConfigError, match="shape|channels"):
        zoo.load_images(_images(tmp_path / "imgs"), shape, "cpu", log=quiet)


def test_load_images_refuses_a_folder_that_is_no_path_and_an_unknown_device(tmp_path):
    with pytest.raises(ConfigError, match="path, not None"):
        zoo.load_images(None, (1, 28, 28), "cpu")
    with pytest.raises(ConfigError, match="unknown device 'gpu'"):
        zoo.load_images(_images(tmp_path / "imgs"), (1, 28, 28), "gpu", log=quiet)
    x, files = zoo.load_images(tmp_path / "imgs", (3, 28, 28), "cpu", log=quiet)
    assert x.shape == (2, 3, 28, 28) and len(files) == 2


def test_read_run_takes_what_zoo_load_takes_and_refuses_the_rest(digits_run):
    assert zoo.read_run("convae-mnist")["model"] == "convae"
    assert zoo.read_run(zoo.load(digits_run))["model"] == "convae"
    for bad in (None, 5):
        with pytest.raises(ConfigError, match="names no run"):
            zoo.read_run(bad)


def test_decode_refuses_float64_codes_that_overflow_the_models_dtype(digits_run):
    run = zoo.load(digits_run)
    with pytest.raises(ConfigError, match="NaN or infinite values"):
        run.decode(torch.full((2, run.code_width), 1e300, dtype=torch.float64))


@pytest.mark.parametrize("out", [5, b"x", ["a"], ""])
def test_finetune_refuses_an_out_that_names_no_folder_before_loading_the_source(out):
    with pytest.raises(ConfigError, match="out="):
        zoo.finetune("no-such-run", epochs=1, out=out)


@pytest.mark.parametrize("config, said", [({"freeze": "none"}, "sets 'freeze' itself"),
                                          ({"latent_dim": 3}, "comes from the source run"),
                                          ({"head": [5]}, "sets 'head' itself")])
def test_finetune_refuses_config_keys_it_refuses_as_keywords(digits_run, tmp_path, config, said):
    with pytest.raises(ConfigError, match=said):
        zoo.finetune(digits_run, epochs=1, out=tmp_path / "ft", config=config, log=quiet, progress=False)
    assert not (tmp_path / "ft").exists()


def test_finetune_refuses_init_in_a_zoo_error(digits_run, tmp_path):
    with pytest.raises(ConfigError, match="init="):
        zoo.finetune(digits_run, epochs=1, out=tmp_path / "ft", init=lambda m: None)


def test_finetune_honours_config_keys_and_its_result_is_taken_as_its_run(digits_run, tmp_path):
    result = zoo.finetune(digits_run, epochs=1, out=tmp_path / "ft", config={"lr": 0.005}, log=quiet,
                          progress=False, device="cpu")
    assert zoo.read_run(result)["train"]["lr"] == 0.005
    assert zoo.load(result).folder == (tmp_path / "ft").absolute()
    assert "accuracy" in zoo.evaluate(result, save=False, limit=20)["metrics"]


def test_a_run_without_its_weights_file_says_what_to_do(run_copy):
    os.remove(run_copy / "model.safetensors")
    with pytest.raises(RunError, match="is missing") as e:
        zoo.load(run_copy)
    assert "Restore it from a copy" in e.value.hint and "--resume" in e.value.hint


def test_run_method_edges_are_said_as_what_they_are(digits_run):
    run = zoo.load(digits_run)
    with pytest.raises(ConfigError, match="meta device"):
        run.encode(torch.zeros(1, *run.shape, device="meta"))
    with pytest.raises(RunError) as e:
        zoo.load("CONVAE-MNIST")
    assert "convae-mnist" in e.value.hint
    cvae = zoo.load("cvae-mnist")
    with pytest.raises(ConfigError, match="no class indices given"):
        cvae.sample_class([])
    assert cvae.sample_class(torch.tensor([1])).shape[0] == 1

