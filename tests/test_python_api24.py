"""The Python API's result objects, as a hostile walk used them (pyapi24): zoo.train's and zoo.finetune's yes/no
keywords (overwrite="no" replaced a run), zoo.compare's descending= and metric=, a training's result and a
zoo.load Run passed on as runs (to compare, to resume=), a Run through pickle, a Comparison's repr, and smaller
argument checks (init=, run.can, run.dataset(grey=), zoo.read_cv of the cv.json file)."""

from __future__ import annotations

import pickle

import pytest
import torch
from conftest import TINY, invoke, quiet

import zoo
from zoo.errors import ConfigError


def _train(out, **more):
    return zoo.train("convae", dataset="digits", epochs=1, out=out, log=quiet, progress=False, **{**TINY, **more})


@pytest.mark.parametrize("flag", ["no", "False", "0", 1, None])
def test_train_refuses_an_overwrite_that_is_no_bool_and_keeps_the_run(run_copy, flag):
    before = {p.name: p.read_bytes() for p in run_copy.iterdir() if p.is_file()}
    with pytest.raises(ConfigError, match=r"overwrite= is True or False"):
        zoo.train("convae", dataset="digits", epochs=1, out=run_copy, log=quiet, progress=False, overwrite=flag,
                  latent_dim=2, **TINY)
    assert {p.name: p.read_bytes() for p in run_copy.iterdir() if p.is_file()} == before


def test_train_refuses_a_progress_that_is_no_bool(tmp_path):
    with pytest.raises(ConfigError, match=r"progress= is True or False \(or None\), not 'no'"):
        zoo.train("convae", dataset="digits", epochs=1, out=tmp_path / "r", log=quiet, progress="no", **TINY)
    assert not (tmp_path / "r").exists()


def test_finetune_refuses_an_overwrite_that_is_no_bool_and_keeps_the_head(digits_run, tmp_path):
    head = tmp_path / "head"
    zoo.finetune(digits_run, hidden=[7], epochs=1, out=head, log=quiet, progress=False)
    before = (head / "config.json").read_bytes()
    with pytest.raises(ConfigError, match=r"overwrite= is True or False, not 'no'"):
        zoo.finetune(digits_run, hidden=[5], epochs=1, out=head, log=quiet, progress=False, overwrite="no")
    assert (head / "config.json").read_bytes() == before


@pytest.mark.parametrize("flag", ["yes", "False", 1])
def test_compare_refuses_a_descending_that_is_no_bool(digits_run, flag):
    with pytest.raises(ConfigError, match=r"descending= is True or False \(or None\)"):  # None: best first
        zoo.compare([digits_run], descending=flag)


def test_compare_refuses_a_list_of_metrics(digits_run):
    with pytest.raises(ConfigError, match=r"metric= names one metric, not \['val_loss'\]"):
        zoo.compare([digits_run], metric=["val_loss"])


def test_compare_names_a_training_result_by_its_run_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r1, r2 = _train("runs/p1"), _train("runs/p2", latent_dim=8)
    c = zoo.compare([r1, r2])
    assert sorted(r["name"] for r in c.to_dict()["runs"]) == ["runs/p1", "runs/p2"]
    assert "TrainResult" not in c.to_csv() and "TrainResult" not in "\n".join(c.table())
    assert [r["name"] for r in zoo.compare(r1).to_dict()["runs"]] == ["runs/p1"]  # one result, not a list


def test_comparison_repr_names_the_runs_and_sort_metric_not_the_equal_keys(digits_run, run_copy):
    c = zoo.compare([digits_run, run_copy])
    shown = repr(c)
    assert str(digits_run) in shown and str(run_copy) in shown and c.metric in shown
    assert "equal" not in shown and len(shown) < 600
    assert str(c) == shown


def test_a_loaded_run_pickles_and_works_after(digits_run):
    run = zoo.load(digits_run)
    again = pickle.loads(pickle.dumps(run))
    x = run.data("test")[0][:2]
    assert torch.equal(again.encode(x), run.encode(x))
    assert again.output_dir == run.output_dir


@pytest.mark.parametrize("as_", ["result", "run"])
def test_resume_takes_a_training_result_and_a_loaded_run(tmp_path, as_):
    first = _train(tmp_path / "rs")
    source = first if as_ == "result" else zoo.load(first)
    resumed = zoo.train(resume=source, epochs=2, log=quiet, progress=False)
    assert resumed.run_dir == first.run_dir and len(resumed.history) == 2


def test_resume_of_another_kind_says_what_it_takes():
    with pytest.raises(ConfigError, match=r"resume= takes a text or a path, not 5") as e:
        zoo.train(resume=5, log=quiet)
    assert "zoo.train's result" in e.value.hint


def test_train_refuses_an_init_that_is_no_function_and_leaves_nothing(tmp_path):
    with pytest.raises(ConfigError, match=r"init= takes a function of the new model, not 5"):
        _train(tmp_path / "x", init=5)
    assert not (tmp_path / "x").exists()


def test_run_can_refuses_a_capability_that_is_no_text(digits_run):
    run = zoo.load(digits_run)
    with pytest.raises(ConfigError, match=r"can\(\) takes a capability's name"):
        run.can(5)
    assert run.can("encode")


def test_run_dataset_refuses_a_grey_that_is_no_bool(digits_run):
    with pytest.raises(ConfigError, match=r"grey= is True or False, not 'no'"):
        zoo.load(digits_run).dataset(grey="no")


def test_read_cv_takes_the_cv_json_file_as_its_folder(tmp_path):
    out = tmp_path / "c1"
    zoo.cross_validate("convae", folds_k=2, dataset="digits", overrides={**TINY, "epochs": 1}, out=out, log=quiet)
    assert zoo.read_cv(out / "cv.json") == zoo.read_cv(out)


def test_compare_puts_the_best_first_by_default_largest_for_a_metric_better_when_higher(tmp_path):
    for name, latent in (("a", 2), ("b", 6)):
        zoo.train("convae", dataset="digits", epochs=1, out=tmp_path / name, log=quiet, progress=False,
                  latent_dim=latent, **TINY)
        zoo.evaluate(tmp_path / name, progress=False)
    runs = [tmp_path / "a", tmp_path / "b"]
    for metric, largest_first in (("test_psnr", True), ("test_mse", False), ("val_loss", False)):
        result = zoo.compare(runs, metric)
        values = [r.value(metric) for r in result.runs]
        assert result.descending is largest_first and values == sorted(values, reverse=largest_first), metric
    assert zoo.compare(runs, "test_psnr", descending=False).descending is False  # asked: as asked
    out = invoke("compare", str(runs[0]), str(runs[1]), "--sort", "test_psnr", "--asc").output
    assert "ascending" in out


def test_compare_sorts_the_shipped_gans_quality_figures_best_first():
    for metric, largest_first in (("test_class_accuracy", True), ("test_classifier_precision", True),
                                  ("test_classifier_recall", True), ("test_classifier_fid", False)):
        result = zoo.compare(["cgan-mnist", "cgan-fashion-mnist"], metric)
        values = [r.value(metric) for r in result.runs]
        assert result.descending is largest_first and values == sorted(values, reverse=largest_first), metric
