"""`zoo eval` answers quickly by default, shows progress when it is slow, and says what to do when --fid
has no feature network (issue 12: a newcomer's frictions)."""

import json
import re

import pytest

import zoo
import zoo.analysis.metrics
from conftest import TINY, assert_clean_error, assert_ok, invoke, quiet, stopped_run


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval-frictions") / "vae"
    zoo.train("vae", dataset="digits", epochs=1, latent_dim=2, out=out, log=quiet, progress=False, **TINY)
    return out


@pytest.fixture(scope="module")
def features_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval-frictions") / "features"
    zoo.train("classifier", dataset="digits", epochs=1, out=out, log=quiet, progress=False, **TINY)
    return out


def test_plain_eval_of_a_vae_has_no_iwae_figure(vae_run):
    result = invoke("eval", vae_run, "--no-progress")
    output = assert_ok(result)
    assert "neg_elbo_nats" in output and "mse" in output
    assert "iwae" not in output
    assert not any("iwae" in k for k in json.loads((vae_run / "eval.json").read_text())["metrics"])


def test_iwae_k_opts_in_and_the_metric_names_k(vae_run):
    output = assert_ok(invoke("eval", vae_run, "--iwae-k", "5", "--no-progress"))
    assert re.search(r"nll_iwae_k5_nats\s+\d", output), output


@pytest.mark.parametrize("k", [0, -5, "50", 5.0, 100_001])
def test_an_iwae_k_that_is_not_a_count_of_samples_is_refused_not_taken_for_off(vae_run, k):
    with pytest.raises(zoo.ZooError, match="k, a whole number of importance samples from 1 to 100,000"):
        zoo.evaluate(vae_run, options={"iwae_k": k}, limit=8, save=False)
    assert_clean_error(invoke("eval", vae_run, "--iwae-k", "0"), "not in the range 1<=x<=100000", code=2)


def test_slow_eval_shows_progress_on_stderr_never_in_json(vae_run, monkeypatch):
    # The real bar and its real delay, with the delay shortened below this evaluation's length.
    monkeypatch.setattr(zoo.analysis.metrics, "PROGRESS_AFTER_S", 0.05)
    result = invoke("eval", vae_run, "--iwae-k", "50", "--device", "cpu", "--json", "--progress")
    assert_ok(result)
    assert "eval test" in result.stderr and "img" in result.stderr, result.stderr
    assert "nll_iwae_k50_nats" in json.loads(result.stdout)["metrics"]  # stdout is JSON only


def test_quick_eval_draws_no_progress_bar(vae_run):
    result = invoke("eval", vae_run, "--progress")  # well under zoo.analysis.metrics.PROGRESS_AFTER_S
    assert_ok(result)
    assert "eval test" not in result.stderr, result.stderr


def test_fid_without_a_catalogued_feature_network_says_how_to_give_one(vae_run):
    assert_clean_error(invoke("eval", vae_run, "--fid"), "no feature network is catalogued for digits",
                       "--features RUN", "zoo train classifier --dataset digits")


def test_kid_spread_is_not_zero_at_small_n_and_its_subsets_are_said(vae_run, features_run):
    result = invoke("eval", vae_run, "--fid", "--features", features_run, "--fid-n", "300", "--no-progress")
    output = assert_ok(result)
    assert "subsets of 150 images" in output, output
    spreads = re.findall(r"KID \S+ ± (\S+)", output)
    assert len(spreads) == 2 and all(float(s) > 0 for s in spreads), output
    saved = json.loads(next(vae_run.glob("quality.json")).read_text())["samples_vs_test"]
    assert saved["kid_std"] > 0 and saved["kid_subset_size"] == 150 and saved["kid_subsets"] == 100


def test_fid_shows_its_progress_on_stderr_never_in_json(vae_run, features_run, monkeypatch):
    monkeypatch.setattr(zoo.analysis.metrics, "PROGRESS_AFTER_S", 0)  # drawn at once: this FID of 300 images is quick
    result = invoke("eval", vae_run, "--fid", "--features", features_run, "--fid-n", "300", "--device", "cpu",
                    "--json", "--progress")
    assert_ok(result)
    assert "fid: " in result.stderr and "step" in result.stderr, result.stderr
    assert json.loads(result.stdout)["samples_vs_test"]["kid_subset_size"] == 150


