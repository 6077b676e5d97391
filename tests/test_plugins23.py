"""A hostile plugin author's report (plugin23): Config fields named like zoo's own arguments, a model named like
another package's catalogued weights, a validation_step giving per-image vectors, noise models without defaults or
of the wrong shape, a likelihood model's run.nll, training callbacks that raise. Each plugin here is a real package
written into tmp_path and registered as pip would leave it (conftest.write_plugin)."""

from __future__ import annotations

import dataclasses
import inspect
import json

import pytest

import zoo
from conftest import MLP_PLUGIN, assert_clean_error, failures_of, invoke
from zoo import registry
from zoo.console import quiet
from zoo.errors import CapabilityError
from zoo.runs.config import TrainConfig


@pytest.fixture
def plugin(plugin_installer):
    """install(package, model=..., extra=..., body=..., hooks=..., catalogue=TEXT): a plugin package written into
    tmp_path (its catalog.toml beside its module) and registered in this process; removed again after the test."""
    def install(package: str, *, model: str = "mlpae", extra: str = "", body: str = "", hooks: str = "",
                catalogue: str | None = None):
        plugin_installer(package, MLP_PLUGIN.format(model=model, extra=extra, body=body, hooks=hooks),
                         files=None if catalogue is None else {"catalog.toml": catalogue})

    return install


def train(model: str = "mlpae", out=None, **keys):
    return zoo.train(model, dataset="digits", epochs=1, out=out, log=quiet, progress=False, device="cpu", **keys)


# ---------------------------------------------------------------- §3 a Config field named like zoo's own arguments

