"""`zoo cv`: scikit-learn folds of the training set, mean ± std, per-fold table, holdout beside it."""

from __future__ import annotations

import json
import re
import statistics

import pytest
import torch
from conftest import TINY, TINY_SET, assert_clean_error, assert_ok, invoke, is_png

import zoo
from zoo.search import cv
from zoo.training.fit import fit
from zoo.data import load_dataset
from zoo.errors import ConfigError, Interrupted, TrainingDiverged


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


def test_cv_command_prints_the_table_and_zoo_info_shows_it_again_from_cv_json(tmp_path):
    out = assert_ok(invoke("cv", "convae", "--folds", "2", "--dataset", "digits", *TINY_SET[:-1], "--epochs", "1",
                           "--compare-holdout", "--out", tmp_path / "o"))
    assert "2-fold cross-validation" in out
    assert "mean ± std over 2 folds" in out and "holdout split" in out
    lines = [ln for ln in out.splitlines() if ln.startswith("  ") and ln.split()[0] in ("1", "2", "holdout")]
    assert len(lines) == 3
    assert (tmp_path / "o" / "cv.json").is_file()
    # the same table again from its cv.json: a finished cross-validation was shown by no command
    shown = assert_ok(invoke("info", tmp_path / "o"))
    assert [ln for ln in shown.splitlines() if ln.startswith("  ")] == [ln for ln in out.splitlines()
                                                                        if ln.startswith("  ")]
    assert json.loads(invoke("info", tmp_path / "o", "--json").stdout) == zoo.read_cv(tmp_path / "o")
    assert_clean_error(invoke("eval", tmp_path / "o"), "it is a zoo cv folder", f"zoo info {tmp_path / 'o'}")
    (tmp_path / "o" / "cv.json").write_text('{"model": "convae", "per_fold": "x"}')
    assert_clean_error(invoke("info", tmp_path / "o"), "is not the results of a zoo cv (or is damaged)")
    with pytest.raises(zoo.errors.RunError, match="holds no cv.json: it is not the folder of a finished zoo cv"):
        zoo.read_cv(tmp_path)
    with pytest.raises(ConfigError, match="read_cv takes the folder"):
        zoo.read_cv(None)


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


def test_cv_overwrite_replaces_an_earlier_cross_validation(tmp_path):
    args = ("cv", "--folds", "2", "--dataset", "digits", *TINY_SET[:-1], "--epochs", "1", "--out", tmp_path / "o")
    assert_ok(invoke(*args[:1], "convae", *args[1:]))
    said = assert_clean_error(invoke(*args[:1], "vae", *args[1:]), "holds an earlier cross-validation")
    assert "--overwrite" in said
    assert_ok(invoke(*args[:1], "vae", *args[1:], "--overwrite"))
    assert json.loads((tmp_path / "o" / "cv.json").read_text())["model"] == "vae"


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
    ({"metric": 5}, "metric= is the name of a metric the model records (such as 'mse'), not 5", "Leave it out"),
    ({"metric": ""}, "metric= is the name of a metric the model records (such as 'mse'), not ''", "Leave it out"),
    ({"out": 5}, "out= is the folder to write cv.json and cv.png into (a path), not 5", ""),
    ({"reduce": "max"}, "unknown reduction 'max'", "Use one of best, mean, last."),
    ({"epochs": 3, "overrides": {"epochs": 1}}, "epochs given twice, as a keyword and in overrides=",
     "Give each config key once."),
    ({"overrides": {"dataset": "mnist"}}, "dataset given twice", "Give each config key once."),
])
def test_a_python_call_of_cross_validate_that_does_not_fit_it_is_one_message_before_any_fold(call, said, hint,
                                                                                            monkeypatch):
    def no_data(*args, **kwargs):
        raise AssertionError("the data set was loaded before the call was checked")
    monkeypatch.setattr(cv, "training_data", no_data)
    with pytest.raises(ConfigError) as e:
        cv.cross_validate("convae", dataset="digits", **{"folds_k": 2, **call})
    assert said in e.value.message and hint in (e.value.hint or "")


def test_a_float_count_of_folds_is_refused_as_run_search_refuses_cv_2_0():
    """One rule for counts (check_count): 2.0 is no count of folds, here as in run_search(cv=2.0)."""
    with pytest.raises(ConfigError) as e:
        cv.cross_validate("convae", folds_k=2.0, dataset="digits", overrides={**TINY, "epochs": 1})
    assert "whole number" in e.value.message and "2.0" in e.value.message

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


