"""`cuda_graph`: the whole training step recorded once and replayed. Without a GPU the same static step
runs unrecorded, so everything but the recording itself is tested here; the recording test needs CUDA."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY, TINY_SET, assert_clean_error, assert_ok, invoke, quiet, read_metrics

import zoo
from zoo.errors import ConfigError
from zoo.training.graphstep import plain_numbers

TIMING = {"images_per_s", "seconds", "lr"}


def train(out, model="convae", **kw):
    small = {} if model == "gan" else TINY
    return zoo.train(model, dataset="digits", out=out, log=quiet, progress=False,
                     **{**small, "device": "cpu", "batch_size": 100, **kw})


def _curves(run):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in read_metrics(run)]


@pytest.mark.parametrize("extra", [{}, {"lr_schedule": "cosine", "optimizer": "adamw", "weight_decay": 1e-3},
                                   {"lr_schedule": "cosine", "optimizer": "sgd", "lr": 0.05, "momentum": 0.9}])
def test_the_static_step_trains_exactly_like_the_engine(tmp_path, extra):
    """Full batches through the static step, the last short one eagerly, losses summed on the device."""
    train(tmp_path / "eager", epochs=3, **extra)
    train(tmp_path / "graph", epochs=3, cuda_graph=True, **extra)
    for a, b in zip(_curves(tmp_path / "eager"), _curves(tmp_path / "graph"), strict=True):
        assert a == pytest.approx(b, rel=1e-5)
    lrs = [r["lr"] for r in read_metrics(tmp_path / "graph")]
    assert lrs == pytest.approx([r["lr"] for r in read_metrics(tmp_path / "eager")], rel=1e-6)


def test_a_graph_run_resumes_like_an_uninterrupted_one(tmp_path):
    kw = {"cuda_graph": True, "dropout": 0.2}  # (a cosine schedule depends on the planned epochs)
    train(tmp_path / "straight", epochs=3, **kw)
    train(tmp_path / "resumed", epochs=2, **kw)
    zoo.train(resume=tmp_path / "resumed", epochs=3, log=quiet, progress=False)
    for a, b in zip(_curves(tmp_path / "straight"), _curves(tmp_path / "resumed"), strict=True):
        assert a == pytest.approx(b, rel=1e-5)


def test_compiled_layers_train_like_eager_ones_and_save_plain_weights(tmp_path):
    """compile=true (torch.compile of the model's layers, with or without the recorded step): the same
    losses, and a run that loads as any other (compiled in place, the weights keep their names)."""
    train(tmp_path / "eager", epochs=2)
    train(tmp_path / "compiled", epochs=2, compile=True, cuda_graph=True)
    for a, b in zip(_curves(tmp_path / "eager"), _curves(tmp_path / "compiled"), strict=True):
        assert a == pytest.approx(b, rel=1e-4)
    assert zoo.evaluate(tmp_path / "compiled", save=False)["metrics"]["mse"] > 0


def test_denoisers_and_vaes_without_warm_up_can_be_recorded(tmp_path):
    assert train(tmp_path / "dae", "dae", epochs=1, cuda_graph=True).history[0]["train_loss"] > 0
    assert train(tmp_path / "vae", "vae", epochs=1, cuda_graph=True).history[0]["train_kl"] > 0


@pytest.mark.parametrize("model, kw, message", [
    ("convae", {"optimizer": "adagrad"}, "adam, adamw, sgd optimizers"),
    ("gan", {}, "has its own training_step"),
    ("convae", {"prune_every": 1, "prune_encoder_linear": 0.2}, "pruning"),
])
def test_what_cannot_be_recorded_is_refused_before_training(tmp_path, model, kw, message):
    with pytest.raises(ConfigError, match=message):
        train(tmp_path / "x", model, epochs=1, cuda_graph=True, **kw)
    assert not (tmp_path / "x" / "metrics.jsonl").exists()


def test_a_warm_up_trains_under_cuda_graph_as_it_does_eagerly(tmp_path):
    """A before_step schedule (the VAE's KL warm-up) is not refused: the run trains exactly as eagerly."""
    kw = {"epochs": 2, "kl_warmup": 2, "latent_dim": 2}
    eager = train(tmp_path / "eager", "vae", **kw)
    graph = train(tmp_path / "graph", "vae", cuda_graph=True, **kw)
    for a, b in zip(eager.history, graph.history, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)


def test_the_number_watch_notices_a_before_step_that_changes_a_python_number():
    from zoo.training.graphstep import NumberWatch

    model = zoo.create("convae", **TINY)
    notes: list[str] = []
    watch = NumberWatch(model, notes.append)
    assert watch.unchanged() and not notes
    model.rate = 0.5  # what a plugin's before_step assigning a plain number does
    assert not watch.unchanged()
    assert "convae changes rate (a Python number)" in notes[0] and "run eagerly" in notes[0]


def test_a_kl_warm_up_rises_in_a_tensor_so_its_steps_can_be_recorded():
    """The VAE's warm-up weight is a schedule_buffer changed in place: before_step changes no Python number
    (so a recorded step keeps replaying), and the tensor a recorded step reads is the one that rises."""
    from zoo.model import StepContext
    from zoo.training.graphstep import NumberWatch

    model = zoo.create("vae", kl_warmup=2, **TINY)
    notes: list[str] = []
    watch = NumberWatch(model, notes.append)
    tensor = model.warmup
    ctx = StepContext({}, epoch=1)
    ctx.steps_per_epoch = 10
    weights = []
    for step in range(3):
        ctx.step = step
        model.before_step(ctx)
        assert watch.unchanged()
        weights.append(float(tensor))
    assert model.warmup is tensor and not notes
    assert weights == pytest.approx([0.0, 0.05, 0.1])  # step / (10 steps × 2 epochs)
    assert "warmup" not in model.state_dict()  # set again by before_step on resume, not saved


def test_cli_refusal_is_one_message(tmp_path):
    assert_clean_error(invoke("train", "convae", "--dataset", "digits", "--epochs", "1", "--out", tmp_path / "r",
                              *TINY_SET, "--set", "cuda_graph=true", "--set", "optimizer=adagrad"),
                       "cuda_graph supports the adam, adamw, sgd optimizers", "optimizer=adam")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="recording a CUDA graph needs a GPU")
def test_recorded_steps_train_like_eager_ones_on_a_gpu(tmp_path):
    kw = {"device": "cuda", "batch_size": 64, "epochs": 3, "lr_schedule": "cosine"}
    eager = train(tmp_path / "eager", **kw)
    graph = train(tmp_path / "graph", cuda_graph=True, **kw)
    for a, b in zip(eager.history, graph.history, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=2e-3)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=2e-3)
    out = assert_ok(invoke("train", "convae", "--dataset", "digits", "--epochs", "1", "--out", tmp_path / "cli",
                           "--set", "cuda_graph=true", "--device", "cuda", "--no-progress"))
    assert "epoch 1/1" in out


