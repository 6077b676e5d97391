"""A plugin never vanishes without a word (issue 12): an entry point whose module provides no class is
listed as a problem with where that module came from, for instance an empty folder named like the plugin's
package in the working directory, which hides an editable install."""

from __future__ import annotations

import json
import os
import site
import sysconfig
from pathlib import Path

import pytest
from conftest import TINYPLUG, _install_in_process, assert_clean_error, assert_ok, invoke, run_zoo, write_plugin

import zoo

NO_HOOKS = '''\
"""A module that lost its plugin: no @zoo.hookimpl function."""
VERSION = "0.1"
'''

EMPTY_HOOKS = '''\
import zoo


@zoo.hookimpl
def zoo_models():
    return []
'''


@pytest.fixture(params=[(NO_HOOKS, "has no @zoo.hookimpl function (zoo_models, zoo_noise_models, zoo_samplers, "
                                   "zoo_callbacks, zoo_loggers or zoo_catalogs)"),
                        (EMPTY_HOOKS, "returned no classes")], ids=["no-hooks", "empty-hooks"])
def emptyplug(request, tmp_path):
    """A plugin package whose entry point provides nothing, installed in this process; yields (its module's
    file, what the report says is wrong)."""
    source, why = request.param
    root = write_plugin(tmp_path / "site", "emptyplug", "emptyae", source)
    for _ in _install_in_process(root, "emptyplug"):
        yield str(root / "emptyplug" / "__init__.py"), why


def test_an_entry_point_that_provides_nothing_is_reported_with_its_file(emptyplug, tmp_path):
    module_file, why = emptyplug
    [failure] = zoo.list_plugins()["failed"]
    assert (failure["entry_point"], failure["package"]) == ("emptyae", "emptyplug")
    assert failure["error"].startswith("provides nothing: ")
    assert f"module emptyplug ({module_file})" in failure["error"] and why in failure["error"]

    listed = invoke("list")
    assert "plugin 'emptyae' from package emptyplug failed to load: provides nothing" in listed.output
    assert module_file in listed.output

    assert_clean_error(invoke("train", "emptyae", "--dataset", "digits", "--out", tmp_path / "run"),
                       "model 'emptyae' is installed (package emptyplug) but failed to load: provides nothing",
                       module_file)
    out = assert_clean_error(invoke("train", "emptyplug", "--dataset", "digits", "--out", tmp_path / "run"),
                             "unknown model 'emptyplug'")
    assert ("These plugins failed to load, or zoo refused a part of them, and `zoo list` says why: 'emptyae' "
            "(emptyplug)") in out
    assert not (tmp_path / "run").exists()


EDITABLE_FINDER = '''\
"""What `pip install -e` of a flat-layout package leaves in site-packages (setuptools' editable finder):
the package is found by a finder that runs after Python's path finder."""
import sys
from importlib.util import spec_from_file_location

SOURCE = {source!r}


class _EditableFinder:
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname != "tinyplug":
            return None
        return spec_from_file_location(fullname, SOURCE + "/__init__.py", submodule_search_locations=[SOURCE])


def install():
    sys.meta_path.append(_EditableFinder)
'''


def _editable_user_install(tmp_path: Path) -> dict[str, str]:
    """tinyplug installed the way `pip install --user -e .` would: its source in a project folder; a
    .dist-info with the entry point, a .pth and the finder in the user site-packages. Returns the environment
    that makes that the user site."""
    project = tmp_path / "project" / "tinyplug"
    project.mkdir(parents=True)
    (project / "__init__.py").write_text(TINYPLUG)
    userbase = tmp_path / "userbase"
    user_site = Path(sysconfig.get_path("purelib", sysconfig.get_preferred_scheme("user"),
                                        vars={"userbase": str(userbase)}))
    user_site.mkdir(parents=True)
    info = user_site / "tinyplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tinyplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[zoo.models]\ntinyae = tinyplug\n")
    (user_site / "__editable___tinyplug_0_1_finder.py").write_text(EDITABLE_FINDER.format(source=str(project)))
    (user_site / "__editable__.tinyplug-0.1.pth").write_text(
        "import __editable___tinyplug_0_1_finder; __editable___tinyplug_0_1_finder.install()\n")
    return {"PYTHONUSERBASE": str(userbase)}


@pytest.mark.skipif(not site.ENABLE_USER_SITE or os.environ.get("PYTHONNOUSERSITE"),
                    reason="this Python reads no user site-packages, where the editable install goes")
