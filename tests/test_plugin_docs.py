"""docs/plugins.md stays true: its two example plugins, taken from the page as written, install through a
`zoo.models` entry point (the way tests/conftest.py installs a third-party plugin) and train an epoch of
digits; and its tables name every member of ZooModel, StepContext and Callback the code has."""

from __future__ import annotations

import math
import re
import sys

import pytest
import torch
from conftest import REPO, _install_in_process, quiet, read_metrics, write_plugin

import zoo
from zoo.model import StepContext, ZooModel
from zoo.training.callbacks import Callback

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DOC = REPO / "docs" / "plugins.md"
# A fenced block right after `<!-- example: NAME -->`.
EXAMPLE = re.compile(r"^<!--\s*example:\s*([\w-]+)\s*-->\s*\n```(\w+)\n(.*?)^```", re.M | re.S)
MAX_SMALLEST_LINES = 25
SMALLEST, TWO_OPTIMIZERS = "mlpae", "tinygan"  # the examples' model names
FAST = {"dataset": "digits", "epochs": 1, "batch_size": 512, "device": "cpu", "log": quiet, "progress": False}


def doc() -> str:
    return DOC.read_text(encoding="utf-8")


def example(name: str, lang: str) -> str:
    """The text of the block marked `<!-- example: NAME -->` in docs/plugins.md."""
    found = {m[1]: (m[2], m[3]) for m in EXAMPLE.finditer(doc())}
    assert name in found, f"no block marked <!-- example: {name} --> in {DOC}"
    assert found[name][0] == lang, f"the block marked {name} is ```{found[name][0]}, not ```{lang}"
    return found[name][1]


def entry_point() -> tuple[str, str]:
    """The entry-point name and module of the smallest plugin's pyproject.toml snippet."""
    table = tomllib.loads(example("smallest-pyproject", "toml"))["project"]["entry-points"]["zoo.models"]
    assert len(table) == 1, table
    return next(iter(table.items()))


def section(title: str) -> str:
    """The text of the page from the heading that starts with `title` to the next heading of its level."""
    text = doc()
    start = re.search(rf"^(#+) {re.escape(title)}", text, re.M)
    assert start, f"no heading '{title}' in {DOC}"
    end = re.compile(rf"^{start[1]} ", re.M).search(text, start.end())
    return text[start.end():end.start() if end else len(text)]


# ------------------------------------------------------------------------------------------ the examples

@pytest.fixture(scope="module")
def smallest_dir(tmp_path_factory):
    name, module = entry_point()
    return write_plugin(tmp_path_factory.mktemp("smallest"), module, name, example("smallest", "python"))


@pytest.fixture
def smallest_installed(smallest_dir):
    yield from _install_in_process(smallest_dir, entry_point()[1])


@pytest.fixture(scope="module")
def two_optimizers_dir(tmp_path_factory):
    return write_plugin(tmp_path_factory.mktemp("twoopt"), "zoo_tinygan", TWO_OPTIMIZERS,
                        example("two-optimizers", "python"))


@pytest.fixture
def two_optimizers_installed(two_optimizers_dir):
    yield from _install_in_process(two_optimizers_dir, "zoo_tinygan")


class Snapshot(Callback):
    """The model's weights as training starts (passed to zoo.train as an instance, not registered)."""

    name = "snapshot"

    def on_train_start(self, trainer) -> None:
        self.before = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def finite(row: dict, *keys: str) -> None:
    for key in keys:
        assert isinstance(row.get(key), float) and math.isfinite(row[key]), (key, row)


def test_the_smallest_plugin_is_at_most_25_lines():
    lines = example("smallest", "python").rstrip("\n").splitlines()
    assert len(lines) <= MAX_SMALLEST_LINES, f"the smallest plugin has {len(lines)} lines"


def test_the_smallest_plugin_trains_an_epoch_through_its_entry_point(smallest_installed, tmp_path):
    assert SMALLEST in zoo.list_models()
    entry = next(m for m in zoo.list_plugins()["models"] if m["name"] == SMALLEST)
    assert entry["package"].startswith(entry_point()[1])  # found through the entry point, with its package
    out = tmp_path / "smallest"
    zoo.train(SMALLEST, out=out, latent_dim=2, **FAST)
    rows = read_metrics(out)
    assert len(rows) == 1 and rows[0]["epoch"] == 1, rows
    finite(rows[0], "train_loss", "val_loss")
    run = zoo.load(out)
    assert isinstance(run.model, ZooModel) and run.capabilities() == ["encode", "decode", "reconstruct"]
    assert math.isfinite(zoo.evaluate(run, save=False)["metrics"]["mse"])  # `zoo eval`'s default metrics


def test_the_two_optimizer_plugin_trains_both_networks(two_optimizers_installed, tmp_path):
    out, snapshot = tmp_path / "two", Snapshot()
    zoo.train(TWO_OPTIMIZERS, out=out, latent_dim=4, width=16, callbacks=[snapshot], **FAST)
    rows = read_metrics(out)
    assert len(rows) == 1 and rows[0]["epoch"] == 1, rows
    finite(rows[0], "train_loss", "train_d_loss", "train_g_loss", "val_d_loss", "val_g_loss",
           "lr_generator", "lr_discriminator")  # both optimizers' losses and learning rates
    after = zoo.load(out).model.state_dict()
    for net in ("generator", "discriminator"):
        params = [k for k in snapshot.before if k.startswith(f"{net}.")]
        assert params, f"no {net} weights"
        unchanged = [k for k in params if torch.equal(snapshot.before[k].cpu(), after[k].cpu())]
        assert not unchanged, f"{net} weights not trained: {unchanged}"


# ------------------------------------------------------------------------------------------ the tables

def test_every_zoomodel_member_has_a_row_in_the_table():
    """Every public member of ZooModel (its methods and class attributes) has a row in section 2, and
    every row names a member that exists: the table cannot fall behind the code."""
    members = {k for k in vars(ZooModel) if not k.startswith("_")} | set(ZooModel.__annotations__)
    rows = set(re.findall(r"^\| `(\w+)", section("2. `ZooModel`"), re.M)) - {"__init__"}
    assert not members - rows, f"ZooModel members missing from {DOC.name}: {sorted(members - rows)}"
    assert not rows - members, f"{DOC.name} documents members ZooModel lacks: {sorted(rows - members)}"


@pytest.mark.parametrize("cls, instance", [(StepContext, lambda: StepContext({})), (Callback, Callback)])
def test_the_helpers_members_are_named(cls, instance):
    """StepContext's and Callback's public members (and instance attributes) are each named in their part
    of section 3."""
    text = section(f"`{cls.__name__}`")
    members = {k for k in [*vars(cls), *vars(instance())] if not k.startswith("_")}
    missing = sorted(k for k in members if not re.search(rf"`{k}[`(]", text))
    assert not missing, f"{cls.__name__} members missing from {DOC.name}: {missing}"