@pytest.mark.skipif(not torch.cuda.is_available(), reason="recording a CUDA graph needs a GPU")
def test_a_kl_warm_up_is_recorded_and_trains_like_eager_steps_on_a_gpu(tmp_path):
    """Until 2026-12-04 a warm-up's Python number ended the replays (every VAE-family step ran eagerly)."""
    notes: list[str] = []
    kw = {"device": "cuda", "batch_size": 64, "epochs": 3, "kl_warmup": 2, "latent_dim": 2}
    eager = train(tmp_path / "eager", "vae", **kw)
    graph = zoo.train("vae", dataset="digits", out=tmp_path / "graph", log=notes.append, progress=False,
                      **{**TINY, **kw, "cuda_graph": True})
    assert not [n for n in notes if "eagerly" in n]  # neither the replays ended nor the recording failed
    for a, b in zip(eager.history, graph.history, strict=True):  # the codes' noise differs: close, not equal
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=0.05)


LIKELIHOOD_STEPS = [  # the issue-15 models' steps: PIWAE's vector-Jacobian product, the VampPrior's drawn
    ("iwae", {"bound": "piwae", "m": 2, "k": 3}),  # pseudo-inputs, the hierarchical VAE's pixel layers
    ("vampprior", {"batch_norm": False, "pseudo_inputs": 20, "prior_draws": 6}),
    ("vampprior", {"batch_norm": False, "pseudo_inputs": 20, "prior_draws": 6, "prior_refresh": 3}),  # its cache
    ("hvae", {"prior": "vampprior", "pseudo_inputs": 20, "prior_draws": 6, "pixel_layers": 1, "pixel_channels": 8}),
]


@pytest.mark.parametrize("model, settings", LIKELIHOOD_STEPS)
def test_the_likelihood_models_train_through_the_static_step_changing_no_python_number(tmp_path, model, settings):
    """What a recording needs of them, short of a GPU: their Python numbers (which a replay could not follow) are
    the same after two epochs of a warm-up as when built; the warm-up moved in its tensor."""
    options = {**TINY, "batch_size": 64, "epochs": 2, "kl_warmup": 2, "binarize": "dynamic", **settings}
    fresh = zoo.create(model, **{k: v for k, v in options.items() if k not in ("batch_size", "epochs", "binarize")})
    assert float(fresh.warmup) == 1.0  # built outside training: warmed up, its loss() the trained objective
    result = zoo.train(model, dataset="digits", out=tmp_path / "run", log=quiet, progress=False,
                       **options, cuda_graph=True)
    assert plain_numbers(result.model) == plain_numbers(fresh)
    assert 0.9 < float(result.model.warmup) < 1.0  # the last step's weight, near the end of the warm-up
    assert result.history[1]["train_loss"] < result.history[0]["train_loss"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="recording a CUDA graph needs a GPU")
