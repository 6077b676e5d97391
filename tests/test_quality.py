"""Classifier-feature FID, KID, precision and recall."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from conftest import TINY, quiet
from zoo.errors import ConfigError
from zoo.analysis.quality import (frechet_distance, kernel_inception_distance, kid_subset_size, precision_recall,
                                  spread_ratio)


def test_frechet_distance_of_gaussians():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(20000, 4)), rng.normal(size=(20000, 4))
    assert frechet_distance(a, b) < 0.01
    shifted = rng.normal(loc=2.0, size=(20000, 4))  # mean moved by 2 in each of 4 dims: 16
    assert frechet_distance(a, shifted) == pytest.approx(16, rel=0.02)
    wide = rng.normal(scale=2.0, size=(20000, 4))  # Tr(1 + 4 - 2·2) = 1 per dim
    assert frechet_distance(a, wide) == pytest.approx(4, rel=0.05)


def test_kid_is_near_zero_for_one_distribution_and_positive_otherwise():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(3000, 8)), rng.normal(size=(3000, 8))
    same, _ = kernel_inception_distance(a, b, subsets=10, subset_size=500)
    other, _ = kernel_inception_distance(a, b + 1.0, subsets=10, subset_size=500)
    assert abs(same) < 0.05 and other > 1.0


def test_kid_subsets_hold_at_most_half_the_images_so_their_spread_is_not_zero():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(1000, 8)), rng.normal(loc=0.3, size=(1000, 8))
    assert kid_subset_size(1000) == 500 and kid_subset_size(10_000) == 1000
    _, spread = kernel_inception_distance(a, b)  # subsets of all 1,000 would all be one set: spread 0
    assert spread > 0
    _, whole = kernel_inception_distance(a, b, subsets=5, subset_size=1000)
    assert whole < 1e-12  # the same set every time: only rounding differs


def test_kid_of_too_few_images_is_one_clear_error():
    with pytest.raises(ConfigError, match="at least 4 images"):
        kernel_inception_distance(np.zeros((3, 2)), np.ones((3, 2)))


def test_precision_and_recall_tell_unrealistic_samples_from_dropped_modes():
    """Precision: how many samples fall on the data's manifold; recall: how much of it they cover."""
    rng = np.random.default_rng(3)
    real = rng.normal(size=(2000, 2))
    same = precision_recall(real, rng.normal(size=(2000, 2)))
    assert min(same) > 0.9  # one distribution: nearly all of each inside the other's manifold
    one_mode = rng.normal(size=(2000, 2)) * 0.3 + np.array([1.0, 0.0])  # all realistic, a small part covered
    precision, recall = precision_recall(real, one_mode)
    assert precision > 0.95 and recall < 0.5
    off = rng.normal(size=(2000, 2)) + np.array([12.0, 0.0])  # nothing like the data
    precision, recall = precision_recall(real, off)
    assert precision < 0.05 and recall < 0.05
    with pytest.raises(ConfigError, match="more than 3 images"):
        precision_recall(real[:3], real[:3])


def test_sample_quality_of_a_vae_with_a_feature_network(tmp_path):
    feats = zoo.train("classifier", dataset="digits", epochs=1, out=tmp_path / "feat", log=quiet, progress=False,
                      **TINY).run_dir
    vae = zoo.train("vae", dataset="digits", epochs=1, out=tmp_path / "vae", log=quiet, progress=False,
                    **TINY).run_dir
    result = zoo.api.sample_quality(vae, features=str(feats), n=300)
    assert result["images"] == 300
    assert result["samples_vs_test"]["fid"] > result["floor_test_vs_train"]["fid"] >= 0
    assert "not comparable to Inception" in result["note"]
    for pair in ("samples_vs_test", "floor_test_vs_train"):  # subsets of 150 of the 300 images
        assert result[pair]["kid_subset_size"] == 150 and result[pair]["kid_std"] > 0
        assert 0 <= result[pair]["precision"] <= 1 and 0 <= result[pair]["recall"] <= 1
    assert result["floor_test_vs_train"]["recall"] > result["samples_vs_test"]["recall"]  # 1 epoch covers less


def test_a_binarised_run_is_measured_in_grey_levels_so_its_floor_is_the_grey_runs(tmp_path):
    """Trained on binarised pixels, a model samples pixel probabilities: they, the test and the training images
    are all compared in grey levels, so the floor is the same as for a run trained on the grey images (before,
    binarised test images against grey training images gave MNIST a floor of 73)."""
    feats = zoo.train("classifier", dataset="digits", epochs=1, out=tmp_path / "feat", log=quiet, progress=False,
                      **TINY).run_dir
    floors = {}
    for binarize in ("none", "dynamic"):
        run = zoo.train("vae", dataset="digits", epochs=1, out=tmp_path / binarize, log=quiet, progress=False,
                        binarize=binarize, **TINY).run_dir
        result = zoo.api.sample_quality(run, features=str(feats), n=300)
        floors[binarize] = result["floor_test_vs_train"]["fid"]
        assert ("binarised" in result["pixels"]) == (binarize == "dynamic")
    assert floors["dynamic"] == pytest.approx(floors["none"])