def test_an_interrupted_cross_validation_says_the_fold_and_keeps_the_folds_finished(tmp_path, monkeypatch):
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
    assert ("cross-validation interrupted in fold 2/2 (interrupted during epoch 1); fold 1 is kept in "
            f"{tmp_path / 'o'}: the same command goes on from it") in result.output
    assert [r["fold"] for r in json.loads((tmp_path / "o" / "folds.json").read_text())["per_fold"]] == ["1"]
    assert not (tmp_path / "o" / "cv.json").exists()


def test_a_metric_the_model_does_not_record_is_said_as_the_commands_mistake_not_a_folds():
    """It read "fold 1/2, which trains on 719 of the 1438 images: no validation 'bogus' was recorded"."""
    out = assert_clean_error(invoke("cv", "convae", "--folds", "2", "--dataset", "digits", *TINY_SET[:-1],
                                    "--epochs", "1", "--metric", "bogus"),
                             "no validation 'bogus' was recorded", "The model's validation metrics are: loss, mse")
    assert "fold 1/2" not in out.split("Error:")[-1]


def test_a_model_with_no_default_metric_is_said_to_have_none_before_the_first_fold_trains():
    """A GAN watches no metric: a whole fold trained (42 s) before "no validation 'loss' was recorded" was said,
    a 'loss' the user never asked for."""
    out = assert_clean_error(invoke("cv", "gan", "--folds", "2", "--dataset", "digits", "--epochs", "5"),
                             "gan has no default metric to score the folds by", "d_loss, d_real, g_loss",
                             "score by one of them with --metric NAME")
    assert "fold 1/2:" not in out and "'loss'" not in out


# ------------------------------------------------------------------------------------------ the --out folder

def test_a_second_cross_validation_into_the_same_out_is_refused_while_the_first_runs(tmp_path):
    """Both wrote cv.json at their end, the later over the earlier, and both said "written"."""
    out, second = tmp_path / "o", []

    def log(line):
        if line.startswith("fold 1/2") and not second:  # the first is training: a second starts into its --out
            second.append(invoke("cv", "vae", "--folds", "2", "--dataset", "digits", *TINY_SET[:-1], "--epochs", "1",
                                 "--out", out))
    r = cv.cross_validate("convae", folds_k=2, dataset="digits", overrides={**TINY, "epochs": 1}, out=out, log=log)
    said = assert_clean_error(second[0], "is being written by another zoo process",
                              "One cross-validation writes a folder at a time")
    assert "fold 1/2:" not in said  # refused up front, not after its own folds
    assert json.loads((out / "cv.json").read_text())["model"] == "convae" and r["written"]
    assert sorted(p.name for p in out.iterdir()) == ["cv.json", "cv.png"]  # the lock is gone with the first


def test_an_out_that_cannot_be_made_is_refused_before_any_fold(tmp_path):
    (tmp_path / "afile").write_text("")
    out = assert_clean_error(invoke("cv", "convae", "--folds", "2", "--dataset", "digits", *TINY_SET[:-1],
                                    "--epochs", "1", "--out", tmp_path / "afile" / "sub"),
                             "cannot make the cross-validation folder", "not a directory")
    assert "fold 1/2:" not in out


def test_a_stop_while_the_results_are_written_leaves_them_whole(tmp_path, monkeypatch):
    """A Ctrl-C while cv.png was drawn left cv.json alone (which refused the rerun) and a bare KeyboardInterrupt."""
    import signal

    from zoo.search import cv_files

    plot = cv_files.plot_curves

    def stopped_while_drawing(result, path):
        signal.raise_signal(signal.SIGINT)
        plot(result, path)
    monkeypatch.setattr(cv_files, "plot_curves", stopped_while_drawing)
    out = tmp_path / "o"
    with pytest.raises(Interrupted, match="cross-validation interrupted at its end; .*cv.json and .*cv.png are "
                                          "written"):
        cv.cross_validate("convae", folds_k=2, dataset="digits", overrides={**TINY, "epochs": 1}, out=out)
    assert len(json.loads((out / "cv.json").read_text())["per_fold"]) == 2 and is_png(out / "cv.png")


def test_a_stopped_cross_validation_goes_on_from_its_finished_folds_to_the_uninterrupted_figures(tmp_path):
    """zoo cv kept nothing of a stop: a 5-fold cross-validation stopped in its last fold started again from fold 1."""
    settings = dict(folds_k=3, dataset="digits", overrides={**TINY, "epochs": 1})
    whole = cv.cross_validate("convae", **settings, out=tmp_path / "whole")

    def stop_after_fold_2(line):
        if line.startswith("fold 2/3"):
            raise KeyboardInterrupt
    out = tmp_path / "o"
    with pytest.raises(Interrupted, match=r"interrupted after fold 2/3; folds 1-2 are kept in .*o: the same command"):
        cv.cross_validate("convae", **settings, out=out, log=stop_after_fold_2)
    said = []
    again = cv.cross_validate("convae", **settings, out=out, log=said.append)
    assert [line.endswith("(kept from the stopped cross-validation)") for line in said if line.startswith("fold")] \
        == [True, True, False]
    assert [r["value"] for r in again["per_fold"]] == [r["value"] for r in whole["per_fold"]]
    assert again["mean"] == whole["mean"] and not (out / "folds.json").exists()  # cv.json holds them now
    with pytest.raises(Interrupted, match="nothing was kept \\(with --out, the folds finished are kept"):
        cv.cross_validate("convae", **settings, log=stop_after_fold_2)


