"""A user's own presets and pretrained weights ($ZOO_CATALOG files) and a plugin's (the zoo_catalogs hook):
used as zoo's own are, and every mistake in such a file one message naming the file and the entry (an edited
catalogue ended in tracebacks, or a preset's values outside its `config` table trained the defaults)."""

from __future__ import annotations

import json
import shutil

import pytest

import zoo
from conftest import TINY_SET, assert_clean_error, assert_ok, invoke, read_config, run_zoo, with_pythonpath, \
    write_plugin
from zoo import catalog, registry

MY_PRESET = '''
[presets.my-ae]
model = "convae"
description = "a small code"
[presets.my-ae.config]
latent_dim = 3
lr = 0.005
'''


@pytest.fixture
def my_catalogue(tmp_path, monkeypatch):
    path = tmp_path / "my-catalogue.toml"
    monkeypatch.setenv("ZOO_CATALOG", str(path))

    def write(text: str):
        path.write_text(text)
        return path

    return write


def test_a_users_preset_trains_by_name_is_shown_and_is_recorded_in_the_run(my_catalogue, tmp_path):
    path = my_catalogue(MY_PRESET)
    shown = assert_ok(invoke("info", "my-ae"))
    assert "my-ae: a preset of model convae" in shown and "latent_dim=3, lr=0.005" in shown and str(path) in shown
    assert "my-ae" in zoo.model_info("convae")["presets"]
    assert zoo.create("convae", preset="my-ae").config.latent_dim == 3  # an untrained model from a preset

    run = tmp_path / "run"
    assert_ok(invoke("train", "--preset", "my-ae", "--dataset", "digits", "--epochs", "1", "--out", run, *TINY_SET))
    config = read_config(run)
    assert config["preset"] == "my-ae" and config["config"]["latent_dim"] == 3 and config["train"]["lr"] == 0.005
    assert "preset: my-ae" in assert_ok(invoke("info", run))
    assert "Started from the preset `my-ae`" in (run / "README.md").read_text()  # its model card says so too
    plain = tmp_path / "plain"
    assert_ok(invoke("train", "convae", "--dataset", "digits", "--epochs", "1", "--out", plain, *TINY_SET))
    assert "preset" not in read_config(plain)


@pytest.mark.parametrize("text, fragments", [
    ("[presets.p\nmodel = 1", ("cannot be read", "line 1")),  # a TOML error: the file and the line
    ('[presets.flat]\nmodel = "convae"\nlatent_dim = 3\n', ("[presets.flat] has the key 'latent_dim'",
                                                            "[presets.flat.config]")),  # trained the defaults
    ('[presets.p]\nmodel = "convae"\nconfig = 5\n', ("[presets.p] has config = 5, not a table",)),
    ('[presets.p]\nmodel = "convae"\n', ("[presets.p] has no config",)),
    ('[presets.vae]\nmodel = "vae"\n[presets.vae.config]\n', ("names a preset 'vae', the name of an installed model",)),
    ('[weights.w]\nmodel = "vae"\ndataset = "mnist"\n', ("[weights.w] has neither `path`",)),
    ('[weights.w]\nmodel = "vae"\ndataset = "mnist"\npath = "x"\nsha256 = "abc"\n', ("not 64 lowercase hex",)),
    ('[weights.w]\nmodel = "vae"\ndataset = "mnist"\nhub = "my-org/w"\n', ("hub = 'my-org/w', not a hub location",)),
    ('[weights.w]\nmodel = "vae"\ndataset = "mnist"\npath = "x"\n[weights.w.metrics]\nmse = "low"\n',
     ("the metric mse = 'low', not a finite number",)),
    ('[weights.w]\nmodel = "vae"\ndataset = "mnist"\npath = "x"\ndefault = true\n',
     ("two weights are the default of model 'vae'", "'vae-mnist'", "'w'")),  # both claimed to be what `vae` loads
    ('[model]\nlatent_dim = 3\n', ("has 'model' at its top level", "only [presets.NAME] and [weights.NAME]")),
])
def test_a_mistake_in_a_users_catalogue_is_one_message_naming_the_file_and_the_entry(my_catalogue, text, fragments):
    path = my_catalogue(text)
    for args in (("list", "--pretrained"), ("info", "vae"), ("train", "--preset", "vae-mnist", "--dataset", "digits")):
        said = assert_clean_error(invoke(*args), *fragments)
        assert str(path) in said and "take it out of $ZOO_CATALOG" in said, said


