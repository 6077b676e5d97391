"""A hostile tester's findings on `zoo search` over the newer families (search23): a one-value key under `when`
that varies the loss, a GAN's `loss` varied, a grid that repeated configurations where a conditional key is not
drawn, a configuration the model always refuses, a cross-validation's folder as --out, `when` reading a [fixed]
key, and negative penalties."""

from __future__ import annotations


import pytest
from conftest import SEARCH_FIXED, TINY, TINY_SET, assert_clean_error, assert_ok, invoke, quiet, trial_rows, written

from zoo.errors import ConfigError
from zoo.search import run_search

optuna = pytest.importorskip("optuna")

CVAE = """[search]
strategy = "grid"
[fixed]
dataset = "digits"
epochs = 1
channels = [4, 8]
padding = [1, 1]
hidden = [16]
device = "cpu"
[params]
h = { choices = [true, false], helper = true }
"""


# ------------------------------------------------------------------------------------------ §1 one value under when

def test_a_one_value_key_under_when_that_changes_the_loss_is_refused_before_any_trial(tmp_path):
    # beta is 50 where h, and cvae's default 1.0 elsewhere: val_loss (rec + β·KL) would rank β = 1 against β = 50
    space = written(tmp_path / "s.toml", CVAE + 'beta = { choices = [50.0], when = "h" }\n')
    with pytest.raises(ConfigError, match="the space varies beta") as e:
        run_search("cvae", space, out=tmp_path / "st", log=quiet)
    assert 'metric = "neg_elbo"' in e.value.hint
    assert not (tmp_path / "st").exists()


def test_a_one_value_key_under_when_equal_to_the_value_it_keeps_elsewhere_is_searched(tmp_path):
    # cvae's beta is 1.0 where h is false too: every trial's loss is at β = 1
    space = written(tmp_path / "s.toml", CVAE + 'beta = { choices = [1.0], when = "h" }\n')
    summary = run_search("cvae", space, out=tmp_path / "st", log=quiet)
    assert summary["states"]["complete"] == 2


# ------------------------------------------------------------------------------------------ §2 a GAN's loss

GAN = """[search]
strategy = "grid"
[objective]
metric = "METRIC"
[fixed]
dataset = "digits"
epochs = 1
g_channels = 4
d_channels = 4
latent_dim = 8
clusters = 0
device = "cpu"
[params]
loss = { choices = ["ns", "wgan-gp"] }
"""


@pytest.mark.parametrize("model, metric", [("gan", "val_g_loss"), ("cgan", "d_loss"), ("gan", "train_loss")])
def test_a_gan_space_varying_its_loss_is_refused_whatever_the_metric(tmp_path, model, metric):
    # ns's g_loss is a BCE near log 2, wgan-gp's a critic's value near 0: the smallest scale would win
    space = written(tmp_path / "s.toml", GAN.replace("METRIC", metric))
    with pytest.raises(ConfigError, match=f"the space varies loss, which changes what {model}'s") as e:
        run_search(model, space, out=tmp_path / "st", log=quiet)
    assert "No metric compares them: fix loss in [fixed]" in e.value.hint
    assert not (tmp_path / "st").exists()


# ------------------------------------------------------------------------------------------ §3 grid and when

HVGRID = """[search]
strategy = "grid"
[objective]
metric = "neg_elbo"
[fixed]
dataset = "digits"
epochs = 1
channels = [4, 8]
padding = [1, 1]
latent_dim = 2
layer_hidden = 8
device = "cpu"
[params]
prior = { choices = ["standard", "vampprior"] }
pseudo_inputs = { choices = [3, 6], when = "prior == 'vampprior'" }
"""


@pytest.mark.parametrize("vectorize", [1, 4])
def test_a_grid_trains_each_configuration_once_where_a_conditional_key_is_not_drawn(tmp_path, vectorize):
    # 3 configurations (standard; vampprior with 3 or 6 pseudo-inputs), not 4 points with standard twice
    space = written(tmp_path / "s.toml", HVGRID)
    summary = run_search("hvae", space, out=tmp_path / "st", vectorize=vectorize, log=quiet)
    assert summary["states"]["complete"] == 3 and summary["states"]["fail"] == 0, summary["states"]
    drawn = sorted((r["prior"], r["pseudo_inputs"]) for r in trial_rows(tmp_path / "st"))
    assert drawn == [("standard", ""), ("vampprior", "3"), ("vampprior", "6")]


# ------------------------------------------------------------------------------------------ §4 always refused

def test_a_configuration_the_model_always_refuses_is_refused_before_the_study_folder_is_made(tmp_path):
    # batch norm and a VampPrior: every draw of pseudo_inputs is refused alike, as zoo train refuses it
    space = written(tmp_path / "s.toml", '[search]\nstrategy = "random"\ntrials = 5\n' + SEARCH_FIXED
                  + "epochs = 1\nbatch_norm = true\n[params]\npseudo_inputs = { low = 2, high = 20 }\n")
    with pytest.raises(ConfigError, match="vampprior: batch_norm would normalise the pseudo-inputs"):
        run_search("vampprior", space, out=tmp_path / "st", log=quiet)
    assert not (tmp_path / "st").exists()
    # the corrected search then runs in that folder
    summary = run_search("vampprior", space, out=tmp_path / "st", trials=1, batch_norm=False, log=quiet)
    assert summary["states"]["complete"] == 1


