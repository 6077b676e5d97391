"""What a plugin's model raises or hands back wrong, through a Run (zoo.runs.plugin_calls): said as a bug of the
plugin, naming its package, with exit 1, never a traceback of zoo's, a garbage picture written with exit 0, or a
message sending the user after their own options (plugin23 §5, §6). The plugin is a real package written into
tmp_path and registered as pip would leave it; BROKEN in the environment picks its mistake."""

from __future__ import annotations

import pytest
import torch

import zoo
from conftest import MLP_PLUGIN, TINY, assert_clean_error, invoke
from zoo.console import quiet
from zoo.errors import CapabilityError, ConfigError, PluginError

BROKEN = '''
import os


class BrokenAE(MLPAE):
    name = "brokenae"

    def encode(self, x):
        z = super().encode(x)
        mode = os.environ.get("BROKEN")
        if mode == "encode_tuple":
            return z, z
        if mode == "encode_numpy":
            return z.numpy()
        if mode == "encode_raises":
            raise RuntimeError("boom in encode")
        if mode == "encode_nan":
            return z * float("nan")
        return z

    def decode(self, z):
        x = super().decode(z)
        mode = os.environ.get("BROKEN")
        if mode == "decode_flat":
            return x.flatten(1)
        if mode == "decode_nan":
            return x * float("nan")
        return x

    def sample(self, n, generator=None):
        if os.environ.get("BROKEN") == "sample_count":
            n += 1
        return self.decode(torch.randn(n, self.config.latent_dim, generator=generator))

    def loss(self, batch):
        loss = super().loss(batch)["loss"]
        return {"loss": loss.detach() if os.environ.get("BROKEN") == "loss_detached" else loss}

    def metrics(self, batch):
        per = (self.reconstruct(batch.x) - batch.x).pow(2).mean((1, 2, 3))
        return [per] if os.environ.get("BROKEN") == "metrics_list" else {"mse": per}

    def configure_optimizers(self, make_optimizer):
        if os.environ.get("BROKEN") == "configure_bad":
            return make_optimizer(self.parameters())
        return {"main": make_optimizer(self.parameters())}

    def preview(self, x):
        return [x] if os.environ.get("BROKEN") == "preview_bad" else super().preview(x)

    def evaluation_report(self, *args):
        mode = os.environ.get("BROKEN")
        if mode == "report_old" and len(args) == 4:
            raise TypeError("BrokenAE.evaluation_report() takes 4 positional arguments but 5 were given")
        if mode == "report_tensor":
            return {"t": torch.ones(3)}
        return {"fine": 1}


@zoo.hookimpl(specname="zoo_models")
def broken_models():
    return [BrokenAE]
'''
SOURCE = MLP_PLUGIN.format(model="mlpae", extra="", body="", hooks=BROKEN)


@pytest.fixture
def broken_run(plugin_installer, tmp_path):
    """A run of the plugin's model, trained while it was well (BROKEN unset)."""
    plugin_installer("brokenplug", SOURCE)
    zoo.train("brokenae", dataset="digits", epochs=1, out=tmp_path / "run", log=quiet, progress=False, device="cpu")
    return tmp_path / "run"


def refused(monkeypatch, run_dir, mode: str, call) -> PluginError:
    monkeypatch.setenv("BROKEN", mode)
    run = zoo.load(run_dir)
    x, _ = run.data("test")
    with pytest.raises(PluginError) as caught:
        call(run, x[:5])
    assert "model 'brokenae' (brokenplug 0.1)" in caught.value.message
    assert "report it to its author" in caught.value.hint
    assert isinstance(caught.value, CapabilityError)  # what callers caught before
    return caught.value


@pytest.mark.parametrize("mode, call, said", [
    ("encode_tuple", lambda run, x: run.encode(x), "its encode() gave tuple, not a float tensor"),
    ("encode_numpy", lambda run, x: run.encode(x), "its encode() gave ndarray, not a float tensor"),
    ("decode_flat", lambda run, x: run.reconstruct(x), "its reconstruct() gave a tensor of shape [5, 784], not 5 "
                                                       "images [5, 1, 28, 28]"),
    ("decode_nan", lambda run, x: run.reconstruct(x), "its reconstruct() gave images holding NaN"),
    ("decode_nan", lambda run, x: run.decode(torch.zeros(2, 3)), "its decode() gave images holding NaN"),
    ("sample_count", lambda run, x: run.sample(4), "its sample() gave a tensor of shape [5, 1, 28, 28], not 4 images"),
    ("encode_nan", lambda run, x: run.encode(x), "its encode() gave codes holding NaN"),
])
def test_a_plugins_wrong_answer_to_a_run_method_is_refused_naming_the_plugin(broken_run, monkeypatch, mode, call,
                                                                           said):
    assert said in refused(monkeypatch, broken_run, mode, call).message


def test_what_a_plugins_method_raises_is_said_as_its_bug_with_its_own_exception_kept(broken_run, monkeypatch):
    error = refused(monkeypatch, broken_run, "encode_raises", lambda run, x: run.encode(x))
    assert "its encode() raised RuntimeError: boom in encode" in error.message
    assert isinstance(error.__cause__, RuntimeError)  # the plugin's traceback, for its author


def test_a_well_plugin_passes_its_answers_through(broken_run):
    run = zoo.load(broken_run)
    x, _ = run.data("test")
    assert run.encode(x[:5]).shape == (5, 3)
    assert run.reconstruct(x[:5]).shape == (5, 1, 28, 28)
    assert run.sample(4).shape == (4, 1, 28, 28)


