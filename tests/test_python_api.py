"""The Python API as a script uses it: a Run held across changes to its module or its folder, and the
arguments a caller can get wrong, each refused in one zoo error as the CLI refuses it."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from conftest import TINY, assert_clean_error, assert_ok, invoke, quiet, write_idx_set

import zoo
from zoo.analysis.interpolation import interpolate
from zoo.analysis.latent import latent_scatter
from zoo.analysis.manifold import manifold
from zoo.analysis.latent_samplers import fitted_sampler, sampler_path
from zoo.errors import ConfigError, RunError


def test_evaluate_refuses_to_save_results_of_a_module_changed_since_it_was_loaded(vae_copy):
    run = zoo.load(vae_copy)
    on_file = zoo.evaluate(run, save=False)["metrics"]["mse"]
    with torch.no_grad():
        next(run.model.parameters()).add_(1.0)  # as fine-tuning through run.model would
    with pytest.raises(RunError, match="run.model's weights changed since they were loaded"):
        zoo.evaluate(run)
    assert not (vae_copy / "eval.json").exists()
    assert zoo.evaluate(run, save=False)["metrics"]["mse"] != on_file  # measured, as asked, without saving


def test_sample_quality_and_noise_sweep_refuse_to_save_results_of_a_changed_module(vae_copy):
    run = zoo.load(vae_copy)
    with torch.no_grad():
        next(run.model.parameters()).add_(1.0)
    for task in (lambda: zoo.sample_quality(run, features=vae_copy, n=100), lambda: zoo.noise_sweep(run)):
        with pytest.raises(RunError, match="run.model's weights changed since they were loaded"):
            task()
    assert not (vae_copy / "quality.json").exists() and not (vae_copy / "noise_sweep.json").exists()


def test_evaluate_refuses_to_save_results_for_a_file_replaced_since_the_run_was_loaded(vae_copy, tmp_path):
    run = zoo.load(vae_copy)
    zoo.train("vae", dataset="digits", epochs=1, latent_dim=2, out=tmp_path / "other", seed=1, progress=False,
              log=quiet, **TINY)
    shutil.copy2(tmp_path / "other" / "model.safetensors", vae_copy / "model.safetensors")
    with pytest.raises(RunError, match="holds other weights than were loaded"):
        zoo.evaluate(run)
    assert not (vae_copy / "eval.json").exists()


def test_a_sampler_fitted_on_a_changed_module_is_used_but_never_saved(vae_copy):
    run = zoo.load(vae_copy)
    with torch.no_grad():
        next(run.model.parameters()).add_(1.0)
    said: list[str] = []
    sampler = fitted_sampler(run, "gmm", log=said.append)
    assert sampler.sample(4, torch.Generator().manual_seed(0)).shape == (4, 2)
    assert not sampler_path(vae_copy, "gmm").exists()
    assert any("not saved: run.model's weights changed" in line for line in said)


@pytest.mark.parametrize("limit", [-3, 0, True, 2.5, "10"])
def test_an_evaluation_limit_that_is_no_count_of_images_is_refused_and_writes_nothing(vae_copy, limit):
    with pytest.raises(ConfigError, match=r"--limit \(limit=\) must be a whole number from 1 to 10,000,000"):
        zoo.evaluate(vae_copy, limit=limit)
    assert not (vae_copy / "eval.json").exists()


@pytest.mark.parametrize("n", [0, 2.5, "4", None, True, 2000])
def test_a_picture_count_that_is_no_count_is_refused_by_reconstruct_and_denoise(vae_copy, tmp_path, n):
    for task in (zoo.reconstruct, zoo.denoise):
        with pytest.raises(ConfigError, match=r"--n \(n=\) must be a whole number from 1 to"):  # the CLI's ranges
            task(vae_copy, n=n, out=tmp_path / "r.png")
    assert not (tmp_path / "r.png").exists()


def test_numpys_whole_numbers_count_as_whole_numbers(vae_copy, tmp_path):
    assert zoo.reconstruct(vae_copy, n=np.int64(4), out=tmp_path / "r.png").is_file()
    result = zoo.evaluate(vae_copy, limit=np.int64(5), options={"iwae_k": np.int64(3)}, save=False)
    assert result["images"] == 5 and "nll_iwae_k3_nats" in result["metrics"]
    with pytest.raises(ConfigError, match="option iwae_k is a number or text"):
        zoo.evaluate(vae_copy, limit=5, options={"iwae_k": torch.tensor(3)}, save=False)


@pytest.mark.parametrize("n", [0, -5, 2.5, "100", 99])
def test_a_sample_quality_count_below_the_clis_is_refused(vae_copy, n):
    with pytest.raises(ConfigError, match=r"--fid-n \(n=\) must be a whole number from 100 to 1,000,000"):
        zoo.sample_quality(vae_copy, features=vae_copy, n=n, save=False)


def test_compare_takes_runs_loaded_with_zoo_load_as_it_takes_their_folders(vae_copy, run_copy):
    by_folder = zoo.compare([vae_copy, run_copy]).to_dict()
    by_run = zoo.compare([zoo.load(vae_copy), zoo.load(run_copy)]).to_dict()
    assert [r["name"] for r in by_run["runs"]] == [r["name"] for r in by_folder["runs"]]
    assert zoo.compare(zoo.load(vae_copy)).to_dict()["runs"][0]["model"] == "vae"
    with pytest.raises(ConfigError, match="compare takes a list of runs, not NoneType"):
        zoo.compare(None)


def test_a_device_given_with_a_run_is_checked_as_with_its_folder(vae_copy):
    run = zoo.load(vae_copy, device=torch.device("cpu"))  # a torch.device as well as its name
    assert run.device == torch.device("cpu")
    for device in ("gpu", 5):
        with pytest.raises(ConfigError, match="device"):
            zoo.evaluate(run, device=device, limit=5, save=False)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available here"):
            zoo.evaluate(run, device="cuda", limit=5, save=False)


def test_decode_takes_float64_codes_as_encode_takes_float64_images(vae_copy):
    run = zoo.load(vae_copy)
    images = run.data("test")[0][:4]
    codes = run.encode(images.double() / 255)
    torch.testing.assert_close(run.decode(codes.double()), run.decode(codes))


def test_generate_with_a_run_may_write_into_that_runs_own_folder_as_with_its_name(vae_copy):
    out = zoo.generate(zoo.load(vae_copy), n=2, out=vae_copy / "samples.png")
    assert out == vae_copy / "samples.png" and out.is_file()


def test_every_name_of_the_public_api_is_reachable_from_zoo_itself():
    import zoo.api

    assert set(zoo.api.__all__) <= set(zoo.__all__)
    for name in zoo.api.__all__:
        assert getattr(zoo, name) is getattr(zoo.api, name)


@pytest.mark.parametrize("call", [
    lambda run: zoo.evaluate(run, options=[("iwae_k", 5)], save=False),
    lambda run: zoo.evaluate(run, options="iwae_k=5", save=False),
    lambda run: zoo.evaluate(run, options={"batch": 1}, save=False),
    lambda run: zoo.evaluate(run, options={"options": 1}, save=False),
    lambda run: zoo.model_info(5),
    lambda run: zoo.resolve_config("vae", overrides=[("latent_dim", 5)]),
    lambda run: zoo.generate(run, n=2, class_label=1, spread="x"),
    lambda run: run.sample(2, generator=5),
    lambda run: run.dataset(5),
    lambda run: zoo.noise_sweep(run, noise=0.3, save=False),
    lambda run: zoo.noise_sweep(run, noise="gaussian:0.3", factors=3, save=False),
    lambda run: zoo.noise_sweep(run, noise="gaussian:0.3", factors=[], save=False),
    lambda run: zoo.noise_sweep(run, noise="gaussian:0.3", factors=[0], save=False),
    lambda run: zoo.generate(run, out=123),
    lambda run: zoo.evaluate(run, per_image=123),
    lambda run: zoo.train("vae", preset=5),
    lambda run: zoo.train("vae", config=[("k", 3)]),
    lambda run: zoo.train("vae", callbacks=5),
    lambda run: latent_scatter(run, n="50"),
    lambda run: latent_scatter(run, n=50, seed=-1),
    lambda run: manifold(run, steps=5.5),
    lambda run: manifold(run, dims=3),
    lambda run: interpolate(run, 3, 8, steps=None),
    lambda run: zoo.evaluate(run, limit=8, save="no"),
    lambda run: zoo.evaluate(run, limit=8, progress="x"),
], ids=["options-list", "options-text", "options-batch", "options-catch-all", "model-info-int",
        "overrides-list", "spread-text", "generator-int", "data-dir-int", "noise-float", "factors-int",
        "factors-none", "factors-zero", "out-int", "per-image-int", "preset-int", "config-list", "callbacks-int",
        "latent-n-text", "latent-seed-negative", "manifold-steps-fraction", "manifold-dims-int",
        "interpolate-steps-none", "save-text", "progress-text"])
def test_an_argument_of_the_wrong_kind_ends_in_one_zoo_error(vae_copy, call):
    before = sorted(p.name for p in vae_copy.iterdir())
    with pytest.raises(zoo.ZooError):
        call(zoo.load(vae_copy))
    assert sorted(p.name for p in vae_copy.iterdir()) == before


def test_the_card_of_an_evaluation_of_the_train_split_does_not_call_it_a_test(vae_copy):
    zoo.evaluate(vae_copy, split="train", limit=40)
    card = (vae_copy / "README.md").read_text()
    assert "## Train metrics (40 train images, grey levels)" in card and "## Test metrics" not in card


def test_create_says_it_leaves_out_training_keys(capsys):
    net = zoo.create("iwae", dataset="mnist", epochs=3, k=5)
    assert net.config.k == 5
    assert "leaves out the training keys dataset, epochs (zoo.train('iwae', ...) takes them)" in capsys.readouterr().err


def test_create_with_a_seed_builds_the_same_weights_and_leaves_the_callers_generator_as_it_was(capsys):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = zoo.create("vae", seed=7, latent_dim=4)
    assert torch.equal(torch.get_rng_state(), before)  # the caller's stream is not drawn from
    b = zoo.create("vae", seed=7, latent_dim=4)
    c = zoo.create("vae", seed=8, latent_dim=4)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert not all(torch.equal(a.state_dict()[k], c.state_dict()[k]) for k in a.state_dict())
    assert "leaves out" not in capsys.readouterr().err  # seed is create's own, not a training key left out
    with pytest.raises(ConfigError, match="create: seed"):
        zoo.create("vae", seed=-1)


def test_a_misspelled_evaluation_option_is_named_as_python_spells_it_with_the_key_it_may_mean(vae_copy):
    said = r"option 'iwae_kk' \(--metric-option iwae_kk=VALUE\) does not apply"
    with pytest.raises(ConfigError, match=said) as caught:
        zoo.evaluate(vae_copy, options={"iwae_kk": 5}, limit=4)
    assert caught.value.hint == "Did you mean 'iwae_k'?"
    assert not (vae_copy / "eval.json").exists()


@pytest.mark.parametrize("call, hint", [
    (lambda run: zoo.compare([run], sort="test_mse"), "Write metric= (the command's --sort is metric= in Python)"),
    (lambda run: zoo.interpolate(run, from_=3, to=8), "Write start= (the command's --from is start= in Python)"),
    (lambda run: zoo.evaluate(run, iwae_k=5), "A metric's option goes in options=: zoo.evaluate(..., "
                                              "options={'iwae_k': ...})"),
    (lambda run: zoo.evaluate(run, limt=5), "Did you mean limit=?"),
    (lambda run: zoo.evaluate(run, fid=True), "zoo eval --fid is zoo.sample_quality(...) in Python."),
], ids=["compare-sort", "interpolate-from", "evaluate-iwae-k", "evaluate-misspelled", "evaluate-fid"])
def test_the_clis_spelling_of_a_setting_is_one_zoo_error_naming_the_keyword_python_takes(vae_copy, call, hint):
    with pytest.raises(ConfigError, match="unexpected keyword argument|missing a required argument") as caught:
        call(vae_copy)
    assert caught.value.hint == hint or caught.value.hint.startswith(hint)
    assert not (vae_copy / "eval.json").exists()


def test_a_sampler_is_fitted_on_the_data_dir_given_and_sample_quality_with_save_false_saves_none(tmp_path):
    write_idx_set(tmp_path / "data" / "mnist", n_train=128, n_test=100)
    result = zoo.sample_quality("convae-mnist", n=100, sampler="gaussian", data_dir=str(tmp_path / "data"),
                                save=False, progress=False)
    assert result["images"] == 100 and not list(tmp_path.glob("zoo-outputs/*/sampler-*"))
    out = assert_ok(invoke("generate", "convae-mnist", "--sampler", "gaussian", "--n", "4", "--data-dir",
                           tmp_path / "data", "--out", tmp_path / "g.png"))
    assert "fitted the gaussian sampler on 115 training codes" in out and (tmp_path / "g.png").is_file()
    # not the 54,000 codes the weights were trained on: used for this call, never kept as the model's sampler
    assert "holds 115 train images where it had 54,000" in out and "not saved: fitted on other images" in out
    assert not (tmp_path / "zoo-outputs" / "convae-mnist" / "sampler-gaussian.safetensors").exists()


def test_model_info_of_catalogued_weights_or_a_name_close_to_theirs_points_to_the_weights():
    with pytest.raises(zoo.ZooError, match="'iwae-mnist' names catalogued weights of model 'iwae', not a model") as e:
        zoo.model_info("iwae-mnist")
    assert "zoo.load('iwae-mnist')" in e.value.hint
    with pytest.raises(zoo.ZooError, match="unknown model 'piwae-mnst'") as e:
        zoo.model_info("piwae-mnst")
    assert "Catalogued weights of that name: piwae-mnist" in e.value.hint


def test_a_key_given_in_other_capitals_is_suggested_as_the_key():
    with pytest.raises(ConfigError, match="unknown key 'K'") as e:
        zoo.create("iwae", K=5)
    assert e.value.hint == "Did you mean: k?"


def test_the_analysis_commands_have_their_functions_on_zoo_itself(vae_copy, tmp_path):
    assert zoo.latent_scatter(vae_copy, n=50, method="pca", out=tmp_path / "l.png").png.is_file()
    assert zoo.manifold(vae_copy, steps=3, out=tmp_path / "m.png").png.is_file()
    assert zoo.interpolate(vae_copy, "#1", "#2", steps=3, out=tmp_path / "i.png").png.is_file()


def test_a_plugin_refusing_its_configuration_with_a_value_error_is_one_zoo_error(monkeypatch):
    from zoo.plugins.vae import VAE

    def refuse(self, config, shape, num_classes=10):
        raise ValueError("latent_dim must be even")

    monkeypatch.setattr(VAE, "__init__", refuse)
    with pytest.raises(ConfigError, match="model 'vae' refused its configuration: latent_dim must be even") as e:
        zoo.create("vae")
    assert "zoo.errors.ConfigError" in e.value.hint


def test_a_plugin_sampler_whose_state_holds_no_tensors_is_used_but_never_saved(vae_copy, tmp_path, monkeypatch):
    from zoo.plugins.samplers import Gaussian

    monkeypatch.setattr(Gaussian, "state", lambda self: {})
    out = assert_ok(invoke("generate", vae_copy, "--sampler", "gaussian", "--n", "4", "--out", tmp_path / "g.png"))
    assert "not saved: its state() gave no tensors" in out and (tmp_path / "g.png").is_file()
    assert not (vae_copy / "sampler-gaussian.safetensors").exists()


@pytest.mark.parametrize("wrong", ["more", "wider", "numpy"])
def test_a_plugin_sampler_returning_other_than_n_codes_is_named_and_nothing_is_written(vae_copy, tmp_path,
                                                                                        monkeypatch, wrong):
    """A picture titled "8 samples" showed 13; a tensor file failed in a traceback; a wrong width blamed decode."""
    from zoo.plugins.samplers import Gaussian

    real = Gaussian.sample
    changed = {"more": lambda self, n, generator=None: real(self, n + 5, generator),
               "wider": lambda self, n, generator=None: torch.zeros(n, self.dim + 3),
               "numpy": lambda self, n, generator=None: real(self, n, generator).numpy()}
    monkeypatch.setattr(Gaussian, "sample", changed[wrong])
    for out in (tmp_path / "g.png", tmp_path / "g.safetensors"):
        assert_clean_error(invoke("generate", vae_copy, "--sampler", "gaussian", "--n", "8", "--out", out),
                           "sampler 'gaussian' returned", "a fix for the sampler's author")
        assert not out.exists()


@pytest.mark.parametrize("wrong", ["tensor", "no loss key", "per image"])
def test_a_plugin_loss_of_the_wrong_form_is_named_as_the_plugins_fault(tmp_path, monkeypatch, wrong):
    """It ended in an IndexError deep in the training step, or in autograd's complaint about a non-scalar."""
    from zoo.errors import CapabilityError
    from zoo.plugins.convae import ConvAE

    real = ConvAE.loss
    changed = {"tensor": lambda self, batch: real(self, batch)["loss"],
               "no loss key": lambda self, batch: {"total": real(self, batch)["loss"]},
               "per image": lambda self, batch: {"loss": real(self, batch)["loss"].expand(batch.x.shape[0])}}
    monkeypatch.setattr(ConvAE, "loss", changed[wrong])
    with pytest.raises(CapabilityError, match="its loss\\(\\) gave .*, not a dict whose 'loss' is a scalar"):
        zoo.train("convae", dataset="digits", out=tmp_path / "r", log=quiet, progress=False, **{**TINY, "epochs": 1})