def test_samples_nearly_all_alike_are_said_to_be_whatever_their_precision(tmp_path):
    """Blank samples, one point in feature space near some real image, scored a precision of 1.000 unwarned."""
    import torch

    feats = zoo.train("classifier", dataset="digits", epochs=1, out=tmp_path / "feat", log=quiet, progress=False,
                      **TINY).run_dir
    rng = np.random.default_rng(4)
    real = rng.normal(size=(2000, 8))
    assert spread_ratio(rng.normal(size=(2000, 8)), real) == pytest.approx(1.0, abs=0.1)  # as varied as the data
    assert spread_ratio(rng.normal(size=(2000, 8)) * 0.5, real) == pytest.approx(0.25, abs=0.03)
    assert np.isnan(spread_ratio(np.full((50, 8), np.nan), real)) and np.isnan(spread_ratio(real[:1], real))
    vae = zoo.train("vae", dataset="digits", epochs=1, out=tmp_path / "vae", log=quiet, progress=False,
                    **TINY).run_dir
    run = zoo.load(vae)
    with torch.no_grad():  # a decoder that draws one grey image whatever the code
        for name, parameter in run.model.named_parameters():
            if name.startswith("dec"):
                parameter.zero_()
    blank = zoo.api.sample_quality(run, features=str(feats), n=300, save=False)
    assert blank["samples_spread"] < 1e-6
    assert blank["warning"].startswith("the samples are nearly all alike: their features spread 0.0% as widely")


def test_fid_over_seeds_gives_each_seeds_figures_and_their_median(tmp_path):
    """One FID moves by a fifth of its value between seeds: --fid-seeds N measures N of them."""
    import json
    import statistics

    from conftest import assert_ok, invoke

    feats = zoo.train("classifier", dataset="digits", epochs=1, out=tmp_path / "feat", log=quiet, progress=False,
                      **TINY).run_dir
    vae = zoo.train("vae", dataset="digits", epochs=1, out=tmp_path / "vae", log=quiet, progress=False,
                    **TINY).run_dir
    single = [zoo.api.sample_quality(vae, features=str(feats), n=200, seed=s, save=False)["samples_vs_test"]["fid"]
              for s in (4, 5, 6)]
    out = assert_ok(invoke("eval", vae, "--fid", "--features", feats, "--fid-n", "200", "--fid-seeds", "3",
                           "--no-progress"))
    saved = json.loads((vae / "quality.json").read_text())
    assert saved["seed"] == 0 and saved["over_seeds"]["seeds"] == [0, 1, 2]
    over = zoo.api.sample_quality(vae, features=str(feats), n=200, seed=4, seeds=3, save=False)["over_seeds"]
    # to the last digit: the test images' features, measured once for all seeds, are each seed's alone would be
    assert over["fid"] == single and over["median_fid"] == pytest.approx(statistics.median(single))
    assert "FID of seeds 0-2: " in out and f"median {saved['over_seeds']['median_fid']:.3f}" in out


def test_a_feature_network_of_other_classes_measures_no_class_accuracy(tmp_path):
    """Digits in class folders zero..nine sort as eight, five, four, ...: its class 0 is not the run's class 0, and
    a network right on 88 % of its own images was said to be 9 % right, 'train it longer'."""
    import torch
    from PIL import Image

    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    data = zoo.load_dataset("digits")
    for i, (x, y) in enumerate(zip(data.train_x[:400], data.train_y[:400])):
        pixels = x[0] if x.dtype == torch.uint8 else (x[0] * 255).round().to(torch.uint8)
        (tmp_path / "words" / names[int(y)]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels.numpy()).save(tmp_path / "words" / names[int(y)] / f"{i}.png")
    feats = zoo.train("classifier", dataset=f"folder:{tmp_path / 'words'}", epochs=1, out=tmp_path / "feat",
                      log=quiet, progress=False, **TINY).run_dir
    vae = zoo.train("vae", dataset="digits", epochs=1, out=tmp_path / "vae", log=quiet, progress=False,
                    **TINY).run_dir
    result = zoo.api.sample_quality(vae, features=str(feats), n=300, save=False)
    assert "feature_network_test_accuracy" not in result and "class_accuracy" not in result
    assert "the feature network's classes (eight, five, four, nine, one, ...) are not the run's (0, 1, 2, 3, 4, ...)" \
        in result["warning"] and "train it longer" not in result["warning"]
    assert result["samples_vs_test"]["fid"] > 0  # measured in its features all the same


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """A digits feature network, a VAE and a ConvAE of digits."""
    root = tmp_path_factory.mktemp("measured")
    models = {"feat": "classifier", "vae": "vae", "ae": "convae"}
    return {name: zoo.train(model, dataset="digits", epochs=1, out=root / name, log=quiet, progress=False,
                            **TINY).run_dir for name, model in models.items()}


