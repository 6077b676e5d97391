"""`zoo cv`: scikit-learn folds of the training set, mean ± std, per-fold table, holdout beside it."""

from __future__ import annotations

import json
import statistics

import pytest
import torch
from conftest import TINY, TINY_SET, assert_clean_error, assert_ok, invoke, is_png

from zoo.search import cv
from zoo.training.fit import fit
from zoo.data import load_dataset
from zoo.errors import ConfigError


def test_folds_partition_the_whole_training_set():
    data = load_dataset("digits")
    folds = list(cv.folds(data, 4, seed=0))
    n = data.train_x.shape[0] + data.val_x.shape[0]
    assert len(folds) == 4
    val_sizes = [f.val_x.shape[0] for f in folds]
    assert sum(val_sizes) == n and max(val_sizes) - min(val_sizes) <= 1
    for f in folds:
        assert f.train_x.shape[0] + f.val_x.shape[0] == n
        assert torch.equal(f.test_x, data.test_x)  # the test set is never part of a fold
    # Each image is validated on exactly once: the validation sets' images are the whole set.
    everything = torch.cat([data.train_x, data.val_x]).flatten(1).sum(1).sort().values
    validated = torch.cat([f.val_x for f in folds]).flatten(1).sum(1).sort().values
    assert torch.equal(everything, validated)
    again = list(cv.folds(data, 4, seed=0))
    assert all(torch.equal(a.val_x, b.val_x) for a, b in zip(folds, again))  # reproducible


def test_dynamically_binarised_folds_validate_on_binary_images_and_train_on_grey_ones():
    """Folds of a dynamically binarised set were cut from grey training and binarised validation images
    pooled: about 90 % of each fold's validation images were grey, 10 % of its training images binary."""
    binary = lambda x: bool(((x == 0) | (x == 255)).all())  # noqa: E731
    grey = load_dataset("digits")
    run_split = load_dataset("digits", binarize="dynamic")
    for f in cv.folds(grey, 3, seed=0, binarize="dynamic"):
        assert f.binarize == "dynamic" and binary(f.val_x) and binary(f.test_x)
        assert not any(binary(x) for x in f.train_x)  # grey levels, for the engine to draw anew every batch
        assert torch.equal(f.test_x, run_split.test_x)  # the test set binarised as `zoo train` binarises it
    static = list(cv.folds(grey, 3, seed=0, binarize="static"))
    assert all(binary(f.train_x) and binary(f.val_x) for f in static)


def test_cross_validate_reports_mean_std_and_each_fold(tmp_path):
    r = cv.cross_validate("convae", folds_k=3, dataset="digits", overrides={**TINY, "epochs": 1},
                          compare_holdout=True, out=tmp_path / "cv")
    values = [f["value"] for f in r["per_fold"]]
    assert len(values) == 3 and all(0 < v < 1 for v in values)
    assert r["mean"] == pytest.approx(statistics.fmean(values))
    assert r["std"] == pytest.approx(statistics.stdev(values))
    assert [f["val_images"] for f in r["per_fold"]] == [480, 479, 479]
    assert r["holdout"]["val_images"] == 144 and r["holdout"]["train_images"] == 1294
    assert all(f["test"]["loss"] > 0 for f in r["per_fold"])
    saved = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert saved["mean"] == pytest.approx(r["mean"]) and len(saved["per_fold"]) == 3
    assert is_png(tmp_path / "cv" / "cv.png")


def test_cv_command_prints_the_table(tmp_path):
    out = assert_ok(invoke("cv", "convae", "--folds", "2", "--dataset", "digits", *TINY_SET[:-1], "--epochs", "1",
                           "--compare-holdout", "--out", tmp_path / "o"))
    assert "2-fold cross-validation" in out
    assert "mean ± std over 2 folds" in out and "holdout split" in out
    lines = [ln for ln in out.splitlines() if ln.startswith("  ") and ln.split()[0] in ("1", "2", "holdout")]
    assert len(lines) == 3
    assert (tmp_path / "o" / "cv.json").is_file()


def test_cv_never_writes_over_an_earlier_cross_validation_or_into_a_run(tmp_path):
    """`zoo cv --out` replaced an earlier cv.json (of another model) without a word, and wrote into run folders."""
    args = ("cv", "convae", "--folds", "2", "--dataset", "digits", *TINY_SET[:-1], "--epochs", "1")
    assert_ok(invoke(*args, "--out", tmp_path / "o"))
    kept = (tmp_path / "o" / "cv.json").read_bytes()
    assert_clean_error(invoke(*args, "--out", tmp_path / "o"), "holds an earlier cross-validation (cv.json, cv.png)")
    assert (tmp_path / "o" / "cv.json").read_bytes() == kept
    run = tmp_path / "run"
    assert_ok(invoke("train", "convae", "--dataset", "digits", *TINY_SET, "--epochs", "1", "--out", run))
    assert_clean_error(invoke(*args, "--out", run), "is a run folder")
    assert not (run / "cv.json").exists()
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "space.toml").write_text("[params]\n")  # a search's folder
    assert_clean_error(invoke(*args, "--out", tmp_path / "study"), "is a search's study folder")


