"""Training callbacks as plugins: a third-party package's callback, registered through the `zoo_callbacks`
hook and turned on by the `train_callbacks` config key, changes training; `zoo list` shows it."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY, TINY_SET, _install_in_process, assert_clean_error, assert_ok, invoke, quiet, read_config, \
    read_metrics, write_plugin

import zoo
from zoo.errors import ConfigError

L1PLUG = '''\
"""A third-party zoo plugin: an L1 penalty on the codes (activity regularisation)."""
import zoo
from zoo.training.callbacks import Callback
from zoo.errors import ConfigError


class L1Activity(Callback):
    name = "l1-activity"
    description = "adds weight * mean |code| to the training loss"
    params = ("weight",)
    defaults = (0.01,)
    ranges = {"weight": (0.0, 100.0)}

    def __init__(self, weight):
        self.weight = weight

    def check(self, model):
        if not model.can("encode"):
            raise ConfigError(f"l1-activity: model '{model.name}' has no codes to penalise")

    def on_loss(self, trainer, step):
        penalty = step.model.encode(step.batch.x).abs().mean()
        step.logs["l1_activity"] = penalty.detach()
        step.loss = step.loss + self.weight * penalty


@zoo.hookimpl
def zoo_callbacks():
    return [L1Activity]
'''


@pytest.fixture(scope="module")
def l1plug_dir(tmp_path_factory):
    return write_plugin(tmp_path_factory.mktemp("l1plug"), "l1plug", "l1-activity", L1PLUG)


@pytest.fixture
def l1plug_installed(l1plug_dir):
    yield from _install_in_process(l1plug_dir, "l1plug")


def _train(out, **kw):
    return zoo.train("convae", dataset="digits", out=out, log=quiet, progress=False, **{"epochs": 2, **TINY, **kw})


def _mean_abs_code(run) -> float:
    from sklearn.datasets import load_digits

    model = zoo.load(run)
    x = torch.nn.functional.interpolate(torch.tensor(load_digits().images[:200], dtype=torch.float32)[:, None] / 16,
                                        size=(28, 28))
    with torch.no_grad():
        return float(model.encode(x).abs().mean())


def test_a_plugin_callback_selected_by_a_config_key_shrinks_the_codes(l1plug_installed, tmp_path):
    _train(tmp_path / "plain")
    penalised = _train(tmp_path / "l1", train_callbacks=["l1-activity:1"])
    rows = read_metrics(tmp_path / "l1")
    assert all("train_l1_activity" in r for r in rows) and not [k for r in rows for k in r if k == "val_l1_activity"]
    assert _mean_abs_code(tmp_path / "l1") < 0.5 * _mean_abs_code(tmp_path / "plain")  # same seed, same data
    assert read_config(tmp_path / "l1")["train"]["train_callbacks"] == ["l1-activity:1"]
    assert penalised.history[0]["train_loss"] > penalised.history[0]["train_l1_activity"]  # the penalty is in it


def test_the_callback_is_turned_on_from_the_command_line_and_kept_on_resume(l1plug_installed, tmp_path):
    run = tmp_path / "run"
    assert_ok(invoke("train", "convae", "--dataset", "digits", *TINY_SET, "--epochs", "1", "--out", run,
                     "--set", "train_callbacks=l1-activity:0.5"))
    assert_ok(invoke("train", "--resume", run, "--epochs", "2", "--no-progress"))
    assert [("train_l1_activity" in r) for r in read_metrics(run)] == [True, True]


def test_zoo_list_shows_plugin_and_builtin_callbacks(l1plug_installed):
    out = assert_ok(invoke("list"))
    assert "l1-activity:weight" in out and "l1plug 0.1" in out
    assert "pruning" in out and "iterative" in out
    rows = {r["name"]: r for r in zoo.list_plugins()["callbacks"]}
    assert rows["l1-activity"]["params"] == ["weight"] and rows["pruning"]["package"].startswith("zoo ")
    assert "prune_every" in rows["pruning"]["keys"]


def test_an_unknown_callback_name_is_refused_before_anything_is_written(l1plug_installed, tmp_path):
    r = invoke("train", "convae", "--dataset", "digits", *TINY_SET, "--out", tmp_path / "run",
               "--set", "train_callbacks=l1-activty:0.5")
    assert_clean_error(r, "unknown callback 'l1-activty'", "l1-activity", code=2)
    assert not (tmp_path / "run").exists()


def test_builtin_callbacks_are_turned_on_by_their_own_keys_not_by_name(tmp_path):
    with pytest.raises(ConfigError, match="unknown callback 'pruning'"):
        _train(tmp_path / "run", train_callbacks=["pruning"])


@pytest.mark.parametrize("spec, message", [("l1-activity:x", "must be numbers"),
                                           ("l1-activity:1:2", "has 2 value(s)"),
                                           ("l1-activity:500", "weight must be in 0..100")])
def test_bad_callback_values_are_one_clear_error(l1plug_installed, spec, message):
    r = invoke("train", "convae", "--dataset", "digits", *TINY_SET, "--set", f"train_callbacks={spec}")
    assert_clean_error(r, message, code=2)


def test_the_default_value_is_used_when_a_spec_leaves_it_out(l1plug_installed, tmp_path):
    from zoo.training.callbacks import callbacks_for
    from zoo.runs.config import TrainConfig

    (cb,) = [c for c in callbacks_for(TrainConfig(train_callbacks=["l1-activity"])) if c.name == "l1-activity"]
    assert cb.weight == 0.01


def test_a_model_the_callback_cannot_work_on_is_refused(l1plug_installed, tmp_path):
    with pytest.raises(ConfigError, match="no codes to penalise"):
        zoo.train("gan", dataset="digits", out=tmp_path / "g", log=quiet, progress=False, device="cpu", epochs=1,
                  train_callbacks=["l1-activity:1"])
    assert not (tmp_path / "g").exists()


# ------------------------------------------------------------------------------------------ dropout schedule

class _DropoutRates(zoo.Callback):
    """Records the rate of every dropout layer as each epoch ends."""

    def __init__(self):
        self.rates: list[list[float]] = []

    def on_epoch_end(self, trainer, epoch, record):
        self.rates.append([round(float(m.rate), 6) for m in trainer.model.modules()
                           if isinstance(m, torch.nn.Dropout)])


def test_a_dropout_schedule_moves_every_layers_rate_from_start_to_the_configured_dropout(tmp_path):
    probe = _DropoutRates()
    _train(tmp_path / "run", epochs=4, dropout=0.4, dropout_decoder=True, callbacks=[probe],
           train_callbacks=["dropout-schedule:0:3"])
    assert [len(r) for r in probe.rates] == [2] * 4  # encoder and decoder layers alike
    assert [r[0] for r in probe.rates] == [0.0, 0.2, 0.4, 0.4]  # linear to the configured rate, then kept
    assert all(len(set(r)) == 1 for r in probe.rates)


def test_a_resumed_run_goes_on_with_the_scheduled_rate_of_its_epoch(tmp_path):
    _train(tmp_path / "run", epochs=2, dropout=0.5, train_callbacks=["dropout-schedule:0.1:5"])
    probe = _DropoutRates()
    zoo.train(resume=tmp_path / "run", epochs=3, log=quiet, progress=False, callbacks=[probe])
    assert probe.rates == [[0.3]]  # epoch 3 of 5: 0.1 + (0.5 - 0.1) * 2/4


def test_a_dropout_schedule_on_a_model_without_dropout_is_refused_before_training(tmp_path):
    with pytest.raises(ConfigError, match="has no dropout layers to schedule"):
        _train(tmp_path / "run", train_callbacks=["dropout-schedule:0"])
    assert not (tmp_path / "run").exists()


def test_a_callback_param_declared_integer_comes_as_a_whole_number_and_a_fraction_is_refused():
    from zoo.training.callbacks import Callback

    class Every(Callback):
        name = "every"
        params = ("n", "weight")
        defaults = (0.5,)
        integer = ("n",)
        ranges = {"n": (1, 100)}

    n, weight = Every.parse_values("every:5", ["5"])
    assert n == 5 and isinstance(n, int) and weight == 0.5
    with pytest.raises(ConfigError, match="train_callbacks: 'every:2.5': n must be a whole number, got 2.5"):
        Every.parse_values("every:2.5", ["2.5"])