def test_results_print_in_a_few_lines_in_a_notebook_not_their_arrays(vae_copy, tmp_path):
    """A cell ending in a result printed about 1,200 lines: every coordinate, image tensor or module."""
    results = [zoo.latent_scatter(vae_copy, n=300, out=tmp_path / "l.png"),
               zoo.manifold(vae_copy, steps=5, out=tmp_path / "m.png"),
               zoo.interpolate(vae_copy, "0", "1", steps=5, out=tmp_path / "i.png"),
               zoo.train("convae", dataset="digits", out=tmp_path / "r", log=quiet, progress=False,
                         **{**TINY, "epochs": 1})]
    for result in results:
        assert len(repr(result)) < 800 and "tensor(" not in repr(result) and "array(" not in repr(result), result


def test_training_searching_and_loading_leave_the_callers_random_stream_as_it_was(tmp_path, vae_copy):
    """A user's own torch.manual_seed goes on as if zoo had not been called: a training seeds torch with the
    run's seed, and building a model draws its random initial weights, both inside."""
    from zoo.search.run import run_search

    def stream_after(call) -> torch.Tensor:
        torch.manual_seed(1234)
        torch.rand(2)
        call()
        return torch.rand(3)

    untouched = stream_after(lambda: None)
    space = tmp_path / "s.toml"
    space.write_text("[search]\ntrials = 1\n[fixed]\nepochs = 1\n[params]\nlr = { low = 1e-3, high = 1e-2 }\n")
    calls = {"train": lambda: zoo.train("convae", dataset="digits", out=tmp_path / "r", log=quiet, progress=False,
                                        **{**TINY, "epochs": 1}),
             "load": lambda: zoo.load(vae_copy),
             "load by name": lambda: zoo.load("vae-mnist"),
             "search": lambda: run_search("convae", space, out=tmp_path / "study", overrides={"dataset": "digits"},
                                          log=quiet)}
    for name, call in calls.items():
        assert torch.equal(stream_after(call), untouched), name


