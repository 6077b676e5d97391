"""A plugin author's report (plugin20): a Config field zoo cannot read back, a monitor never logged, catalogues
read after training, writes into a plugin's package, tracebacks and messages that hid a plugin's failure. Each
plugin here is a real package written into tmp_path and registered as pip would leave it (conftest.write_plugin)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import zoo
from conftest import MLP_PLUGIN, TINY, assert_clean_error, assert_ok, failures_of, invoke
from zoo import registry
from zoo.console import quiet
from zoo.errors import CapabilityError, ConfigError, RunError, UnknownModelError

CATALOGS = '''

@zoo.hookimpl
def {catalogs_hook}():
    return {catalogs}
'''


@pytest.fixture
def plugin(plugin_installer):
    """install(package, extra=..., body=..., catalogs=..., catalogue=TEXT): a plugin package written into tmp_path
    and registered in this process (its catalog.toml beside its module); removed again after the test."""
    def install(package: str, *, model: str = "mlpae", extra: str = "", body: str = "", version: str = "0.1",
                catalogs: str = '[Path(__file__).with_name("catalog.toml")]', catalogue: str = "",
                catalogs_hook: str = "zoo_catalogs") -> Path:
        hooks = CATALOGS.format(catalogs_hook=catalogs_hook, catalogs=catalogs)
        return plugin_installer(package, MLP_PLUGIN.format(model=model, extra=extra, body=body, hooks=hooks),
                                version=version, files={"catalog.toml": catalogue})

    return install


# ---------------------------------------------------------------- 1. a Config zoo cannot read back

@pytest.mark.parametrize("field, kind", [
    ('act: typing.Literal["relu", "tanh"] = "relu"', "Literal"),
    ("kernel: tuple = (3, 3)", "tuple"),
    ("extra: dict = None", "dict"),
    ('where: Path = Path("/tmp")', "Path"),
    ("grid: list[list[int]] = zoo.param([[1]], 'nested')", "list[list[int]]"),
])
def test_a_config_field_zoo_cannot_read_back_refuses_the_model_when_the_plugin_loads(plugin, field, kind):
    plugin("oddplug", extra=f"    {field}\n")
    said = " ".join(failures_of("oddplug"))
    assert "mlpae" not in registry.list_models()
    name = field.split(":")[0]
    assert f"field '{name}' is of type {kind}" in said and "zoo supports bool, int, float, str" in said, said
    with pytest.raises(UnknownModelError, match="`zoo list` says why: 'oddplug' \\(oddplug\\)"):
        zoo.train("mlpae", dataset="digits", epochs=1, out="never", log=quiet, progress=False, device="cpu")
    assert not Path("never").exists()


def test_config_field_types_zoo_reads_back_load_and_round_trip(plugin, tmp_path):
    plugin("fineplug", extra="    kernel: tuple[int, int] = (3, 3)\n    scale: float | None = None\n"
                             "    widths: list[float] = zoo.param([1.0], 'widths')\n")
    assert failures_of("fineplug") == [] and "mlpae" in registry.list_models()
    result = zoo.train("mlpae", dataset="digits", epochs=1, out=tmp_path / "run", log=quiet, progress=False,
                       device="cpu")
    assert zoo.load(result.run_dir).model.config.kernel == [3, 3]


# ---------------------------------------------------------------- 2. a monitor the model never logs

def test_a_monitor_the_model_never_logs_is_refused_at_the_first_epoch_naming_the_keys_it_logs(plugin, tmp_path):
    plugin("monplug", body='    monitor = "elbo"\n')
    with pytest.raises(ConfigError, match=r"monitor 'elbo' is not among the validation keys it logs \(loss\)"):
        zoo.train("mlpae", dataset="digits", epochs=3, patience=1, out=tmp_path / "run", log=quiet, progress=False,
                  device="cpu")
    rows = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert rows == ""  # no epoch was kept as "best" by a key never logged


# ---------------------------------------------------------------- 3. catalogues read before training

def test_a_broken_user_catalogue_is_said_before_training_writes_anything(tmp_path, monkeypatch):
    broken = tmp_path / "broken.toml"
    broken.write_text("[weights.x\nmodel=")
    monkeypatch.setenv("ZOO_CATALOG", str(broken))
    with pytest.raises(ConfigError, match="cannot be read"):
        zoo.train("vae", dataset="digits", epochs=1, out=tmp_path / "vy", log=quiet, progress=False, **TINY)
    assert not (tmp_path / "vy").exists()


# ---------------------------------------------------------------- 4 and 17. a plugin's shipped weights

def _ship(package_dir: Path, run: Path, name: str) -> Path:
    folder = package_dir / "weights" / name
    shutil.copytree(run, folder)
    (package_dir / "catalog.toml").write_text(f'[weights.{name}]\nmodel = "convae"\ndataset = "digits"\n'
                                              f'path = "weights/{name}"\n')
    registry.load_registry(refresh=True)
    return folder


def test_zoo_eval_of_a_plugins_weights_folder_by_its_path_writes_nothing_into_the_package(plugin, digits_run,
                                                                                          tmp_path):
    folder = _ship(plugin("shipplug"), digits_run, "ship-w")
    before = sorted(p.name for p in folder.iterdir())
    said = assert_ok(invoke("eval", folder, "--limit", "10"))
    assert "shipped by a plugin" in said and sorted(p.name for p in folder.iterdir()) == before
    assert (tmp_path / "zoo-outputs" / "ship-w" / "eval.json").is_file()


def test_the_authors_own_runs_beside_a_plugins_catalogue_file_are_theirs_to_resume_and_evaluate_in_place(
        plugin, digits_run, tmp_path, monkeypatch):
    package = plugin("devplug")  # a plugin in development: its catalogue beside the author's work
    _ship(package, digits_run, "dev-w")
    run = package / "runs" / "mine"
    shutil.copytree(digits_run, run)
    monkeypatch.chdir(package)
    assert_ok(invoke("eval", "runs/mine", "--limit", "10"))
    assert (run / "eval.json").is_file() and not (package / "zoo-outputs").exists()
    assert_ok(invoke("train", "--resume", "runs/mine", "--epochs", "2", "--no-progress"))


def test_a_stale_sampler_in_the_outputs_folder_of_upgraded_catalogued_weights_is_fitted_again(plugin, digits_run,
                                                                                              tmp_path):
    package = plugin("upplug")
    folder = _ship(package, digits_run, "up-w")
    assert_ok(invoke("generate", "up-w", "--sampler", "gaussian", "--n", "4", "--out", "a.png"))
    assert (tmp_path / "zoo-outputs" / "up-w" / "sampler-gaussian.safetensors").is_file()
    config = json.loads((folder / "config.json").read_text())  # the plugin's next version: other weights
    config["run_id"] = "another-run"
    (folder / "config.json").write_text(json.dumps(config))
    said = assert_ok(invoke("generate", "up-w", "--sampler", "gaussian", "--n", "4", "--out", "b.png"))
    assert "fitted on another run's codes" in said and "fitted the gaussian sampler" in said
    assert not list(folder.glob("sampler-*"))


# ---------------------------------------------------------------- 5, 6, 12, 13: what a catalogue hook returns

def test_a_catalogue_path_with_a_nul_byte_is_that_plugins_failure_not_a_traceback(plugin):
    plugin("nulplug", catalogs='["/tmp/a\\x00b.toml"]')
    assert "embedded null byte" in " ".join(failures_of("nulplug"))
    assert "vae" in zoo.list_models() and "mlpae" in zoo.list_models()
    assert_ok(invoke("list"))


def test_a_preset_holding_a_toml_date_is_refused_naming_the_entry(tmp_path, monkeypatch):
    path = tmp_path / "date.toml"
    path.write_text('[presets.p-date]\nmodel = "vae"\n[presets.p-date.config]\nhidden = 1979-05-27\n')
    monkeypatch.setenv("ZOO_CATALOG", str(path))
    assert_clean_error(invoke("info", "p-date"), "[presets.p-date] has hidden = 1979-05-27", "a TOML date")


def test_a_misspelt_hook_is_reported_as_that_plugins_failure(plugin):
    plugin("typoplug", catalogs_hook="zoo_catalog")
    said = [f for f in registry.load_registry().failures if f.package == "typoplug"]
    assert len(said) == 1 and said[0].partial and "mlpae" in zoo.list_models()
    assert "unknown hook 'zoo_catalog'" in said[0].error and "zoo_catalogs" in said[0].error


def test_a_relative_file_hub_in_a_plugins_catalogue_is_read_from_the_catalogues_folder(plugin, tmp_path):
    package = plugin("hubplug", catalogue='[weights.hub-rel]\nmodel = "convae"\ndataset = "digits"\n'
                                          'hub = "file://hub/hub-rel"\n')
    assert registry.weights()["hub-rel"]["hub"] == (package / "hub" / "hub-rel").as_uri()


def test_the_same_catalogue_file_returned_twice_is_read_once(plugin):
    plugin("twiceplug", catalogs='[Path(__file__).with_name("catalog.toml")] * 2',
           catalogue='[presets.twice]\nmodel = "mlpae"\n[presets.twice.config]\n')
    assert failures_of("twiceplug") == [] and "twice" in registry.presets()


# ---------------------------------------------------------------- 7, 11: loading a plugin's run

def _as_plugin_run(run: Path, model: str, package: str, version: str, **config) -> Path:
    record = json.loads((run / "config.json").read_text())
    record["model"], record["plugin"] = model, {"name": model, "package": package, "version": version}
    record["config"].update(config)
    (run / "config.json").write_text(json.dumps(record))
    return run


def test_a_run_whose_plugin_is_installed_but_broken_says_so_not_install_it(run_copy, brokenplug_installed):
    _as_plugin_run(run_copy, "ghostae", "brokenplug", "0.1")
    with pytest.raises(RunError, match="of package brokenplug, which is installed but failed to load: ImportError"):
        zoo.load(run_copy)


def test_a_run_of_another_version_of_its_plugin_is_said_with_both_versions(plugin, run_copy):
    plugin("verplug", model="verae", version="0.2")
    _as_plugin_run(run_copy, "verae", "verplug", "0.1", hidden=[16])
    with pytest.raises(RunError) as e:
        zoo.load(run_copy)
    assert "made with verplug 0.1, and verplug 0.2 is installed" in e.value.hint
    assert "pip install 'verplug==0.1'" in e.value.hint


# ---------------------------------------------------------------- 8: a user's entry clashing with another's

def test_a_clash_in_a_users_catalogue_is_a_warning_and_breaks_no_other_command(tmp_path, monkeypatch, run_copy):
    path = tmp_path / "mine.toml"
    path.write_text('[presets.vae-mnist]\nmodel = "vae"\n[presets.vae-mnist.config]\nlatent_dim = 3\n'
                    '[presets.mine]\nmodel = "vae"\n[presets.mine.config]\nlatent_dim = 3\n')
    monkeypatch.setenv("ZOO_CATALOG", str(path))
    said = assert_ok(invoke("info", "vae"))
    assert f"warning: {path} (in $ZOO_CATALOG) catalogues the preset 'vae-mnist'" in said and "yours is ignored" in said
    assert "mine" in registry.presets() and registry.catalog_file("presets", "vae-mnist").bundled
    assert_ok(invoke("info", run_copy))


# ---------------------------------------------------------------- 9: catalogued figures in zoo compare

def test_zoo_compare_marks_a_catalogues_figures_as_quoted_not_measured(tmp_path, monkeypatch, run_copy):
    path = tmp_path / "mine.toml"
    path.write_text(f'[weights.mine]\nmodel = "convae"\ndataset = "digits"\npath = "{run_copy}"\n'
                    '[weights.mine.metrics]\nmse = 0.05\n')
    monkeypatch.setenv("ZOO_CATALOG", str(path))
    said = assert_ok(invoke("compare", "mine", run_copy))
    assert f"test mse quoted by the catalogue ({path} (in $ZOO_CATALOG)), not measured here" in said


# ---------------------------------------------------------------- 10: a preset of another package's model

def test_a_plugins_preset_does_not_apply_to_another_packages_model(plugin):
    plugin("presplug", catalogue='[presets.mlp-small]\nmodel = "mlpae"\n[presets.mlp-small.config]\nlatent_dim = 2\n')
    with pytest.raises(ConfigError, match="preset 'mlp-small' is for model 'mlpae', not 'vae'"):
        zoo.create("vae", preset="mlp-small")
    assert "mlp-small" not in zoo.model_info("vae")["presets_that_fit"]
    assert zoo.create("mlpae", preset="mlp-small").config.latent_dim == 2
    assert "vae-mnist" in zoo.model_info("iwae")["presets_that_fit"]  # zoo's own models still share zoo's presets


# ---------------------------------------------------------------- 14: finetune of an MLP encoder

def test_finetune_of_a_plugin_mlp_encoder_says_the_classifier_needs_a_conv_encoder(plugin, tmp_path):
    encoder = "\n    @property\n    def encoder(self):  # an MLP encoder, by the name zoo's conv models use\n"
    plugin("ftplug", body=encoder + "        return nn.Sequential(nn.Flatten(), self.enc)\n")
    run = zoo.train("mlpae", dataset="digits", epochs=1, out=tmp_path / "run", log=quiet, progress=False,
                    device="cpu").run_dir
    with pytest.raises(CapabilityError, match="its encoder has no conv layers"):
        zoo.finetune(run, epochs=1, out=tmp_path / "ft", log=quiet, progress=False)
    assert not (tmp_path / "ft").exists()


# ---------------------------------------------------------------- 15: messages that hid a plugin's part

def test_a_plugins_bad_train_defaults_are_said_as_the_plugins(plugin):
    plugin("tdplug", body='    train_defaults = {"epohcs": 3}\n')
    with pytest.raises(ConfigError, match="mlpae's train_defaults \\(in its plugin, package tdplug\\)") as e:
        zoo.create("mlpae")
    assert "Did you mean: epochs?" in e.value.hint and "plugin's author" in e.value.hint


def test_a_bad_preset_value_hint_is_a_sentence_before_the_fix(plugin):
    plugin("hintplug", catalogue='[presets.big]\nmodel = "mlpae"\n[presets.big.config]\nlatent_dim = 100\n')
    with pytest.raises(ConfigError) as e:
        zoo.create("mlpae", preset="big")
    assert e.value.hint == "latent_dim must be 1 .. 64. Reinstall or fix hintplug."


def test_weights_given_as_a_preset_are_said_to_be_weights():
    with pytest.raises(ConfigError, match="unknown preset 'gan-mnist': it names catalogued weights of model 'gan'"):
        zoo.create("gan", preset="gan-mnist")


def test_an_unknown_name_hints_at_a_plugin_whose_catalogue_failed(plugin):
    plugin("rawplug", catalogs="1 / 0")
    with pytest.raises(RunError) as e:
        zoo.load("rawplug-weights")
    assert "'rawplug' (rawplug)" in e.value.hint and "`zoo list` says why" in e.value.hint


# ---------------------------------------------------------------- 16: the docs

def test_the_plugin_docs_say_how_a_package_ships_its_catalogue():
    docs = (Path(__file__).parents[1] / "docs" / "plugins.md").read_text()
    assert "[tool.setuptools.package-data]" in docs and "importlib.resources" in docs


def test_a_catalogued_cards_figures_are_said_to_be_quoted_by_its_catalogue_not_by_registry_toml():
    """A plugin's or a user's catalogued weights got a card saying their figures came "from registry.toml"."""
    from zoo.runs.modelcard import render_card

    run = json.loads((Path(zoo.__file__).parent / "weights" / "vae-mnist" / "config.json").read_text())
    card = render_card(run, None, [], "my-vae", catalogued={"neg_elbo_nats": 99.5})
    assert "quoted by the catalogue entry of these weights" in card and "from registry.toml" not in card