def test_a_picture_of_a_plugins_wrong_shaped_images_is_refused_not_written(broken_run, monkeypatch, tmp_path):
    monkeypatch.setenv("BROKEN", "decode_flat")
    out = tmp_path / "r.png"
    assert_clean_error(invoke("reconstruct", str(broken_run), "--n", "4", "--out", str(out)),
                       "its reconstruct() gave a tensor of shape [4, 784]", "report it to its author", code=1)
    assert not out.exists()
    assert_clean_error(invoke("generate", str(broken_run), "--n", "4", "--out", str(tmp_path / "g.png")),
                       "its sample() gave a tensor of shape", code=1)  # not "ask fewer (--n)"


def test_nan_codes_of_a_plugins_encode_are_its_bug_not_the_users_options(broken_run, monkeypatch):
    monkeypatch.setenv("BROKEN", "encode_nan")
    out = assert_clean_error(invoke("interpolate", str(broken_run), "--from", "1", "--to", "2"),
                             "its encode() gave codes holding NaN", code=1)
    assert "Encode images with run.encode(x)" not in out
    assert_clean_error(invoke("latent", str(broken_run)), "its encode() gave codes holding NaN", code=1)


@pytest.mark.parametrize("mode, said", [
    ("metrics_list", "its metrics() gave list, not a dict of per-image tensors"),
    ("report_old", "its evaluation_report() raised TypeError: BrokenAE.evaluation_report() takes 4"),
    ("report_tensor", "its evaluation_report() gave what eval.json cannot hold"),
])
def test_a_plugins_broken_metrics_or_report_ends_zoo_eval_naming_the_plugin(broken_run, monkeypatch, mode, said):
    before = (broken_run / "eval.json").read_bytes() if (broken_run / "eval.json").exists() else None
    monkeypatch.setenv("BROKEN", mode)
    assert_clean_error(invoke("eval", str(broken_run), "--no-progress"), "model 'brokenae' (brokenplug 0.1)", said,
                       "report it to its author", code=1)
    after = (broken_run / "eval.json").read_bytes() if (broken_run / "eval.json").exists() else None
    assert after == before  # nothing half-written


def test_a_well_plugins_report_lands_in_eval_json(broken_run):
    result = zoo.evaluate(broken_run, progress=False)
    assert result["report"] == {"fine": 1} and result["metrics"]["mse"] > 0


def broken_training(plugin_installer, monkeypatch, out, mode: str):
    """`zoo train brokenae` into `out` with the plugin's mistake `mode` switched on: click's Result."""
    plugin_installer("brokenplug", SOURCE)
    monkeypatch.setenv("BROKEN", mode)
    return invoke("train", "brokenae", "--dataset", "digits", "--epochs", "1", "--out", str(out))


def test_optimizers_not_given_by_name_are_refused_before_a_run_folder_is_written(plugin_installer, monkeypatch,
                                                                                 tmp_path):
    assert_clean_error(broken_training(plugin_installer, monkeypatch, tmp_path / "run", "configure_bad"),
                       "its configure_optimizers() gave Adam", "not a dict of optimizers by name", code=1)
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_a_plugins_bad_preview_rows_end_training_in_its_message_with_the_weights_kept(plugin_installer, monkeypatch,
                                                                                      tmp_path):
    assert_clean_error(broken_training(plugin_installer, monkeypatch, tmp_path / "run", "preview_bad"),
                       "its preview() gave list of other rows than (label, images [k, 1, 28, 28]) pairs", code=1)
    monkeypatch.delenv("BROKEN")
    assert zoo.load(tmp_path / "run").encode(torch.zeros(1, 1, 28, 28)).shape == (1, 3)  # the trained weights load


def test_a_loss_without_gradient_ends_training_in_a_message_for_the_plugins_author(plugin_installer, monkeypatch,
                                                                                   tmp_path):
    out = assert_clean_error(broken_training(plugin_installer, monkeypatch, tmp_path / "run", "loss_detached"),
                             "step.optimize('main'): a loss without gradient (detached, or no tensor)",
                             "A fix for the plugin", code=1)
    assert "does not require grad" not in out


def test_zoos_own_autoencoder_with_linear_outputs_is_not_refused_for_values_beyond_0_1(tmp_path):
    zoo.train("convae", dataset="digits", epochs=1, out=tmp_path / "run", log=quiet, progress=False,
              sigmoid_output=False, **TINY)
    run = zoo.load(tmp_path / "run")
    name, bias = [(n, p) for n, p in run.model.named_parameters()][-1]
    assert name.endswith("bias")
    with torch.no_grad():
        bias += 1.0  # as a longer training leaves it: values a little beyond 1 (and below 0), which pictures clamp
    x, _ = run.data("test")
    out = run.reconstruct(x[:64])
    assert out.shape == (64, 1, 28, 28) and out.max() > 1
    assert zoo.reconstruct(run, n=4, out=tmp_path / "r.png").exists()


def test_a_run_its_user_converted_to_half_is_said_as_its_dtype_not_as_the_plugins_bug(digits_vae_run):
    run = zoo.load(digits_vae_run)
    run.model.half()
    x, _ = run.data("test")
    with pytest.raises(ConfigError) as caught:
        run.nll(x[:4].float().div(255).bernoulli(), k=2)
    assert "the dtype run.model was converted to" in caught.value.message and "run.model.float()" in caught.value.hint
    assert not isinstance(caught.value, PluginError)