def test_fid_states_the_feature_networks_test_accuracy_and_warns_when_it_is_weak(vae_run, features_run):
    (vae_run / "quality.json").unlink(missing_ok=True)  # a fuller one of another test would be kept over this one
    output = assert_ok(invoke("eval", vae_run, "--fid", "--features", features_run, "--fid-n", "200", "--no-progress"))
    saved = json.loads((vae_run / "quality.json").read_text())
    accuracy = saved["feature_network_test_accuracy"]
    assert 0.0 <= accuracy <= 1.0
    assert f"(test accuracy {accuracy:.1%} on these 200 test images)" in output
    # one epoch on a few hundred digits: far from the 90 % below which the figures are said to mean little
    assert accuracy < 0.9 and "warning: the feature network classifies only" in output
    assert "classifies only" in saved["warning"]


def test_a_run_that_has_not_finished_an_epoch_is_measured_with_a_note(vae_copy, tmp_path):
    early = stopped_run("vae", tmp_path / "early")
    out = assert_ok(invoke("eval", early, "--no-progress"))
    assert f"note: {early} has not finished an epoch: these are its initial, untrained weights" in out
    assert f"zoo train --resume {early}" in out
    assert "initial, untrained weights" not in assert_ok(invoke("eval", vae_copy, "--no-progress"))
    (vae_copy / "metrics.jsonl").unlink()  # a trained run whose training log is lost: its checkpoint says
    assert "initial, untrained weights" not in assert_ok(invoke("eval", vae_copy, "--no-progress"))


def test_zoo_info_names_a_model_with_the_right_article(vae_copy, tmp_path):
    assert f"{vae_copy}: a vae run" in assert_ok(invoke("info", vae_copy))
    iwae = tmp_path / "iwae"
    zoo.train("iwae", dataset="digits", epochs=1, latent_dim=2, k=2, out=iwae, log=quiet, progress=False, **TINY)
    assert f"{iwae}: an iwae run" in assert_ok(invoke("info", iwae))


def test_a_long_bound_of_bundled_weights_first_says_the_figures_they_ship(tmp_path, monkeypatch, capsys):
    """`zoo eval iwae50-mnist --iwae-k 1000` measured half an hour again without a word that the weights ship
    that very figure, which `zoo info` and `zoo compare` read at once."""
    import zoo.tasks.evaluation as evaluation
    from conftest import write_idx_set

    monkeypatch.setattr(evaluation, "LONG_BOUND", 10)  # the note's threshold, reached by 12 images x k=2
    write_idx_set(tmp_path / "data" / "mnist", n_train=40, n_test=12)
    zoo.evaluate("piwae-mnist", options={"iwae_k": 2}, data_dir=tmp_path / "data", save=False)
    err = capsys.readouterr().err
    shipped = zoo.registry.weights()["piwae-mnist"]["metrics"]["nll_iwae_k1000_nats"]
    assert "note: piwae-mnist ships its evaluation of the whole test split (" in err
    assert f"nll_iwae_k1000_nats {shipped:.5g}" in err and "`zoo info piwae-mnist` shows it" in err


def test_fid_of_a_run_on_images_without_classes_says_a_feature_network_comes_from_elsewhere(tmp_path):
    """It advised `zoo train classifier` on the same folder, which a classifier refuses (one class)."""
    from PIL import Image

    (tmp_path / "flat").mkdir()
    for i in range(40):
        Image.new("L", (28, 28), 6 * i).save(tmp_path / "flat" / f"{i}.png")
    zoo.train("vae", dataset=f"folder:{tmp_path / 'flat'}", epochs=1, out=tmp_path / "run", log=quiet, progress=False,
              **TINY)
    out = assert_clean_error(invoke("eval", tmp_path / "run", "--fid"), "its images have no classes to train one on",
                             "--features RUN")
    assert "zoo train classifier" not in out