def test_a_search_with_workers_hands_every_trials_line_to_the_callers_log(tmp_path, capfd):
    """With workers=2 the trial lines went to the workers' own stdout, past the log= the caller gave."""
    space = tmp_path / "s.toml"
    space.write_text("[search]\ntrials = 2\n[params]\nlr = { low = 1e-3, high = 1e-2 }\n")
    said = []
    zoo.run_search("convae", space, dataset="digits", epochs=1, out=tmp_path / "study", log=said.append,
                   workers=2, **TINY)
    trials = [line for line in said if line.startswith("[worker ") and "trial " in line]
    assert len(trials) == 2, said
    assert "[worker " not in capfd.readouterr().out  # nothing printed past the log


def test_search_and_cross_validation_are_functions_of_zoo_taking_config_keys_as_zoo_train_does(tmp_path):
    space = tmp_path / "s.toml"
    space.write_text("[search]\ntrials = 1\n[params]\nlr = { low = 1e-3, high = 1e-2 }\n")
    summary = zoo.run_search("convae", space, dataset="digits", epochs=1, out=tmp_path / "study", log=quiet, **TINY)
    assert "epochs = 1" in (tmp_path / "study" / "best.toml").read_text().splitlines()
    assert summary["best"]["number"] == 0 and (tmp_path / "study" / "trials.csv").is_file()
    with pytest.raises(zoo.ZooError, match="unknown key 'datset'"):
        zoo.run_search("convae", space, datset="digits", out=tmp_path / "other")
    with pytest.raises(zoo.ZooError, match="run_search has no option 'prunner'") as e:
        zoo.run_search("convae", space, prunner="none", dataset="digits", out=tmp_path / "other")
    assert "Did you mean pruner=?" in str(e.value) and not (tmp_path / "other").exists()
    cv = zoo.cross_validate("convae", folds_k=2, dataset="digits", epochs=1, **TINY)
    assert cv["folds"] == 2 and len(cv["per_fold"]) == 2 and cv["train"]["epochs"] == 1
    assert {e["name"] for e in zoo.catalogue()} >= {"vae-mnist", "piwae-mnist"}