def test_cv_scores_the_metric_asked_for_and_draws_its_curves(tmp_path):
    r = cv.cross_validate("convae", folds_k=2, dataset="digits", overrides={**TINY, "epochs": 1, "loss": "bce"},
                          metric="mse", reduce="last", out=tmp_path / "cv")
    assert r["metric"] == "val_mse" and r["pixels"] == "grey levels"
    for fold in r["per_fold"]:  # each fold's value is its last epoch's val_mse, the curve cv.png draws
        assert fold["value"] == fold["curve"][-1]["val_mse"] != fold["curve"][-1]["val_loss"]
        assert fold["test"]["mse"] > 0
    assert "test_mean" in r and is_png(tmp_path / "cv" / "cv.png")


def test_the_best_of_a_metric_better_when_higher_is_its_highest_value(tmp_path):
    """A classifier's accuracy was reduced by its minimum: the cv mean was the untrained model's 0.25."""
    r = cv.cross_validate("classifier", folds_k=2, dataset="digits", overrides={**TINY, "epochs": 3, "lr": 0.01},
                          metric="accuracy")
    for fold in r["per_fold"]:
        curve = [epoch["val_accuracy"] for epoch in fold["curve"]]
        assert fold["value"] == max(curve) > min(curve)

def test_cv_takes_its_model_from_a_config_file_that_names_it_as_train_does(tmp_path):
    config = tmp_path / "best.toml"
    config.write_text('model = "convae"\ndataset = "digits"\nepochs = 1\nchannels = [4, 8, 8]\nhidden = [16]\n')
    out = assert_ok(invoke("cv", "--config", config, "--folds", "2", "--device", "cpu"))
    assert "\nconvae on digits (grey levels): 2-fold cross-validation" in out
    assert_clean_error(invoke("cv", "--folds", "2"), "which model? e.g. `zoo cv NAME`", "Installed: ")


def test_cv_mistakes_are_clean_errors():
    assert_clean_error(invoke("cv", "convae", "--folds", "1", "--dataset", "digits", *TINY_SET[:-1]),
                       "--folds (folds_k=) must be a whole number of at least 2, got 1")
    assert_clean_error(invoke("cv", "convae", "--folds", "3", "--dataset", "digits", "--set", "latnt_dim=3"),
                       "unknown key 'latnt_dim'")
    with pytest.raises(ConfigError, match="more than"):
        list(cv.folds(load_dataset("digits"), 5000))



@pytest.mark.parametrize("call, said, hint", [
    ({"folds_k": "3"}, "--folds (folds_k=) must be a whole number of at least 2, got '3'", ""),
    ({"folds_k": 2.5}, "--folds (folds_k=) must be a whole number of at least 2, got 2.5", ""),
    ({"compare_holdout": "no"}, "compare_holdout= is True or False, not 'no'", ""),
    ({"folds": 3}, "zoo.cross_validate has no option folds=", "Write folds_k="),
    ({"json": True}, "zoo.cross_validate has no option json=", "returns its result as a dict"),
    ({"log": "tensorboard"}, "log= takes a function of one text (such as print), not 'tensorboard'",
     "A cross-validation logs to no tracker"),
    ({"log": None}, "log= takes a function of one text", "zoo.console.quiet"),
])
def test_a_python_call_of_cross_validate_that_does_not_fit_it_is_one_message_before_any_fold(call, said, hint):
    with pytest.raises(ConfigError) as e:
        cv.cross_validate("convae", dataset="digits", **{"folds_k": 2, **call})
    assert said in e.value.message and hint in (e.value.hint or "")

# ------------------------------------------------------------------------------------------ tiny folders

def _flat_folder(root, n: int) -> str:
    """A folder of `n` different grey images (pixel value 40 * i), as a data set name."""
    from PIL import Image

    root.mkdir()
    for i in range(n):
        Image.new("L", (12, 12), 40 * i).save(root / f"{i}.png")
    return f"folder:{root}"


def test_cv_refuses_more_folds_than_distinct_images(tmp_path):
    one = _flat_folder(tmp_path / "one", 1)
    assert_clean_error(invoke("cv", "convae", "--folds", "2", "--dataset", one, *TINY_SET[:-1], "--epochs", "1"),
                       "2 folds is more than the 1 training image(s)", "each fold must hold out different images")
    three = load_dataset(_flat_folder(tmp_path / "three", 3))
    assert three.reused["val"] == "train"  # the validation split is the training images again
    with pytest.raises(ConfigError, match="4 folds is more than the 3 training image") as e:
        cv.folds(three, 4)
    assert e.value.hint == "Ask for at most 3 folds."