def test_an_empty_folder_that_hides_an_installed_plugin_is_named(tmp_path):
    env = _editable_user_install(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    listed = json.loads(assert_ok(run_zoo("list", "--json", env=env, cwd=elsewhere)))
    assert "tinyae" in [m["name"] for m in listed["models"]] and listed["failed"] == []

    work = tmp_path / "work"
    (work / "tinyplug").mkdir(parents=True)  # e.g. a folder of outputs, named like the plugin's package
    hidden = run_zoo("list", env=env, cwd=work)
    assert hidden.returncode == 0, hidden.stderr
    assert "tinyae" not in hidden.stdout
    message = (f"plugin 'tinyae' from package tinyplug failed to load: provides nothing: tinyplug is a namespace "
               f"package with no file (folder {work / 'tinyplug'}); a folder of that name found first on the import "
               "path, often in the working directory, hides the installed package")
    assert message in hidden.stderr

    assert_clean_error(run_zoo("train", "tinyae", "--dataset", "digits", "--out", work / "run", env=env, cwd=work),
                       "model 'tinyae' is installed (package tinyplug) but failed to load: provides nothing",
                       f"folder {work / 'tinyplug'}")


OLDPATHS = '''\
"""A noise plugin written against zoo 0.1, which had zoo/noise.py."""
import zoo
from zoo.noise import NoiseModel


class Speckle(NoiseModel):
    name = "speckle"


@zoo.hookimpl
def zoo_noise_models():
    return [Speckle]
'''


def test_a_plugin_importing_a_module_that_moved_is_told_where_it_went(tmp_path):
    root = write_plugin(tmp_path / "site", "oldplug", "speckle", OLDPATHS)
    for _ in _install_in_process(root, "oldplug"):
        [failure] = zoo.list_plugins()["failed"]
        assert failure["package"] == "oldplug"
        assert failure["error"].startswith("ModuleNotFoundError: No module named 'zoo.noise'")
        assert "zoo moved zoo.noise to zoo.data.noise" in failure["error"]
        assert "from zoo import ZooModel, Callback, Logger, NoiseModel, LatentSampler" in failure["error"]
        listed = invoke("list")
        assert "plugin 'speckle' from package oldplug failed to load" in listed.output
        assert "zoo moved zoo.noise to zoo.data.noise" in listed.output
    fixed = write_plugin(tmp_path / "site2", "newplug", "speckle", OLDPATHS.replace(
        "from zoo.noise import NoiseModel", "from zoo import NoiseModel"))
    for _ in _install_in_process(fixed, "newplug"):  # the change the message asks for is enough
        plugins = zoo.list_plugins()
        assert not plugins["failed"] and "speckle" in [n["name"] for n in plugins["noise_models"]]


def test_a_plugin_model_whose_hyperparameters_repeat_training_keys_is_said_where_its_author_and_users_look(tmp_path):
    source = TINYPLUG.replace('    latent_dim: int = zoo.param(3, "size of the code", low=1, high=64)\n',
                              '    latent_dim: int = zoo.param(3, "size of the code", low=1, high=64)\n'
                              '    lr: float = zoo.param(0.5, "a learning rate of its own", low=0.0, high=1.0)\n')
    root = write_plugin(tmp_path / "site", "clashplug", "tinyae", source)
    said = "model 'tinyae' has hyperparameters named like training keys (lr): one --set sets both"
    for _ in _install_in_process(root, "clashplug"):
        assert said in invoke("list").output
        assert said in invoke("info", "tinyae").output
        assert said in assert_ok(invoke("train", "tinyae", "--dataset", "digits", "--epochs", "1", "--no-progress",
                                        "--out", tmp_path / "run"))
        assert zoo.model_info("tinyae")["clash"].startswith(said)
        assert all(r["clash"] is None for r in zoo.list_plugins()["models"] if r["name"] != "tinyae")


BROKEN_CLASSES = '''\
import dataclasses

import torch
import zoo


class NoConfig(zoo.ZooModel):
    name = "noconfig"

    def loss(self, batch):
        return {"loss": torch.zeros(())}


class NoDefault(NoConfig):
    name = "nodefault"

    @dataclasses.dataclass
    class Config:
        latent_dim: int


class NoLoss(zoo.ZooModel):
    name = "noloss"

    @dataclasses.dataclass
    class Config:
        latent_dim: int = 2


class NotAModel(torch.nn.Module):
    name = "notamodel"
    Config = NoLoss.Config


class Spaced(NoConfig):
    name = "two words"
    Config = NoLoss.Config


@zoo.hookimpl
def zoo_models():
    return [NoConfig, NoDefault, NoLoss, NotAModel, NoLoss.Config(), Spaced]
'''


def test_model_classes_that_cannot_work_are_each_a_failure_zoo_list_names_and_the_rest_still_work(tmp_path):
    """A class without a dataclass Config broke `zoo list` for every plugin; the others failed in zoo train."""
    root = write_plugin(tmp_path / "site", "brokenplug", "broken", BROKEN_CLASSES)
    for _ in _install_in_process(root, "brokenplug"):
        errors = [f["error"] for f in zoo.list_plugins()["failed"]]
        assert len(errors) == 6, errors
        for fragment in ("model noconfig: NoConfig.Config is not a dataclass",
                         "model nodefault: NoDefault.Config has fields without a default: latent_dim",
                         "model noloss: NoLoss has no loss (nor its own training_step and validation_step)",
                         "model notamodel: NotAModel is not a subclass of zoo.ZooModel",
                         "not a class", "model name 'two words' is not one word"):
            assert any(fragment in e for e in errors), fragment
        listed = assert_ok(invoke("list"))
        assert "plugin 'broken' from package brokenplug failed to load" in listed and "convae" in listed
        assert_clean_error(invoke("train", "noloss", "--dataset", "digits", "--out", tmp_path / "run"),
                           "unknown model 'noloss'", "'broken' (brokenplug)")
        assert not (tmp_path / "run").exists()