def test_a_search_leaves_optunas_log_level_and_the_warning_filters_as_they_were(tmp_path):
    import warnings

    import optuna

    from zoo.search.run import run_search

    space = tmp_path / "s.toml"
    space.write_text("[search]\ntrials = 1\n[fixed]\nepochs = 1\n[params]\nlr = { low = 1e-3, high = 1e-2 }\n")
    level, filters = optuna.logging.get_verbosity(), list(warnings.filters)
    run_search("convae", space, out=tmp_path / "study", overrides={"dataset": "digits"}, log=quiet)
    assert optuna.logging.get_verbosity() == level and list(warnings.filters) == filters


def test_a_run_its_user_put_in_training_mode_is_measured_and_sampled_as_trained_and_given_back_its_modes(tmp_path):
    """Batch norm in training mode would measure with each batch's statistics and change the running ones."""
    zoo.train("vae", dataset="digits", epochs=1, batch_norm=True, out=tmp_path / "run", log=quiet, progress=False,
              **TINY)
    reference = zoo.evaluate(tmp_path / "run", save=False, progress=False)["metrics"]
    expected = zoo.load(tmp_path / "run").sample(8, generator=torch.Generator().manual_seed(0))
    run = zoo.load(tmp_path / "run")
    run.model.train()
    first = next(run.model.children()).eval()  # a mode of the user's own, inside the model
    assert zoo.evaluate(run, save=False, progress=False)["metrics"] == pytest.approx(reference)
    assert torch.equal(run.sample(8, generator=torch.Generator().manual_seed(0)), expected)
    assert run.weights_changed() is None  # no running statistic moved
    assert run.model.training and not first.training