def test_the_folds_of_a_stopped_cross_validation_of_another_configuration_are_refused_not_dropped(tmp_path):
    def stop_after_fold_1(line):
        if line.startswith("fold 1/2"):
            raise KeyboardInterrupt
    out, settings = tmp_path / "o", dict(folds_k=2, dataset="digits")
    with pytest.raises(Interrupted):
        cv.cross_validate("convae", **settings, overrides={**TINY, "epochs": 1}, out=out, log=stop_after_fold_1)
    assert "it is the folder of a stopped zoo cv" in assert_clean_error(invoke("info", out), "not a zoo run")
    with pytest.raises(ConfigError, match="holds the folds of a stopped cross-validation of another configuration"):
        cv.cross_validate("convae", **settings, overrides={**TINY, "epochs": 1, "lr": 0.01}, out=out)
    said = []
    again = cv.cross_validate("convae", **settings, overrides={**TINY, "epochs": 1, "lr": 0.01}, out=out,
                              overwrite=True, log=said.append)
    assert again["train"]["lr"] == 0.01 and not any("kept from" in line for line in said)  # both folds trained anew


@pytest.mark.parametrize("damage", [
    "not json", '{"what": {}, "per_fold": [{"fold": "1"}]}',
    '{"what": {}, "per_fold": [{"fold": "1", "value": "x", "test": null, "curve": []}]}',
    '{"what": {}, "per_fold": [{"fold": "1", "value": 1.0, "test": null, "curve": [{}]}]}'])
def test_damaged_kept_folds_are_refused_in_one_message_and_dropped_with_overwrite(tmp_path, damage):
    """A folds.json row without a value ended in a KeyError traceback; one that was no JSON spoke of a run folder."""
    out = tmp_path / "o"
    out.mkdir()
    (out / "folds.json").write_text(damage)
    settings = dict(folds_k=2, dataset="digits", overrides={**TINY, "epochs": 1}, out=out)
    with pytest.raises(ConfigError, match="that is damaged, or not one zoo cv wrote") as refused:
        cv.cross_validate("convae", **settings)
    assert "run folder" not in refused.value.hint
    assert len(cv.cross_validate("convae", **settings, overwrite=True)["per_fold"]) == 2
    (out / "cv.json").write_text("not json")
    said = assert_clean_error(invoke("info", out), "is not the results of a zoo cv (or is damaged)")
    assert "run folder" not in said


# ------------------------------------------------------------------------------------------ the figures

def test_the_test_figure_is_of_the_weights_of_the_epoch_scored(tmp_path):
    """Scored by val_kl (lowest at epoch 1) with early stopping on the loss (lowest at the last epoch): the row said
    best epoch 3 and tested epoch 3's weights beside epoch 1's val_kl, an 8x gap that did not exist."""
    r = cv.cross_validate("vae", folds_k=2, dataset="digits", overrides={"device": "cpu", "epochs": 3}, metric="kl")
    for fold in r["per_fold"]:
        kl = [c["val_kl"] for c in fold["curve"]]
        losses = [c["val_loss"] for c in fold["curve"]]
        best = kl.index(min(kl)) + 1
        assert best != losses.index(min(losses)) + 1  # the case: the two pick other epochs
        assert fold["scored_epoch"] == fold["test_epoch"] == best and fold["value"] == min(kl)
        assert fold["test"]["kl"] == pytest.approx(min(kl), rel=0.5)  # the same weights on other images
    assert "best val_kl" in r["test_weights"]
    mean = cv.cross_validate("vae", folds_k=2, dataset="digits", overrides={"device": "cpu", "epochs": 3}, metric="kl",
                             reduce="mean")
    for fold in mean["per_fold"]:  # no epoch is scored: the test figure is the early-stopping epoch's, and said so
        losses = [c["val_loss"] for c in fold["curve"]]
        assert fold["scored_epoch"] is None and fold["test_epoch"] == losses.index(min(losses)) + 1
    assert "early-stopping epoch" in mean["test_weights"]