def test_a_quick_look_is_not_written_over_a_fuller_measurement_of_the_same_weights(measured):
    """--fid-n 100 replaced a kept measurement of 10,000 images over 5 seeds without a word."""
    import json

    from conftest import assert_ok, invoke

    vae, feats = measured["vae"], str(measured["feat"])
    full = zoo.api.sample_quality(vae, features=feats, n=200, seeds=2)
    kept = (vae / "quality.json").read_bytes()
    look = zoo.api.sample_quality(vae, features=feats, n=100)
    assert "written" not in look and look["kept"].endswith(
        "holds a fuller measurement of these weights (200 images, 2 seeds): this one (100 images) is not written "
        "over it")
    assert (vae / "quality.json").read_bytes() == kept
    out = invoke("eval", vae, "--fid", "--features", feats, "--fid-n", "200", "--no-progress")  # one seed of two
    assert "is not written over it" in assert_ok(out) and (vae / "quality.json").read_bytes() == kept
    saved = json.loads(kept)  # which weights and which feature network it measured
    digest = zoo.runs.checkpoint.weights_digest
    assert saved["weights_digest"] == digest(vae / "model.safetensors")
    assert saved["feature_network_digest"] == digest(measured["feat"] / "model.safetensors")
    assert saved["feature_network_dataset"] == "digits"
    assert saved["over_seeds"]["fid"][0] == full["samples_vs_test"]["fid"]
    other = {**saved, "images": 300, "other_images": "digits holds other test images than it had (as many)"}
    (vae / "quality.json").write_text(json.dumps(other))  # as measured with --data-dir on other files
    assert "other images" in zoo.compare([vae]).runs[0].notes[-1]  # not shown as the run's FID
    assert "written" in zoo.api.sample_quality(vae, features=feats, n=100)  # its own images replace them
    (vae / "quality.json").write_bytes(kept)
    shown = zoo.compare([vae, measured["ae"]], "test_classifier_fid")  # a user's FID, as the catalogue's is
    assert shown.runs[0].test_metrics["classifier_fid"] == saved["samples_vs_test"]["fid"]
    assert any("classifier_ figures from quality.json (200 images" in n for n in shown.runs[0].notes)
    assert "classifier_fid" not in shown.runs[1].test_metrics


def test_fid_options_are_checked_before_any_sampling(measured, tmp_path):
    """A numpy seed was a TypeError deep in torch; a quality.json that could not be written was found after all the
    sampling; the last of several seeds past the largest was refused as a `--seed` the caller never gave."""
    from conftest import assert_clean_error, invoke

    vae, feats = measured["vae"], str(measured["feat"])
    same = [zoo.api.sample_quality(vae, features=feats, n=100, seed=s, save=False)["samples_vs_test"]["fid"]
            for s in (3, np.int64(3))]
    assert same[0] == same[1]
    with pytest.raises(ConfigError, match="the last seed measured"):
        zoo.api.sample_quality(vae, features=feats, n=100, seed=2**32 - 1, seeds=2, save=False)
    blocked = Path(shutil.copytree(vae, tmp_path / "blocked"))
    (blocked / "quality.json").unlink(missing_ok=True)
    (blocked / "quality.json").mkdir()
    assert_clean_error(invoke("eval", blocked, "--fid", "--features", feats, "--fid-n", "100", "--progress"),
                       "quality.json is a folder")
    ae = invoke("eval", measured["ae"], "--fid", "--features", feats, "--fid-n", "100")
    assert_clean_error(ae, "model 'convae' cannot sample", "--sampler gmm")
    assert_clean_error(invoke("eval", measured["feat"], "--fid", "--features", feats, "--sampler", "gmm"),
                       "decodes no latent codes")


def test_too_few_images_and_another_data_sets_features_are_said(measured, tmp_path, capsys):
    """A folder of 4 test images gave FID, KID, precision and recall of 4 images as results; a feature network of
    another data set measured without a word."""
    from PIL import Image

    data = zoo.load_dataset("digits")
    for i, (x, y) in enumerate(zip(data.train_x[:120], data.train_y[:120])):
        (tmp_path / "few" / str(int(y))).mkdir(parents=True, exist_ok=True)
        pixels = x[0] if x.dtype == torch.uint8 else (x[0] * 255).round().to(torch.uint8)
        Image.fromarray(pixels.numpy()).save(tmp_path / "few" / str(int(y)) / f"{i}.png")
    few = zoo.train("vae", dataset=f"folder:{tmp_path / 'few'}", epochs=1, out=tmp_path / "vae", log=quiet,
                    progress=False, **TINY).run_dir
    with pytest.raises(ConfigError, match="test and .* training images: FID, KID, precision and recall of fewer than "
                                          "100 images say nothing"):
        zoo.api.sample_quality(few, features=str(measured["feat"]), save=False)
    assert "was trained on digits, the run on folder:" in capsys.readouterr().err