def test_ctrl_c_in_a_training_from_python_stops_the_caller_and_says_how_to_resume_from_python(tmp_path):
    """An `except zoo.ZooError` around a sweep's trainings must not swallow the user's stop."""
    from zoo.errors import Interrupted, ZooError
    from zoo.training.engine import Callback

    class CtrlC(Callback):
        def on_epoch_start(self, trainer, epoch):
            if epoch == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as stopped:
        try:
            zoo.train("convae", dataset="digits", epochs=3, out=tmp_path / "run", log=quiet, progress=False,
                      callbacks=[CtrlC()], **TINY)
        except ZooError:  # a sweep skipping what zoo refuses
            pytest.fail("the stop was taken for a refused configuration")
    assert isinstance(stopped.value, Interrupted) and not isinstance(stopped.value, ZooError)
    assert "epochs up to 1 are saved" in str(stopped.value)
    assert f"zoo.train(resume={str(tmp_path / 'run')!r})" in str(stopped.value)
    assert len(zoo.train(resume=tmp_path / "run", log=quiet, progress=False).history) == 3


def test_a_run_and_a_comparison_print_briefly_in_a_notebook(vae_copy, run_copy):
    """Their reprs held every layer, the whole config.json and each image's values (74,000 characters)."""
    run = zoo.load(vae_copy)
    assert len(repr(run)) < 300 and str(vae_copy) in repr(run)
    comparison = zoo.compare([vae_copy, run_copy])
    assert len(repr(comparison)) < 2_000 and "metric=" in repr(comparison)