def test_fit_keeps_and_tests_the_weights_of_the_scored_epoch():
    from zoo.api import resolve_config
    from zoo.training.engine import Callback
    from zoo.training.regularize import plain_state_dict

    class Snapshots(Callback):
        def __init__(self):
            self.states = {}

        def on_epoch_end(self, trainer, epoch, record):
            self.states[epoch] = {k: v.detach().clone() for k, v in plain_state_dict(trainer.model).items()}
    cls, model_cfg, train_cfg = resolve_config("vae", overrides={"device": "cpu", "epochs": 3, "dataset": "digits"})
    data = load_dataset("digits")
    for reduce, epoch in (("best", lambda r: r.scored_epoch), ("last", lambda r: 3)):
        snaps = Snapshots()
        r = fit(cls, model_cfg, train_cfg, data, callbacks=[snaps], metric="kl", reduce=reduce, keep_model=True)
        assert r.test_epoch == epoch(r) and (reduce == "last" or r.test_epoch != r.best_epoch)  # not the loss's
        kept = plain_state_dict(r.model)
        assert all(torch.equal(kept[k], v) for k, v in snaps.states[r.test_epoch].items())


def test_the_spread_is_said_to_be_the_sample_standard_deviation(tmp_path):
    out = assert_ok(invoke("cv", "convae", "--folds", "2", "--dataset", "digits", *TINY_SET[:-1], "--epochs", "1",
                           "--out", tmp_path / "o"))
    assert "mean ± std over 2 folds (sample standard deviation, n-1):" in out
    assert json.loads((tmp_path / "o" / "cv.json").read_text())["std_is"] == "sample standard deviation, n-1"


# ------------------------------------------------------------------------------------------ refusals said right

def test_compare_holdout_with_no_validation_split_is_refused_before_the_first_fold():
    notes = []
    with pytest.raises(ConfigError, match="--compare-holdout: there is no validation split") as e:
        cv.cross_validate("convae", folds_k=2, dataset="digits", overrides={**TINY, "epochs": 1, "val_fraction": 0},
                          compare_holdout=True, log=notes.append)
    assert "Leave out --compare-holdout, or set val_fraction above 0" in e.value.hint
    assert "cross-validation" not in e.value.hint and not any(n.startswith("fold") for n in notes)


def test_a_training_metric_the_model_does_not_record_lists_its_training_metrics():
    assert_clean_error(invoke("cv", "convae", "--folds", "2", "--dataset", "digits", *TINY_SET[:-1], "--epochs", "1",
                              "--metric", "train_nosuch"),
                       "no training 'train_nosuch' was recorded", "The model's training metrics are: train_loss")


def test_a_refusal_of_the_data_set_or_the_configuration_is_not_blamed_on_a_fold(tmp_path):
    """"fold 1/2, which trains on 2 of the 4 images: a classifier needs a labelled data set ..." said that more
    images or fewer folds would help."""
    four = _flat_folder(tmp_path / "four", 4)
    with pytest.raises(ConfigError) as e:
        cv.cross_validate("classifier", folds_k=2, dataset=four, overrides={**TINY, "epochs": 1})
    assert e.value.message == "a classifier needs a labelled data set with at least two classes"
    with pytest.raises(ConfigError) as e:
        cv.cross_validate("vampprior", folds_k=2, dataset="digits", overrides={**TINY, "epochs": 1,
                                                                                 "batch_norm": True})
    assert e.value.message.startswith("vampprior: batch_norm would normalise the pseudo-inputs")


def test_a_diverged_fold_is_named():
    with pytest.raises(TrainingDiverged) as e:
        cv.cross_validate("vae", folds_k=2, dataset="digits", overrides={**TINY, "epochs": 1, "lr": 10.0,
                                                                           "optimizer": "sgd"})
    assert re.match(r"fold [12]/2: training diverged at epoch 1: ", e.value.message)
    assert re.search(r"(is|are) not finite; nothing was written$", e.value.message), e.value.message


def test_loggers_are_refused_when_unknown_and_said_unused_otherwise(tmp_path):
    assert_clean_error(invoke("cv", "convae", "--folds", "2", "--dataset", "digits", *TINY_SET[:-1], "--epochs", "1",
                              "--set", "loggers=nosuch"), "unknown logger 'nosuch'", "The installed loggers are")
    pytest.importorskip("tensorboard")
    notes = []
    cv.cross_validate("convae", folds_k=2, dataset="digits", log=notes.append,
                      overrides={**TINY, "epochs": 1, "loggers": ["tensorboard"]})
    assert ("note: a cross-validation logs to no logger (its folds are not kept as runs): loggers=tensorboard is "
            "not used") in notes