def test_a_limit_on_the_training_images_is_said_to_be_a_folds(tmp_path):
    """4 images, 2 folds: each fold trains on 2, so 3 pseudo-inputs (which `zoo train` takes on the 4) are
    too many for a fold, and the message says so rather than miscount the set."""
    four = _flat_folder(tmp_path / "four", 4)
    with pytest.raises(ConfigError, match=r"fold 1/2, which trains on 2 of the 4 images: pseudo_inputs=3 is more "
                                          r"than the 2 training images"):
        cv.cross_validate("vampprior", folds_k=2, dataset=four, overrides={**TINY, "epochs": 1, "pseudo_inputs": 3,
                                                                            "batch_norm": False})


def test_each_fold_holds_out_different_images_of_a_tiny_folder(tmp_path):
    data = load_dataset(_flat_folder(tmp_path / "two", 2))
    folds = list(cv.folds(data, 2))
    held_out = sorted(int(f.val_x[0, 0, 0, 0]) for f in folds)
    assert [f.val_x.shape[0] for f in folds] == [1, 1] and held_out == [0, 40]
    for f in folds:
        assert "val" not in f.reused  # a fold's validation image is its own, not a training image
        assert not torch.equal(f.train_x, f.val_x)


def test_cv_on_a_tiny_folder_reports_no_test_figures_and_refuses_a_holdout(tmp_path):
    name = _flat_folder(tmp_path / "four", 4)
    notes = []
    r = cv.cross_validate("convae", folds_k=2, dataset=name, overrides={**TINY, "epochs": 1}, log=notes.append)
    assert len(r["per_fold"]) == 2 and all(f["test"] is None for f in r["per_fold"]) and "test_mean" not in r
    assert any("no test figures" in n and "reuses the training images" in n for n in notes)
    with pytest.raises(ConfigError, match="--compare-holdout: .* reuses the training images"):
        cv.cross_validate("convae", folds_k=2, dataset=name, overrides={**TINY, "epochs": 1}, compare_holdout=True)


def test_a_configuration_is_not_scored_on_a_validation_split_that_reuses_the_training_images(tmp_path):
    from zoo.api import resolve_config

    data = load_dataset(_flat_folder(tmp_path / "three", 3))
    cls, model_cfg, train_cfg = resolve_config("convae", overrides={**TINY, "epochs": 1})
    with pytest.raises(ConfigError, match="no validation score: .* reuses the training images") as e:
        fit(cls, model_cfg, train_cfg, data)
    assert "Cross-validate instead" in e.value.hint
    fold = next(cv.folds(data, 3))
    assert fit(cls, model_cfg, train_cfg, fold).epochs == 1  # a fold's validation image is its own


def test_an_interrupted_cross_validation_says_the_fold_and_that_nothing_is_kept(tmp_path, monkeypatch):
    from zoo.plugins.convae import ConvAE

    calls = {"n": 0}
    loss = ConvAE.loss

    def stopped_in_the_second_fold(self, batch):
        calls["n"] += batch.x.shape[0] > 4  # not the metric's check, on 4 images
        if calls["n"] > 3:  # the first fold: its training batches and its validation, for one epoch
            raise KeyboardInterrupt
        return loss(self, batch)
    monkeypatch.setattr(ConvAE, "loss", stopped_in_the_second_fold)
    result = invoke("cv", "convae", "--folds", "2", "--dataset", "digits", *TINY_SET[:-1], "--epochs", "1",
                    "--out", tmp_path / "o")
    assert result.exit_code == 130 and "Traceback" not in result.output
    assert "cross-validation interrupted in fold 2/2 (interrupted during epoch 1); nothing was written" in result.output
    assert "are saved" not in result.output and not (tmp_path / "o").exists()


def test_a_metric_the_model_does_not_record_is_said_as_the_commands_mistake_not_a_folds():
    """It read "fold 1/2, which trains on 719 of the 1438 images: no validation 'bogus' was recorded"."""
    out = assert_clean_error(invoke("cv", "convae", "--folds", "2", "--dataset", "digits", *TINY_SET[:-1],
                                    "--epochs", "1", "--metric", "bogus"),
                             "no validation 'bogus' was recorded", "The model's validation metrics are: loss, mse")
    assert "fold 1/2" not in out.split("Error:")[-1]


def test_a_metric_the_model_does_not_record_is_refused_before_the_first_fold_trains():
    """A GAN records no 'loss' (cv's default): a whole fold trained (42 s) before that was said."""
    out = assert_clean_error(invoke("cv", "gan", "--folds", "2", "--dataset", "digits", "--epochs", "5"),
                             "no validation 'loss' was recorded", "d_loss", "score by one of them with --metric NAME")
    assert "fold 1/2:" not in out