def test_samples_from_python_are_zoo_generates_images_as_a_tensor(vae_copy, tmp_path):
    """A notebook draws a fitted sampler's samples without writing a file and reading it back."""
    from safetensors.torch import load_file

    for kind in ({}, {"sampler": "gmm"}, {"class_label": 3}):
        out = zoo.generate(vae_copy, n=6, seed=2, out=tmp_path / "g.safetensors", **kind)
        drawn = zoo.sample(vae_copy, n=6, seed=2, **kind)
        assert drawn.shape == (6, 1, 28, 28) and torch.equal(drawn, load_file(str(out))["images"]), kind
    assert not torch.equal(zoo.sample(vae_copy, n=6, seed=3), zoo.sample(vae_copy, n=6, seed=2))
    with pytest.raises(ConfigError, match="n"):
        zoo.sample(vae_copy, n=0)


def test_the_public_functions_pickle_as_a_process_pools_tasks():
    import pickle

    for name in ("evaluate", "compare", "generate", "load", "sample", "sample_quality", "train"):
        assert pickle.loads(pickle.dumps(getattr(zoo, name))) is getattr(zoo, name), name


def test_the_callers_matplotlib_backend_is_left_as_it_is_by_every_call_that_draws(tmp_path):
    """zoo switched pyplot to Agg: after a training, a cross-validation or a search, a notebook's inline plots
    were no longer shown. zoo draws on figures of its own, off-screen."""
    import matplotlib

    from conftest import tiny_space

    before = matplotlib.get_backend()
    matplotlib.use("pdf")  # a backend zoo would not pick, standing for a notebook's inline one
    try:
        zoo.train("convae", dataset="digits", epochs=1, out=tmp_path / "run", log=quiet, progress=False, **TINY)
        zoo.cross_validate("convae", folds_k=2, dataset="digits", overrides={**TINY, "epochs": 1}, out=tmp_path / "cv")
        (tmp_path / "space.toml").write_text(tiny_space(trials=1, epochs=1))
        zoo.run_search("convae", str(tmp_path / "space.toml"), out=tmp_path / "study", log=quiet)
        zoo.latent_scatter(tmp_path / "run", n=50)
        assert matplotlib.get_backend() == "pdf"
    finally:
        matplotlib.use(before)
    assert (tmp_path / "run" / "loss.png").is_file() and (tmp_path / "cv" / "cv.png").is_file()


@pytest.mark.parametrize("device, said", [("bogus", "unknown device 'bogus'"), ("", "an empty device names nothing"),
                                          (0, "a device is a name such as cpu or cuda, not 0")])
def test_a_device_that_names_nothing_here_is_refused_by_load_dataset_and_load_alike(device, said, digits_run):
    """load_dataset raised torch's RuntimeErrors; load took 0 (torch's cuda:0) and "" for auto, the CPU here."""
    for call in (lambda: zoo.load_dataset("digits", device=device), lambda: zoo.load(digits_run, device=device)):
        with pytest.raises(ConfigError, match=said):
            call()
    assert zoo.load_dataset("digits", device=None).train_x.device.type == "cpu"  # None: where it is, as before
    import torch  # a torch.device, as zoo.load takes one, is a device for training too (it was "not a valid str")
    assert zoo.resolve_config("vae", overrides={"device": torch.device("cpu")})[2].device == "cpu"