def own_arguments() -> list[str]:
    """The keywords of zoo.train and zoo.create that are no config keys (nor training keys, which are noted)."""
    training = {f.name for f in dataclasses.fields(TrainConfig)}
    names = {name for f in (zoo.train, zoo.create) for name, p in inspect.signature(f).parameters.items()
             if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return sorted(names - training)


def test_a_config_field_named_like_an_argument_of_zoo_train_or_create_refuses_the_model_at_load(plugin, tmp_path):
    names = own_arguments()
    assert {"model", "init", "out", "config", "preset", "log", "name"} <= set(names)
    classes = "\n".join(f"class M{i}(MLPAE):\n    name = 'clash-{name}'\n\n    @dataclass\n    class Config:\n"
                        f"        {name}: str = 'a'\n" for i, name in enumerate(names))
    plugin("clashplug", hooks=classes + f"\n\n@zoo.hookimpl(specname='zoo_models')\ndef more():\n"
                                        f"    return [{', '.join(f'M{i}' for i in range(len(names)))}]\n")
    said = failures_of("clashplug")
    for name in names:
        assert f"clash-{name}" not in registry.list_models()
        assert any(f"model clash-{name}: " in e and f"has a field '{name}'" in e and "rename it" in e
                   for e in said), (name, said)
    assert "mlpae" in registry.list_models()  # the plugin's other model still works
    listed = invoke("list").output
    assert "from package clashplug" in listed and "has a field 'init', which is an argument of zoo.train" in listed


# ---------------------------------------------------------------- §7 a model named like another package's weights

CATALOGUE = '''\
[presets.aplug-small]
model = "aplug"
[presets.aplug-small.config]
latent_dim = 2

[weights.aplug-digits]
model = "aplug"
dataset = "digits"
hub = "file:///nowhere/aplug-digits"
'''


def test_a_model_named_like_another_packages_catalogued_weights_is_refused_and_that_catalogue_kept(plugin):
    catalogs = "\n\n@zoo.hookimpl\ndef zoo_catalogs():\n    return [Path(__file__).with_name('catalog.toml')]\n"
    plugin("aplug", model="aplug", hooks=catalogs, catalogue=CATALOGUE)
    plugin("bplug", model="aplug-digits")
    assert "aplug-small" in registry.presets() and "aplug-digits" in registry.weights()
    assert failures_of("aplug") == []
    assert "aplug-digits" not in registry.list_models() and "aplug" in registry.list_models()
    [said] = failures_of("bplug")
    assert "model 'aplug-digits' is named like pretrained weights in the catalogue" in said


def test_a_catalogue_naming_its_own_packages_model_is_still_that_packages_failure(plugin):
    catalogs = "\n\n@zoo.hookimpl\ndef zoo_catalogs():\n    return [Path(__file__).with_name('catalog.toml')]\n"
    plugin("selfplug", model="aplug-digits", hooks=catalogs, catalogue=CATALOGUE.replace('"aplug"', '"aplug-digits"'))
    [said] = failures_of("selfplug")
    assert "names a weights 'aplug-digits', the name of an installed model" in said
    assert "aplug-digits" in registry.list_models()


# ---------------------------------------------------------------- §4 a validation_step that is no dict of scalars

VECTOR_VALIDATION = '''
    def validation_step(self, batch):
        return {"loss": F.mse_loss(self.reconstruct(batch.x), batch.x, reduction="none").mean((1, 2, 3))}
'''


def test_a_validation_step_giving_per_image_losses_is_refused_naming_the_plugin_before_an_epoch_is_written(
        plugin, tmp_path):
    plugin("vecplug", body=VECTOR_VALIDATION)
    with pytest.raises(CapabilityError, match=r"model 'mlpae': its validation_step\(\) gave 'loss' of shape \(\d+,\)"
                                              r", not a dict of scalar tensors") as caught:
        train(out=tmp_path / "run")
    assert "a fix for the plugin's author" in caught.value.hint
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == ""  # no epoch recorded with a list as its loss


def test_a_loss_with_a_python_number_beside_the_loss_is_refused_naming_the_plugin(plugin, tmp_path):
    plugin("floatplug", body='''
    def loss(self, batch):
        return {"loss": F.mse_loss(self.reconstruct(batch.x), batch.x), "extra": 3.0}
''')
    result = invoke("train", "mlpae", "--dataset", "digits", "--epochs", "1", "--no-progress",
                    "--out", tmp_path / "run")
    assert_clean_error(result, "model 'mlpae': its loss() gave 'extra' = 3.0 (a float), not a dict of scalar tensors")


# ---------------------------------------------------------------- §8 noise models without defaults, of a wrong shape

NOISES = '''

class Blur(zoo.NoiseModel):
    name = "blur23"
    params = ("r",)

    def __call__(self, x, generator=None):
        return x


class Flat(zoo.NoiseModel):
    name = "flat23"
    params = ("p",)
    defaults = ({default},)

    def __call__(self, x, generator=None):
        return x.flatten(1)


@zoo.hookimpl
def zoo_noise_models():
    return [{classes}]
'''


@pytest.fixture
def mlp_run(plugin, tmp_path):
    """A finished 1-epoch run of the plugin's MLP autoencoder (installed with the noise models `plugin` is given)."""
    def make(**install):
        plugin("noiseplug", **install)
        return train(out=tmp_path / "run").run_dir
    return make


def test_a_noise_model_without_defaults_is_left_out_of_the_noise_sweep_with_a_note(mlp_run, capsys):
    run = mlp_run(hooks=NOISES.format(default=0.1, classes="Blur"))
    result = zoo.noise_sweep(run, noise="gaussian:0.2", factors=(1,), save=False)
    swept = [row["noise"] for row in result["rows"]]
    assert swept[0] == "gaussian:0.2" and len(swept) > 2 and not any(s.startswith("blur23") for s in swept)
    said = " ".join(result["notes"])
    assert "noise model 'blur23' (package noiseplug 0.1) has no level to sweep by default" in said
    assert "--noise blur23:VALUES sweeps it" in said and "blur23" in capsys.readouterr().err


def test_a_noise_model_giving_images_of_another_shape_is_blamed_not_the_users_images(mlp_run, tmp_path):
    run = mlp_run(hooks=NOISES.format(default=0.1, classes="Flat"))
    said = "noise model 'flat23' (noiseplug 0.1): its __call__() gave shape (4, 784) for images of shape (4, 1, 28, 28)"
    assert_clean_error(invoke("denoise", run, "--noise", "flat23:0.3", "--n", "4", "--out", tmp_path / "d.png"),
                       said, "report it to its author")
    swept = zoo.noise_sweep(run, noise="gaussian:0.2", factors=(1,), save=False)  # another noise's sweep goes on
    assert "flat23" not in {row["noise"].split(":")[0] for row in swept["rows"]}
    assert any("noise model 'flat23'" in note and "left out of the sweep" in note for note in swept["notes"])


# ---------------------------------------------------------------- §9 a training callback that raises or logs a float

CALLBACK = '''

class Boom(zoo.Callback):
    name = "boom23"
    params = ("w",)
    defaults = (1.0,)

    def __init__(self, w):
        self.w = w

    def on_epoch_end(self, trainer, epoch, record):
        if epoch == 2 and {raises}:
            raise RuntimeError("callback bug")

    def on_loss(self, trainer, step):
        step.logs["bad"] = {logged}


@zoo.hookimpl
def zoo_callbacks():
    return [Boom]
'''


def test_a_plugin_callback_that_raises_ends_in_one_error_naming_it_with_the_finished_epochs_kept(plugin, tmp_path):
    plugin("cbplug", hooks=CALLBACK.format(raises=True, logged="step.loss.detach()"))
    result = invoke("train", "mlpae", "--dataset", "digits", "--epochs", "3", "--no-progress", "--device", "cpu",
                    "--set", "train_callbacks=boom23", "--out", tmp_path / "run")
    assert_clean_error(result, "training callback 'boom23' (package cbplug 0.1): its on_epoch_end() raised "
                               "RuntimeError: callback bug", f"Epochs up to 2 are saved in {tmp_path / 'run'}")
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()  # on_epoch_end follows the epoch's saving
    assert len(rows) == 2 and zoo.load(tmp_path / "run").record["model"] == "mlpae"


def test_a_plugin_callback_logging_a_python_number_is_named_as_the_callbacks_mistake(plugin, tmp_path):
    plugin("cbplug", hooks=CALLBACK.format(raises=False, logged="1.0"))
    with pytest.raises(CapabilityError, match=r"training callback 'boom23' \(package cbplug 0.1\): its on_loss\(\) "
                                              r"logged 'bad' = 1.0 \(a float\), not a scalar tensor"):
        train(out=tmp_path / "run", train_callbacks=["boom23"])


# ---------------------------------------------------------------- §2 run.nll and the optional iwae_nll

def test_run_nll_of_a_model_without_iwae_nll_names_the_method_and_the_installed_models_having_it(plugin, tmp_path):
    plugin("nllplug")
    run = zoo.load(train(out=tmp_path / "run").run_dir)
    x, _ = run.data("test")
    with pytest.raises(CapabilityError, match=r"its plugin implements no iwae_nll\(x, k, y\)") as caught:
        run.nll(x[:2], k=2)
    assert "vae" in caught.value.hint and "mlpae" not in caught.value.hint


def test_a_plugin_model_with_iwae_nll_is_estimated_by_run_nll(plugin, tmp_path):
    plugin("nllplug", body='''
    def iwae_nll(self, x, k, y=None):
        return torch.full((x.shape[0],), float(k))
''')
    run = zoo.load(train(out=tmp_path / "run").run_dir)
    x, _ = run.data("test")
    assert run.nll(x[:3], k=7).tolist() == [7.0, 7.0, 7.0]


def test_the_plugin_docs_name_iwae_nll_and_the_config_field_names_zoo_keeps():
    from conftest import REPO
    text = (REPO / "docs" / "plugins.md").read_text()
    assert "`iwae_nll(x, k, y=None)`" in text and "run.nll" in text
    assert all(f"`{name}`" in text for name in own_arguments())


# ---------------------------------------------------------------- §10 a typo in loss_keys

def test_a_loss_keys_entry_naming_no_config_field_refuses_the_model_at_load(plugin):
    plugin("typoplug", body='    loss_keys = {"latent_dimm": ("loss",)}\n')
    [said] = failures_of("typoplug")
    assert "MLPAE.loss_keys names latent_dimm, not a field of its Config (latent_dim)" in said
    assert "mlpae" not in registry.list_models()


# ---------------------------------------------------------------- §1 a plugin's own metrics option on the command line

def test_zoo_eval_passes_a_plugins_own_metrics_option_with_metric_option(plugin, tmp_path):
    plugin("optplug", body='''
    def metrics(self, batch, samples=1, **options):
        return {"samples": torch.full((batch.x.shape[0],), float(samples))}
''')
    run = train(out=tmp_path / "run").run_dir
    result = invoke("eval", run, "--metric-option", "samples=3", "--json", "--no-progress")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["metrics"]["samples"] == 3.0
    assert_clean_error(invoke("eval", run, "--metric-option", "bogus=1"), "option 'bogus' (--metric-option "
                       "bogus=VALUE) does not apply to model 'mlpae'", "Its metrics take: samples")
    assert_clean_error(invoke("eval", run, "--metric-option", "samples"), "--metric-option takes KEY=VALUE")
    assert_clean_error(invoke("eval", run, "--metric-option", "sam-ples=3"), "option 'sam_ples'")  # - as _
    assert_clean_error(invoke("eval", run, "--iwae-k", "2", "--metric-option", "iwae_k=3"),
                       "--iwae-k and --metric-option iwae_k=... both give the bound's K", code=2)


# ---------------------------------------------------------------- §10b a plugin's evaluation_report, said by zoo eval

REPORT = '''
    def evaluation_report(self, x, y, run, out_dir):
        return {"pixels_on": float((x > 127).float().mean()), "images": int(x.shape[0])}
'''


def test_zoo_eval_names_a_plugins_evaluation_report_and_where_it_is(plugin, tmp_path):
    """It was written into eval.json only: zoo eval printed nothing of it."""
    plugin("reportplug", body=REPORT)
    run = train(out=tmp_path / "run").run_dir
    result = invoke("eval", run)
    assert result.exit_code == 0, result.output
    assert "the model's report (pixels_on, images): eval.json's \"report\", or --json" in result.output
    assert json.loads((run / "eval.json").read_text())["report"]["images"] == 359


def test_a_plugin_callback_with_params_and_no_init_taking_them_is_refused_when_the_plugin_loads(plugin):
    """It loaded, and a training asking for it ended in a raw TypeError from Callback.from_config."""
    source = CALLBACK.format(raises=False, logged="step.loss.detach()").replace(
        "    def __init__(self, w):\n        self.w = w\n", "")
    plugin("cbplug2", hooks=source)
    assert "boom23" not in registry.load_registry().callbacks
    assert any("Boom has params (w)" in e and "define __init__(self, w)" in e for e in failures_of("cbplug2"))