@pytest.mark.parametrize("model, settings", LIKELIHOOD_STEPS)
def test_the_likelihood_models_steps_are_recorded_on_a_gpu(tmp_path, model, settings):
    notes: list[str] = []
    result = zoo.train(model, dataset="digits", out=tmp_path / "run", log=notes.append, progress=False,
                       **{**TINY, "device": "cuda", "batch_size": 64, "epochs": 2, "kl_warmup": 1,
                          "binarize": "dynamic", "cuda_graph": True, **settings})
    assert not [n for n in notes if "eagerly" in n], notes  # recorded, and the replays went on to the end
    assert result.history[1]["train_loss"] < result.history[0]["train_loss"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="recording a CUDA graph needs a GPU")
def test_a_step_that_cannot_be_recorded_runs_eagerly_and_says_so_on_a_gpu(tmp_path, monkeypatch):
    """A plugin with the default training step whose loss synchronises with the host."""
    from zoo.plugins.convae import ConvAE

    loss = ConvAE.loss

    def syncing_loss(self, batch):
        out = loss(self, batch)
        float(out["loss"])  # waits for the device: forbidden while a CUDA graph records
        return out

    monkeypatch.setattr(ConvAE, "loss", syncing_loss)
    kw = {"device": "cuda", "batch_size": 64, "epochs": 2}
    eager = train(tmp_path / "eager", **kw)
    notes: list[str] = []
    graph = zoo.train("convae", dataset="digits", out=tmp_path / "graph", log=notes.append, progress=False,
                      **{**TINY, **kw, "cuda_graph": True})
    assert any("could not be recorded in a CUDA graph" in n and "runs eagerly" in n for n in notes), notes
    for a, b in zip(eager.history, graph.history, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=2e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="recording a CUDA graph needs a GPU")
def test_recorded_vectorised_trials_train_like_eager_ones_on_a_gpu():
    import dataclasses

    from zoo.training import multitrial
    from zoo.api import resolve_config
    from zoo.runs.run import training_data

    cls, model_cfg, base = resolve_config("convae", overrides={**TINY, "device": "cuda", "dataset": "digits",
                                                                "epochs": 3, "batch_size": 64})
    data = training_data(base, "cuda")
    trials = [dataclasses.replace(base, lr=lr, seed=s) for lr, s in [(1e-3, 0), (3e-3, 1), (2e-3, 2)]]
    eager = multitrial.train_together(cls, model_cfg, trials, data)
    graph = multitrial.train_together(cls, model_cfg, [dataclasses.replace(t, cuda_graph=True) for t in trials],
                                      data, report=lambda k, epoch, record: not (k == 1 and epoch == 2))
    for e, g in zip(eager, graph):
        for a, b in zip(e.history, g.history):  # trial 1 stops after epoch 2: the rest are recorded again
            assert b["train_loss"] == pytest.approx(a["train_loss"], rel=2e-3)
    assert [r.epochs for r in graph] == [3, 2, 3]


def test_a_failing_compiler_is_one_message(tmp_path):
    """compile=true where torch.compile cannot build its kernels (here: no C++ compiler)."""
    from conftest import run_zoo

    env = {"CXX": str(tmp_path / "no-such-g++"), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cache")}
    assert_clean_error(run_zoo("train", "convae", "--dataset", "digits", "--epochs", "1", "--out", tmp_path / "r",
                               *TINY_SET, "--set", "compile=true", env=env),
                       "torch.compile failed", "compile=false", code=2)


def test_cuda_graph_and_bf16_without_cuda_say_the_step_runs_as_without_them(tmp_path):
    out = assert_ok(invoke("train", "convae", "--dataset", "digits", "--epochs", "1", "--out", tmp_path / "r",
                           *TINY_SET, "--set", "cuda_graph=true", "--bf16"))
    assert "cuda_graph records the step on CUDA devices only; on cpu the step runs as without it" in out
    assert "bf16 autocasts to bfloat16 on CUDA devices only; on cpu the step runs as without it" in out


def test_every_part_of_a_model_with_many_parts_is_compiled(tmp_path):
    """A hierarchical VAE's parts, each compiled in place and again without gradients, are more graphs of the
    one wrapper than Dynamo's default limit of 8: past it the rest ran uncompiled, with a warning."""
    import torch._dynamo.utils

    from zoo.training.compiling import called_parts

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    result = train(tmp_path / "h", "hvae", epochs=1, compile=True, latent_dim=3, layer_hidden=16, prior="vampprior",
                   pseudo_inputs=10)
    parts = called_parts(result.model)
    held = [m for c in result.model.children() if isinstance(c, torch.nn.ModuleList) for m in c]
    assert held and all(any(m is part for part in parts) for m in held)  # its ModuleLists' per-layer networks too
    assert not any(isinstance(part, torch.nn.ModuleList) for part in parts)  # a container is never called
    assert all(getattr(part, "_compiled_call_impl", None) is not None for part in parts)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 8
