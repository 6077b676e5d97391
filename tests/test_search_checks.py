"""`zoo search` refuses what would waste every trial before the first one runs: an objective metric the
model does not record (any name metrics.jsonl shows is accepted), and a seed outside 0 .. 2**32-1
(`zoo cv` too)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import assert_clean_error, assert_ok, invoke, quiet, read_metrics

import zoo
from zoo.errors import ConfigError
from zoo.search import prepare, run_search

optuna = pytest.importorskip("optuna")

FIXED = """
[fixed]
dataset = "digits"
device = "cpu"
epochs = 1
"""
TINY = 'channels = [4, 8, 8]\nhidden = [16]\n'
PARAMS = "[params]\nlr = { low = 1e-3, high = 1e-2, log = true }\n"


def write_space(path: Path, *, metric: str | None = None, fixed: str = TINY, params: str = PARAMS,
                search: str = "") -> Path:
    objective = f'[objective]\nmetric = "{metric}"\nreduce = "last"\n' if metric else ""
    path.write_text(f"[search]\nstrategy = \"random\"\npruner = \"none\"\n{search}{objective}{FIXED}{fixed}{params}")
    return path


# ------------------------------------------------------------------------------------------ the objective metric

@pytest.mark.parametrize("model, metric, names", [
    ("convae", "nonexistent", "val_loss (or loss), val_mse (or mse)"),
    ("vae", "val_psnr",
     "val_loss (or loss), val_rec (or rec), val_kl (or kl), val_neg_elbo (or neg_elbo), val_mse (or mse)"),
    ("classifier", "mse", "val_loss (or loss), val_accuracy (or accuracy)"),
])
def test_a_metric_the_model_does_not_report_is_refused_before_any_trial_with_the_valid_names(
        tmp_path, model, metric, names):
    space = write_space(tmp_path / "m.toml", metric=metric)
    assert_clean_error(invoke("search", model, "--space", space, "--out", tmp_path / "s"),
                       f"the objective metric '{metric}' is not one that {model} reports", names, code=2)
    assert not (tmp_path / "s").exists()  # no study, no trial


@pytest.mark.parametrize("model, params, keys", [
    ("vae", "beta = { choices = [0.5, 1.0, 4.0] }", "the space varies beta, which changes what vae's loss measures"),
    ("iwae", "k = { choices = [1, 5] }\nbeta = { low = 0.5, high = 2.0 }",
     "the space varies beta, k, which change what iwae's loss measures"),
])
def test_trials_differing_in_what_the_loss_measures_are_not_scored_by_it_but_by_the_elbo(tmp_path, model, params,
                                                                                         keys):
    """A β-VAE's loss is rec + β·KL and an IWAE's the bound at its K: the smallest number would win, not
    the best model (a search over an IWAE's β once picked β = 1000, its 'bound' 360 nats below the true one)."""
    space = write_space(tmp_path / "b.toml", params=f"[params]\n{params}\n")
    assert_clean_error(invoke("search", model, "--space", space, "--out", tmp_path / "s"), keys,
                       'metric = "neg_elbo"', code=2)
    assert not (tmp_path / "s").exists()
    space = write_space(tmp_path / "b.toml", metric="neg_elbo", params=f"[params]\n{params}\n",
                        search="trials = 2\n")
    assert_ok(invoke("search", model, "--space", space, "--out", tmp_path / "s"))
    best = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert best["objective"]["metric"] == "val_neg_elbo"


@pytest.mark.parametrize("model, params, metric, said, alike", [
    ("vae", 'likelihood = { choices = ["bernoulli", "gaussian"] }', "neg_elbo",
     "the space varies likelihood, which changes what vae's neg_elbo measures", 'metric = "mse"'),
    ("iwae", "k = { choices = [2, 5] }", "iwae_k5", "the space varies k, which changes what iwae's iwae_k5 measures",
     'metric = "neg_elbo"'),  # (a k = 2 trial records no iwae_k5 at all)
    ("vae", "kl_warmup = { choices = [0, 50] }", "train_loss",  # the warm-up weighs the training loss only
     "the space varies kl_warmup, which changes what vae's train_loss measures", 'metric = "val_loss"'),
    ("hvae", "free_bits = { choices = [0.0, 4.0] }\nbeta = { choices = [0.5, 1.0] }", "train_loss",
     "the space varies beta, free_bits, which change what hvae's train_loss measures", 'metric = "val_neg_elbo"'),
    ("dae", 'noise = { choices = ["gaussian:0.05", "gaussian:0.8"] }', "loss",  # the lightest noise always won
     "the space varies noise, which changes what dae's loss measures", 'metric = "clean_mse"'),
    ("convae", 'binarize = { choices = ["none", "dynamic"] }', "mse",  # other images: every metric changes
     "the space varies binarize, which changes what convae's mse measures", "No metric compares them"),
])
def test_a_metric_a_varied_key_changes_is_refused_naming_one_that_compares(tmp_path, model, params, metric, said,
                                                                          alike):
    space = write_space(tmp_path / "v.toml", metric=metric, params=f"[params]\n{params}\n")
    assert_clean_error(invoke("search", model, "--space", space, "--out", tmp_path / "s"), said, alike, code=2)


def test_a_metric_better_when_higher_is_refused_as_an_objective_to_minimise(tmp_path):
    """A search minimises: scored by accuracy it would keep the chance-level classifier."""
    space = write_space(tmp_path / "a.toml", metric="val_accuracy")
    assert_clean_error(invoke("search", "classifier", "--space", space, "--out", tmp_path / "s"),
                       "val_accuracy is better when higher", 'metric = "loss"', code=2)
    assert not (tmp_path / "s").exists()


def test_trials_differing_in_a_warm_up_are_scored_by_their_validation_loss(tmp_path):
    """The warm-up weighs the KL in training only: the validation loss (at β) compares them."""
    space = write_space(tmp_path / "w.toml", params="[params]\nkl_warmup = { choices = [0, 50] }\n",
                        search="trials = 2\n")
    assert_ok(invoke("search", "vae", "--space", space, "--out", tmp_path / "s"))
    assert json.loads((tmp_path / "s" / "summary.json").read_text())["objective"]["metric"] == "val_loss"


def test_trials_of_different_bounds_or_betas_are_scored_by_the_iwae_k_figure_they_measure_alike(tmp_path):
    """The IWAE-K figure is taken at a prior weight of 1 whatever the bound or β trains: trials differing in
    them compare by it (only a varying k changes it), and by nothing the loss says."""
    params = '[params]\nbound = { choices = ["iwae", "ciwae"] }\nbeta = { choices = [0.5, 1.0] }\n'
    space = write_space(tmp_path / "b.toml", metric="iwae_k3", fixed=TINY + "k = 3\n", params=params,
                        search="trials = 2\n")
    assert_ok(invoke("search", "iwae", "--space", space, "--out", tmp_path / "s"))
    best = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert best["objective"]["metric"] == "val_iwae_k3" and best["states"]["complete"] == 2
    space = write_space(tmp_path / "l.toml", fixed=TINY + "k = 3\n", params=params)  # by the loss: refused
    assert_clean_error(invoke("search", "iwae", "--space", space, "--out", tmp_path / "l"),
                       "the space varies beta, bound, which change what iwae's loss measures", code=2)


def test_a_set_over_a_fixed_key_of_the_space_is_said(tmp_path):
    space = write_space(tmp_path / "f.toml", fixed=TINY + "beta = 4.0\n", search="trials = 1\n")
    out = assert_ok(invoke("search", "vae", "--space", space, "--set", "beta=2", "--out", tmp_path / "s"))
    assert "note: beta = 2.0 from the command line goes over the space's [fixed] beta = 4.0" in out
    assert 'beta = 2.0' in (tmp_path / "s" / "best.toml").read_text()


def test_a_key_searched_over_one_value_varies_nothing_and_is_not_refused(tmp_path):
    space = write_space(tmp_path / "one.toml", params="[params]\nbeta = { choices = [2.0] }\n",
                        search="trials = 1\n")
    assert_ok(invoke("search", "vae", "--space", space, "--out", tmp_path / "s"))


def test_a_default_metric_the_model_does_not_report_is_refused_with_the_valid_names(tmp_path):
    space = write_space(tmp_path / "gan.toml", fixed="", params="[params]\nlr = { low = 1e-4, high = 1e-3 }\n")
    assert_clean_error(invoke("search", "gan", "--space", space, "--out", tmp_path / "s"),
                       "the objective metric 'val_loss' (the default) is not one that gan reports",
                       "val_d_loss (or d_loss), val_g_loss (or g_loss)", code=2)


def test_a_third_party_plugins_metrics_are_those_its_validation_step_returns(tmp_path, tinyplug_installed):
    space = write_space(tmp_path / "t.toml", metric="mse", fixed="",
                        params="[params]\nlatent_dim = { low = 2, high = 4 }\n")
    assert_clean_error(invoke("search", "tinyae", "--space", space, "--out", tmp_path / "s"),
                       "the objective metric 'mse' is not one that tinyae reports",
                       "tinyae's metrics, as metrics.jsonl names them: val_loss (or loss), train_loss.", code=2)


def test_the_metric_is_checked_even_when_no_drawn_configuration_builds(tmp_path):
    # a stride of 8 in the second layer collapses digits' images: every draw fails, the fixed part alone builds
    stride = "[params]\nstride = { elements = [{ choices = [2] }, { choices = [8] }, { choices = [2] }] }\n"
    space = write_space(tmp_path / "m.toml", metric="nonexistent", params=stride)
    assert_clean_error(invoke("search", "convae", "--space", space, "--out", tmp_path / "s"),
                       "the objective metric 'nonexistent' is not one that convae reports", code=2)


def test_the_metric_of_a_model_that_needs_more_images_than_a_few_is_checked_before_any_trial(tmp_path):
    """A VampPrior with 50 pseudo-inputs cannot train on the probe's 4 images: the check was skipped, and every
    trial trained to its end before it was pruned for the misspelt name."""
    space = write_space(tmp_path / "v.toml", metric="psnr", fixed=TINY + "pseudo_inputs = 50\nlatent_dim = 4\n")
    assert_clean_error(invoke("search", "vampprior", "--space", space, "--out", tmp_path / "s"),
                       "the objective metric 'psnr' is not one that vampprior reports", "val_neg_elbo", code=2)
    assert not (tmp_path / "s").exists()  # no study, no trial

def test_a_training_metric_the_model_does_not_record_is_refused_with_every_valid_name(tmp_path):
    space = write_space(tmp_path / "m.toml", metric="train_mse")  # convae's training step returns its loss only
    assert_clean_error(invoke("search", "convae", "--space", space, "--out", tmp_path / "s"),
                       "the objective metric 'train_mse' is not one that convae reports",
                       "val_loss (or loss), val_mse (or mse), train_loss.", code=2)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("metric, key", [("val_loss", "val_loss"), ("loss", "val_loss"), ("val_mse", "val_mse"),
                                         ("mse", "val_mse"), ("train_loss", "train_loss")])
def test_a_metric_is_named_as_in_metrics_jsonl_or_short(tmp_path, metric, key):
    settings, _ = prepare("convae", write_space(tmp_path / "m.toml", metric=metric), out=tmp_path / "s")
    assert settings.metric == key


def test_val_loss_as_metrics_jsonl_names_it_scores_every_trial(tmp_path):
    # the case: `metric = "val_loss"` once trained every trial and then pruned each as invalid
    space = write_space(tmp_path / "m.toml", metric="val_loss")
    out = assert_ok(invoke("search", "convae", "--space", space, "--out", tmp_path / "s", "--trials", "2"))
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["states"]["complete"] == 2 and "invalid configuration" not in out
    assert summary["objective"]["metric"] == "val_loss" and "(val_loss " in out


def test_trials_can_be_scored_on_a_training_metric_the_trainer_records(tmp_path):
    space = write_space(tmp_path / "m.toml", metric="train_loss")
    out = assert_ok(invoke("search", "convae", "--space", space, "--out", tmp_path / "s", "--trials", "1"))
    assert "(train_loss " in out
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["objective"]["metric"] == "train_loss"
    zoo.train("convae", config=tmp_path / "s" / "best.toml", out=tmp_path / "run", log=quiet, progress=False)
    epoch = read_metrics(tmp_path / "run")[-1]
    best = summary["best"]["train_loss_last"]
    assert best == pytest.approx(epoch["train_loss"], rel=1e-5)
    # the training images' score, not the held-out one (the two can lie close after one epoch)
    assert abs(best - epoch["train_loss"]) < abs(best - epoch["val_loss"])


def test_trials_are_scored_on_the_named_metric(tmp_path):
    # bce training: the loss and the mse differ, and the trial's score must be the epoch's val_mse
    space = write_space(tmp_path / "m.toml", metric="val_mse", fixed=TINY + 'loss = "bce"\n')
    out = assert_ok(invoke("search", "convae", "--space", space, "--out", tmp_path / "s", "--trials", "1"))
    assert "(val_mse " in out
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["objective"]["metric"] == "val_mse"
    zoo.train("convae", config=tmp_path / "s" / "best.toml", out=tmp_path / "run", log=quiet, progress=False)
    epoch = read_metrics(tmp_path / "run")[-1]
    assert summary["best"]["val_mse_last"] == pytest.approx(epoch["val_mse"], rel=1e-5)
    assert abs(epoch["val_mse"] - epoch["val_loss"]) > 1e-3


# ------------------------------------------------------------------------------------------ seeds

@pytest.mark.parametrize("seed", ["-1", str(2**32), str(2**64)])
def test_search_and_cv_refuse_a_seed_outside_0_to_2_32_with_a_clean_error(tmp_path, seed):
    space = write_space(tmp_path / "s.toml")
    for args in (["search", "convae", "--space", space, "--out", tmp_path / "s"],
                 ["cv", "convae", "--dataset", "digits", "--folds", "2"]):
        assert_clean_error(invoke(*args, "--seed", seed), "--seed", "0<=x<=4294967295", code=2)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("seed", [-1, 2**32, 2**64, True, 1.5])
def test_the_python_api_refuses_a_seed_outside_0_to_2_32(tmp_path, seed):
    with pytest.raises(ConfigError, match="--seed must be a whole number from 0 to 4,294,967,295"):
        run_search("convae", write_space(tmp_path / "s.toml"), out=tmp_path / "s", seed=seed, log=quiet)
    assert not (tmp_path / "s").exists()


def test_a_space_files_seed_outside_0_to_2_32_is_refused_naming_it(tmp_path):
    space = write_space(tmp_path / "s.toml", search="seed = -1\n")
    assert_clean_error(invoke("search", "convae", "--space", space, "--out", tmp_path / "s"),
                       "[search] seed must be a whole number from 0 to 4,294,967,295", code=2)
    settings, _ = prepare("convae", write_space(tmp_path / "top.toml", search=f"seed = {2**32 - 1}\n"))
    assert settings.seed == 2**32 - 1  # the largest seed is fine


def test_a_search_on_a_folder_too_small_to_hold_out_images_is_refused_before_any_trial(tmp_path):
    from PIL import Image

    pics = tmp_path / "pics"
    pics.mkdir()
    for i in range(2):
        Image.new("L", (28, 28), 40 * i).save(pics / f"{i}.png")
    space = tmp_path / "f.toml"
    space.write_text('[search]\nstrategy = "random"\npruner = "none"\n[fixed]\n'
                     f'dataset = "folder:{pics}"\ndevice = "cpu"\nepochs = 1\n{TINY}{PARAMS}')
    assert_clean_error(invoke("search", "convae", "--space", space, "--out", tmp_path / "s"),
                       "cannot score trials on folder:", "training images", "--cv K")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("planted", ["summary.json", "config.json"])
def test_a_search_never_writes_over_files_it_did_not_write(tmp_path, planted):
    out = tmp_path / "mine"
    out.mkdir()
    (out / planted).write_text("{}")
    space = write_space(tmp_path / "s.toml")
    assert_clean_error(invoke("search", "convae", "--space", space, "--out", out, "--trials", 1), str(out))
    assert sorted(p.name for p in out.iterdir()) == [planted] and (out / planted).read_text() == "{}"


def test_a_latent_penalty_without_the_key_of_the_latent_size_is_refused_with_the_candidates(tmp_path):
    space = write_space(tmp_path / "m.toml", metric="loss")
    space.write_text(space.read_text().replace('reduce = "last"\n', 'reduce = "last"\nlatent_penalty = 0.01\n'))
    with pytest.raises(ConfigError, match="the latent penalty needs the config key that holds the latent size") as e:
        prepare("convae", space, out=tmp_path / "s")
    assert 'latent_key = "KEY"' in e.value.hint and "latent_dim" in e.value.hint
    with_key = 'latent_penalty = 0.01\nlatent_key = "latent_dim"\n'
    space.write_text(space.read_text().replace("latent_penalty = 0.01\n", with_key))
    settings, _ = prepare("convae", space, out=tmp_path / "s")
    assert (settings.latent_key, settings.latent_penalty) == ("latent_dim", 0.01)


# ------------------------------------------------------------------------------------------ the budget and the folds

def test_zero_trials_is_refused_not_taken_for_the_default(tmp_path):
    """--trials 0 ran the space's 20 trials (or the whole grid): 0 is falsy."""
    space = write_space(tmp_path / "s.toml")
    assert_clean_error(invoke("search", "convae", "--space", space, "--out", tmp_path / "s", "--trials", "0"),
                       "--trials (trials=) must be a whole number of at least 1, got 0", code=2)
    zero = write_space(tmp_path / "z.toml", search="trials = 0\n")
    with pytest.raises(ConfigError, match=r"the space's \[search\] trials must be at least 1, not 0"):
        prepare("convae", zero)
    assert not (tmp_path / "s").exists()


def test_a_grid_space_asking_for_part_of_its_grid_gets_that_many_trials(tmp_path):
    """A grid ran every point whatever the space's [search] trials said."""
    grid = write_space(tmp_path / "g.toml", search="trials = 2\n",
                       params="[params]\nlr = { choices = [1e-3, 2e-3, 3e-3, 4e-3] }\n")
    grid.write_text(grid.read_text().replace('strategy = "random"', 'strategy = "grid"'))
    assert prepare("convae", grid)[0].trials == 2
    assert prepare("convae", grid, trials=3)[0].trials == 3
    whole = write_space(tmp_path / "w.toml", params="[params]\nlr = { choices = [1e-3, 2e-3, 3e-3, 4e-3] }\n")
    whole.write_text(whole.read_text().replace('strategy = "random"', 'strategy = "grid"'))
    assert prepare("convae", whole)[0].trials == 4  # no budget said: the whole grid


def test_more_folds_than_images_is_refused_before_the_study_folder_is_made(tmp_path):
    """The study folder was made first, and the fix the message suggested was then refused as another study."""
    from PIL import Image

    pics = tmp_path / "pics"
    pics.mkdir()
    for i in range(8):
        Image.new("L", (28, 28), 30 * i).save(pics / f"{i}.png")
    space = write_space(tmp_path / "s.toml")
    args = ("search", "convae", "--space", space, "--out", tmp_path / "s", "--dataset", f"folder:{pics}",
            "--trials", "1")
    assert_clean_error(invoke(*args, "--cv", "7"), "7 folds is more than the 6 training image(s)")
    assert not (tmp_path / "s").exists()
    assert_ok(invoke(*args, "--cv", "3"))


def test_a_resume_that_leaves_out_cv_keeps_the_studys_folds(tmp_path):
    space = write_space(tmp_path / "s.toml")
    assert_ok(invoke("search", "convae", "--space", space, "--out", tmp_path / "s", "--trials", "1", "--cv", "2"))
    out = assert_ok(invoke("search", "convae", "--out", tmp_path / "s", "--trials", "2"))
    assert "resuming with the study's cv = 2" in out and "2-fold CV" in out
    assert json.loads((tmp_path / "s" / "summary.json").read_text())["trials"] == 2


def test_the_cv_command_a_cv_search_suggests_measures_its_best_trial_as_the_search_did(tmp_path):
    """The hint named `zoo cv ... --folds K` alone, which scored the loss at its best epoch: another figure."""
    space = write_space(tmp_path / "m.toml", metric="val_mse", fixed=TINY + 'loss = "bce"\n')
    out = assert_ok(invoke("search", "convae", "--space", space, "--out", tmp_path / "s", "--trials", "1",
                           "--cv", "2"))
    best = tmp_path / "s" / "best.toml"
    command = f"zoo cv convae --config {best} --folds 2 --metric val_mse --reduce last"
    assert f"to measure it as the search did: {command}" in out and command in best.read_text()
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    measured = invoke(*command.split()[1:], "--json")
    assert_ok(measured)
    cv = json.loads(measured.stdout)
    assert cv["metric"] == "val_mse" and cv["reduce"] == "last"
    assert cv["mean"] == pytest.approx(summary["best"]["value"], rel=1e-5)


def test_search_json_is_alone_on_stdout_and_the_trials_lines_on_stderr(tmp_path):
    """`zoo search --json | python -c 'json.load(...)'` failed: the study's and trials' lines came first."""
    space = write_space(tmp_path / "j.toml", fixed=TINY)
    result = invoke("search", "convae", "--space", space, "--out", tmp_path / "s", "--trials", "1", "--json")
    assert_ok(result)
    summary = json.loads(result.stdout)
    assert summary["trials"] == 1 and "trial 0" in result.stderr


def test_more_workers_than_trials_start_only_as_many_as_can_run_one(tmp_path):
    """--workers 8 --trials 2 started 8 processes (4 GB), six of which never ran a trial."""
    settings, _ = prepare("convae", write_space(tmp_path / "s.toml"), trials=2, workers=8)
    assert settings.workers == 2 and "--workers 8 for 2 trials: 2 worker(s) start" in settings.notes
    grouped, _ = prepare("convae", write_space(tmp_path / "s.toml"), trials=8, workers=8, vectorize=4)
    assert grouped.workers == 2


def test_a_worker_whose_search_is_gone_starts_no_trial(tmp_path):
    """Workers of a SIGKILLed `zoo search` trained the rest of the budget in the background, printing to no one."""
    from zoo.search.study import open_study
    from zoo.search.worker import Worker

    settings, space = prepare("convae", write_space(tmp_path / "s.toml"), out=tmp_path / "s", trials=2)
    open_study(settings, space, create=True)
    said = []
    orphan = Worker(settings, space, log=said.append, parent=-1)  # not this process's parent: the search is gone
    assert orphan.run() == 0 and orphan.counts() == (0, 0, 0)
    assert said == ["the zoo search that started this worker is gone: no new trials"]


def test_a_search_and_a_cross_validation_say_that_cuda_only_settings_act_on_cuda_only(tmp_path):
    """`zoo train` said so; a search's and a cross-validation's trainings accepted them without a word."""
    settings, _ = prepare("convae", write_space(tmp_path / "s.toml"), overrides={"cuda_graph": True, "bf16": True})
    assert "cuda_graph records the step on CUDA devices only; on cpu the step runs as without it" in settings.notes
    assert "bf16 autocasts to bfloat16 on CUDA devices only; on cpu the step runs as without it" in settings.notes
    out = assert_ok(invoke("cv", "convae", "--folds", "2", "--dataset", "digits", "--epochs", "1", "--set",
                           "channels=4,8,8", "--set", "hidden=16", "--set", "cuda_graph=true", "--device", "cpu"))
    assert "note: cuda_graph records the step on CUDA devices only" in out


# ------------------------------------------------------------------------------------------ from Python

@pytest.mark.parametrize("call, said, hint", [
    ({"trials": "3"}, "--trials (trials=) must be a whole number of at least 1, got '3'", ""),
    ({"trials": 1.7}, "--trials (trials=) must be a whole number of at least 1, got 1.7", ""),
    ({"cv": "2"}, "--cv (cv=) must be a whole number", ""),
    ({"workers": "2"}, "--workers (workers=) must be a whole number of at least 1", ""),
    ({"heartbeat": "5"}, "--heartbeat (heartbeat=), in seconds, must be a whole number", ""),
    ({"vectorize": 2.0}, "--vectorize (vectorize=) must be a whole number", ""),
    ({"timeout": "5"}, "--timeout (timeout=) must be a positive number of seconds, got '5'", ""),
    ({"sampler": "random"}, "zoo.run_search has no option sampler=", "Write strategy="),
    ({"metric": "mse"}, "zoo.run_search has no option metric=", "[objective] metric"),
    ({"set": {"patience": 3}}, "zoo.run_search has no option set=", "keywords (epochs=5) or in overrides="),
    ({"log": "tensorboard"}, "log= takes a function of one text (such as print), not 'tensorboard'",
     "loggers='tensorboard'"),
    ({"log": None}, "log= takes a function of one text", "zoo.console.quiet"),
])
def test_a_python_call_of_run_search_that_does_not_fit_it_is_one_message_and_begins_no_study(tmp_path, call, said,
                                                                                             hint):
    """Raw TypeErrors (trials="3"), options taken for unknown config keys (sampler=), a log= that is a logger's
    name failing after the study was recorded, so that the corrected call was refused as another search."""
    from zoo.search import run_search

    space = write_space(tmp_path / "s.toml")
    with pytest.raises(ConfigError) as e:
        run_search("convae", space, out=tmp_path / "s", **call)
    assert said in e.value.message and hint in (e.value.hint or "")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("space, said", [
    ('[objective]\nlatent_penalty = 0.01\nlatent_key = "hidden"\n', "reads 'hidden', which is not a whole number"),
    ("[params]\nlatent_dim = { low = 2, high = 4, step = 10 }\n",
     "latent_dim: step 10 does not divide the range 2..4: it would be searched as 2..2"),
    ("[params]\nlr = { low = 0.001, high = 0.01, step = 0.004 }\n", "step 0.004 does not divide the range"),
])
def test_a_space_that_would_search_other_than_it_says_is_refused_before_any_trial(tmp_path, space, said):
    """A list as the latent size failed after the first trial (a raw TypeError), a flag weighed nothing; a step
    that does not divide its range had Optuna narrow it with a warning."""
    path = tmp_path / "s.toml"
    path.write_text(f"[search]\nstrategy = \"random\"\n{FIXED}{TINY}{space}"
                    + ("" if "[params]" in space else PARAMS))
    assert_clean_error(invoke("search", "convae", "--space", path, "--out", tmp_path / "s"), said, code=2)
    assert not (tmp_path / "s").exists()


def test_a_space_given_as_a_dict_is_said_to_be_a_file():
    from zoo.search import run_search

    with pytest.raises(ConfigError, match="a search space is a TOML file or the name of an example space, not a dict"):
        run_search("convae", {"params": {"lr": {"low": 1e-4, "high": 1e-2}}}, dataset="digits")
