"""An IWAE's k × batch_size whose training step cannot fit in memory is refused before a run folder is
kept (new runs and resumes alike), with the largest k and batch size that fit; the bound's codes are
decoded in blocks without copying the images k times, with the values and gradients of one pass."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TINY_SET, assert_clean_error, assert_ok, invoke

import zoo
from zoo.plugins.vae import IWAE_CHUNK_IMAGES

HUGE = {"iwae": ["--set", "k=5000"], "ciwae": ["--set", "bound=ciwae", "--set", "k=5000"],
        "miwae": ["--set", "bound=miwae", "--set", "k=5000", "--set", "m=1000"],
        "piwae": ["--set", "bound=piwae", "--set", "k=5000", "--set", "m=1000"]}


@pytest.mark.parametrize("bound", list(HUGE))
def test_a_k_times_batch_beyond_memory_is_refused_with_what_fits_and_no_run_folder(tmp_path, bound):
    # the default nets: 5000 samples of each of 1294 images hold ~190 GiB of decoder activations
    out = tmp_path / "run"
    result = invoke("train", "iwae", "--dataset", "digits", "--epochs", "1", "--batch-size", "1294",
                    "--device", "cpu", "--no-progress", *HUGE[bound], "--out", str(out))
    message = assert_clean_error(result, "× batch_size 1294 would hold about", "of decoder activations",
                                 "are free on cpu")
    assert "--set k=" in message or "No k fits" in message
    assert "--batch-size" in message or "smaller model" in message
    assert not out.exists()


def test_an_overwrite_whose_k_cannot_fit_is_refused_and_leaves_the_old_run_as_it_was(tmp_path):
    """The memory check ran once --overwrite had removed the old run: refused, with an empty folder left."""
    run = tmp_path / "run"
    assert_ok(invoke("train", "iwae", "--dataset", "digits", "--epochs", "1", "--set", "k=2", *TINY_SET,
                     "--out", str(run)))
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert_clean_error(invoke("train", "iwae", "--dataset", "digits", "--epochs", "1", *TINY_SET, *HUGE["miwae"],
                              "--out", str(run), "--overwrite"), "of decoder activations")
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_a_resume_of_a_run_whose_k_cannot_fit_is_refused_and_leaves_it_as_it_was(tmp_path):
    run = tmp_path / "run"
    assert_ok(invoke("train", "iwae", "--dataset", "digits", "--epochs", "1", "--set", "k=2", *TINY_SET,
                     "--out", str(run)))
    config = json.loads((run / "config.json").read_text())  # as an older zoo would have started it
    config["config"].update(k=5000, m=1000, bound="miwae")
    (run / "config.json").write_text(json.dumps(config))
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert_clean_error(invoke("train", "--resume", str(run), "--epochs", "2", "--no-progress"),
                       "k=5000 × m=1000 samples per image", "of decoder activations")
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_the_codes_of_the_bound_decoded_in_blocks_give_one_pass_s_values_and_gradients():
    """More images than a block holds (columns split) and more samples than fit beside them (rows split)."""
    torch.manual_seed(0)
    net = zoo.create("iwae", latent_dim=3, channels=[4, 8, 8], hidden=[16])
    for s, b in ((3, IWAE_CHUNK_IMAGES + 7), (2 * IWAE_CHUNK_IMAGES // 5 + 1, 5)):
        z = torch.randn(s, b, 3, requires_grad=True)
        x = torch.bernoulli(torch.rand(b, 1, 28, 28))
        blocks = net.codes_log_likelihood(x, None, z)
        xs = x.unsqueeze(0).expand(s, *x.shape).reshape(s * b, *x.shape[1:])
        whole = net.log_likelihood(net.decode_logits(z.reshape(s * b, 3)), xs).view(s, b)
        torch.testing.assert_close(blocks, whole)
        params = [z, *net.decoder.parameters()]
        for a, c in zip(torch.autograd.grad(blocks.sum(), params), torch.autograd.grad(whole.sum(), params)):
            torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-4)


def test_trials_vectorised_or_not_are_pruned_alike_when_their_k_times_batch_cannot_fit(tmp_path):
    pytest.importorskip("optuna")
    space = tmp_path / "s.toml"
    space.write_text('[search]\nstrategy = "random"\npruner = "none"\nseed = 0\n[fixed]\ndataset = "digits"\n'
                     'batch_norm = false\ndevice = "cpu"\nepochs = 1\nbatch_size = 1294\nk = 5000\n'
                     '[params]\nlr = { low = 1e-4, high = 1e-2, log = true }\n')  # no batch norm: stackable
    reasons = {}
    for how, options in (("alone", []), ("vectorised", ["--vectorize", "2"])):
        out = assert_clean_error(invoke("search", "iwae", "--space", space, "--out", tmp_path / how, "--trials", "2",
                                        *options), "no trial of the search completed", code=1)
        assert "pruned: 2 invalid configuration" in out
        summary = json.loads((tmp_path / how / "summary.json").read_text())
        reasons[how] = summary["states"]
    assert reasons["alone"] == reasons["vectorised"] == {**reasons["alone"], "complete": 0, "pruned": 2}


def test_training_trials_together_refuses_a_k_times_batch_beyond_memory_before_stacking():
    import dataclasses

    from zoo.errors import ConfigError
    from zoo.api import resolve_config
    from zoo.training import multitrial
    from zoo.runs.run import training_data

    cls, model_cfg, train_cfg = resolve_config("iwae", overrides={"dataset": "digits", "batch_norm": False,
                                                                  "k": 5000, "batch_size": 1294, "epochs": 1})
    data = training_data(train_cfg, "cpu")
    with pytest.raises(ConfigError, match="of decoder activations"):
        multitrial.train_together(cls, model_cfg, [train_cfg, dataclasses.replace(train_cfg, lr=1e-4)], data)