def test_a_relative_catalogue_stays_the_one_first_found_after_a_change_of_working_directory(
        my_catalogue, tmp_path, monkeypatch):
    my_catalogue(MY_PRESET)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ZOO_CATALOG", "my-catalogue.toml")
    assert "my-ae" in registry.presets()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # zoo.load(...) worked, then failed after an os.chdir
    assert "my-ae" in registry.presets()


def test_the_same_relative_catalogue_set_again_after_another_value_is_read_where_it_is_set_again(
        my_catalogue, tmp_path, monkeypatch):
    my_catalogue(MY_PRESET)  # tmp_path/my-catalogue.toml
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "my-catalogue.toml").write_text(MY_PRESET.replace("my-ae", "their-ae"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ZOO_CATALOG", "my-catalogue.toml")
    assert "my-ae" in registry.presets()
    monkeypatch.setenv("ZOO_CATALOG", "")
    assert "my-ae" not in registry.presets()
    monkeypatch.chdir(tmp_path / "other")
    monkeypatch.setenv("ZOO_CATALOG", "my-catalogue.toml")  # the same text, set again in another folder
    presets = registry.presets()
    assert "their-ae" in presets and "my-ae" not in presets


def test_weights_trained_on_a_folder_are_catalogued_by_the_folders_name(digits_run, tmp_path, monkeypatch):
    """config.json records folder:/home/alice/pics, which a shared catalogue cannot repeat."""
    run = shutil.copytree(digits_run, tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    config["data"]["name"] = config["train"]["dataset"] = "folder:/somewhere/alice/pics"
    (run / "config.json").write_text(json.dumps(config))
    path = tmp_path / "c.toml"
    path.write_text(f'[weights.pics]\nmodel = "convae"\ndataset = "folder:pics"\npath = "{run}"\n'
                    f'[weights.other]\nmodel = "convae"\ndataset = "folder:other"\npath = "{run}"\n')
    monkeypatch.setenv("ZOO_CATALOG", str(path))
    assert zoo.load("pics").folder == run
    with pytest.raises(zoo.errors.RunError, match="with dataset 'folder:other', but its config.json says"):
        zoo.load("other")


def test_a_catalogue_file_that_is_not_there_is_said(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CATALOG", f"{tmp_path / 'typo.toml'}")
    assert_clean_error(invoke("list", "--pretrained"), f"{tmp_path / 'typo.toml'} (in $ZOO_CATALOG) cannot be read")
    monkeypatch.setenv("ZOO_CATALOG", ":")  # empty parts name nothing
    assert_ok(invoke("list", "--pretrained"))


def test_a_wrong_value_in_a_preset_is_said_as_the_presets(my_catalogue, tmp_path):
    my_catalogue('[presets.bad]\nmodel = "convae"\n[presets.bad.config]\nlatent_dim = "six"\n'
                 '[presets.ghost]\nmodel = "nosuch"\n[presets.ghost.config]\n')
    said = assert_clean_error(invoke("train", "--preset", "bad", "--dataset", "digits", "--out", tmp_path / "r"),
                              "preset 'bad' (in ", "latent_dim='six' is not a valid int")
    assert "$ZOO_CATALOG" in said and not (tmp_path / "r").exists()
    assert_clean_error(invoke("train", "--preset", "ghost", "--dataset", "digits"),
                       "preset 'ghost' is for model 'nosuch', which is not installed")
    assert_clean_error(invoke("train", "convae", "--preset", "./mine.toml", "--dataset", "digits"),
                       "unknown preset './mine.toml'", "--config FILE")


def test_a_users_weights_entry_is_not_said_to_be_bundled_and_its_relative_path_is_from_its_file(
        digits_run, tmp_path, monkeypatch):
    shutil.copytree(digits_run, tmp_path / "cat" / "runs" / "mine")
    path = tmp_path / "cat" / "mine.toml"
    path.write_text('[weights.mine]\nmodel = "convae"\ndataset = "digits"\npath = "runs/mine"\n'
                    '[weights.mine.metrics]\nmse = 0.5\n')
    monkeypatch.setenv("ZOO_CATALOG", f"{tmp_path / 'empty.toml'}:{path}")  # two files, as PATH has them
    (tmp_path / "empty.toml").write_text("")
    info = assert_ok(invoke("info", "mine"))
    assert f"where: {tmp_path / 'cat' / 'runs' / 'mine'}" in info and "bundled" not in info
    assert zoo.load("mine").folder == tmp_path / "cat" / "runs" / "mine"
    assert registry.catalogued_metrics("mine") == {"mse": 0.5}


CATPLUG = '''\
from pathlib import Path

import zoo
from zoo.plugins.convae import ConvAE


class Named(ConvAE):
    name = "{model}"


@zoo.hookimpl
def zoo_models():
    return [Named]


@zoo.hookimpl
def zoo_catalogs():
    return [Path(__file__).with_name("catalog.toml")]
'''


def test_a_plugin_ships_its_presets_and_a_plugin_model_named_like_catalogued_weights_is_refused(tmp_path):
    root = write_plugin(tmp_path / "site", "catplug", "catplug", CATPLUG.format(model="plugae"))
    (root / "catplug" / "catalog.toml").write_text('[presets.plug-small]\nmodel = "plugae"\n'
                                                   '[presets.plug-small.config]\nlatent_dim = 2\n')
    env = with_pythonpath(root)
    shown = run_zoo("info", "plug-small", env=env)
    assert shown.returncode == 0 and "latent_dim=2" in shown.stdout and "of package catplug" in shown.stdout
    assert "plug-small" in json.loads(run_zoo("info", "plugae", "--json", env=env).stdout)["presets"]

    clash = write_plugin(tmp_path / "site2", "clashplug", "clashplug", CATPLUG.format(model="gan-mnist"))
    (clash / "clashplug" / "catalog.toml").write_text('[presets.vae-mnist]\nmodel = "vae"\n'
                                                      '[presets.vae-mnist.config]\n')
    listing = json.loads(run_zoo("list", "--json", env=with_pythonpath(clash)).stdout)
    assert "gan-mnist" not in [m["name"] for m in listing["models"]]  # zoo.load('gan-mnist') is the bundled GAN
    errors = " ".join(f["error"] for f in listing["failed"] if f["package"] == "clashplug")
    assert "named like pretrained weights" in errors and "'vae-mnist' is catalogued twice" in errors

    one = write_plugin(tmp_path / "site3", "oneplug", "oneplug", CATPLUG.format(model="oneae").replace(
        'return [Path(__file__).with_name("catalog.toml")]', 'return str(Path(__file__).with_name("catalog.toml"))'))
    listing = json.loads(run_zoo("list", "--json", env=with_pythonpath(one)).stdout)
    said = [f["error"] for f in listing["failed"] if f["package"] == "oneplug"]
    assert len(said) == 1 and "not a list" in said[0]  # one failure, not one for each letter of the path


def test_zoos_own_catalogue_passes_the_checks_a_users_file_gets():
    found = registry.read_catalog()
    assert len(found.presets) >= 9 and len(found.weights) >= 21
    assert all(found.file_of("weights", n).bundled for n in found.weights)
    assert all(catalog.check_entry(k, n, e) is None for k in ("presets", "weights") for n, e in
               getattr(found, k).items())
    assert catalog.check_entry("presets", "p", {"config": {}}).startswith("has no model")


def test_zoo_list_says_a_users_catalogue_that_every_other_command_refuses(my_catalogue):
    path = my_catalogue("[presets.p\nmodel = 1")  # a TOML error
    result = invoke("list")
    assert result.exit_code == 0 and "convae" in result.stdout  # the models are listed all the same
    assert "a catalogue failed:" in result.stderr and str(path) in result.stderr, result.stderr


def test_two_catalogues_of_the_users_that_clash_are_one_error_naming_both(tmp_path, monkeypatch):
    """Not the warning of a user's entry under zoo's or a plugin's ("a catalogue of yours cannot replace ..."):
    both files are the user's."""
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    for path in (a, b):
        path.write_text(MY_PRESET)
    monkeypatch.setenv("ZOO_CATALOG", f"{a}:{b}")
    said = assert_clean_error(invoke("info", "my-ae"), "'my-ae' is catalogued twice")
    assert str(a) in said and str(b) in said and "cannot replace an entry" not in said