def test_a_configuration_refused_for_some_draws_only_is_searched(tmp_path):
    # cgan refuses clusters > 0; the draws with 0 train
    space = written(tmp_path / "s.toml", GAN.replace("METRIC", "d_loss").replace("clusters = 0\n", "")
                  .replace('loss = { choices = ["ns", "wgan-gp"] }', "clusters = { choices = [0, 5] }"))
    summary = run_search("cgan", space, out=tmp_path / "st", log=quiet)
    assert summary["states"] == {**summary["states"], "complete": 1, "pruned": 1}


# ------------------------------------------------------------------------------------------ §5 a cv folder

def test_a_search_refuses_a_cross_validations_folder_as_its_out(tmp_path):
    assert_ok(invoke("cv", "convae", "--folds", "2", "--dataset", "digits", *TINY_SET[:-1], "--epochs", "1",
                     "--out", tmp_path / "cvdir"))
    space = written(tmp_path / "s.toml", '[search]\ntrials = 1\n' + SEARCH_FIXED
                  + "epochs = 1\n[params]\nlr = { low = 1e-4, high = 1e-2, log = true }\n")
    out = assert_clean_error(invoke("search", "convae", "--space", space, "--out", tmp_path / "cvdir"), code=2)
    assert "is a cross-validation's folder (cv.json" in out
    assert not (tmp_path / "cvdir" / "journal.log").exists()


# ------------------------------------------------------------------------------------------ §6, §7 space files

def test_when_reading_a_fixed_key_says_it_is_fixed_not_undefined(tmp_path):
    space = written(tmp_path / "s.toml", '[search]\ntrials = 2\n' + SEARCH_FIXED + 'epochs = 1\nprior = "vampprior"\n'
                  "[params]\npseudo_inputs = { low = 2, high = 5, when = \"prior == 'vampprior'\" }\n")
    out = assert_clean_error(invoke("search", "hvae", "--space", space, "--out", tmp_path / "st"), code=2)
    assert "pseudo_inputs uses prior, which is in [fixed]" in out and "not defined above it" not in out
    assert 'prior = { choices = ["vampprior"] }' in out


@pytest.mark.parametrize("penalty", ["time_penalty = -1.0", "latent_penalty = -0.5\nlatent_key = \"latent_dim\""])
def test_a_negative_penalty_is_refused(tmp_path, penalty):
    space = written(tmp_path / "s.toml", f"[search]\ntrials = 2\n[objective]\n{penalty}\n" + SEARCH_FIXED
                  + "epochs = 1\n[params]\nlatent_dim = { low = 2, high = 4 }\n")
    out = assert_clean_error(invoke("search", "convae", "--space", space, "--out", tmp_path / "st"), code=2)
    assert "is negative" in out and not (tmp_path / "st").exists()


# ------------------------------------------------------------------------------------------ §8 messages

def test_another_models_key_in_a_space_is_said_to_be_that_models(tmp_path):
    space = written(tmp_path / "s.toml", '[search]\ntrials = 1\n' + SEARCH_FIXED
                  + 'epochs = 1\nprior = "vampprior"\n[params]\nlayers = { low = 1, high = 2 }\n')
    out = assert_clean_error(invoke("search", "vampprior", "--space", space, "--out", tmp_path / "st"), code=2)
    assert "layers is a key of hvae, not of vampprior" in out and "loggers" not in out
    # a fixed key is no helper: no `helper = true` hint for it
    space.write_text('[search]\ntrials = 1\n' + SEARCH_FIXED.replace('channels = [4, 8, 8]\nhidden = [16]\n', '')
                     + 'epochs = 1\nprior = "vampprior"\n[params]\nlr = { low = 1e-4, high = 1e-2, log = true }\n')
    out = assert_clean_error(invoke("search", "cgan", "--space", space, "--out", tmp_path / "st"), code=2)
    assert "prior is a key of hvae, not of cgan" in out and "helper" not in out


def test_cgans_clusters_says_it_takes_0_only():
    out = assert_ok(invoke("info", "cgan"))
    assert "refuses any value but 0" in " ".join(out.split())


def test_a_stopped_cross_validation_resumed_with_another_metric_says_what_differs(tmp_path):
    from zoo.errors import Interrupted
    from zoo.search import cv

    def stop_after_fold_1(line):
        if line.startswith("fold 1/2"):
            raise KeyboardInterrupt
    settings = dict(folds_k=2, dataset="digits", overrides={**TINY, "epochs": 1}, out=tmp_path / "o")
    with pytest.raises(Interrupted):
        cv.cross_validate("convae", **settings, log=stop_after_fold_1)
    with pytest.raises(ConfigError, match=r"another configuration or data: metric \('val_loss' in the folds, "
                                          r"'val_mse' now\)"):
        cv.cross_validate("convae", **settings, metric="mse")
