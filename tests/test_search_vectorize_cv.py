"""`zoo search --vectorize K` with `--cv`: each vectorised trial is scored on its own folds (cut with its own seed,
as alone and as `zoo cv` cuts them); a configuration the plugin cannot build is pruned with its reason while the
others train; a pruned trial's reason names the fold; what trials.csv and the refusals say (searchcv19)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from conftest import SEARCH_FIXED, assert_clean_error, assert_ok, invoke

import zoo
from zoo.errors import Interrupted

optuna = pytest.importorskip("optuna")


def rows_of(study: Path) -> list[dict]:
    with open(study / "trials.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def search(tmp_path: Path, name: str, space: str, *options: str) -> tuple[str, list[dict]]:
    (tmp_path / f"{name}.toml").write_text(space)
    out = assert_ok(invoke("search", "convae", "--space", tmp_path / f"{name}.toml", "--out", tmp_path / name,
                           *options))
    return out, rows_of(tmp_path / name)


SEEDS = """[search]
strategy = "grid"
seed = 0
""" + SEARCH_FIXED + """epochs = 2

[params]
lr = { choices = [0.01] }
seed = { choices = [7, 0] }
"""


def test_vectorised_cv_trials_of_another_seed_are_scored_on_their_own_folds(tmp_path):
    # trials of seeds 7 and 0 vectorised with --cv: each scored as alone (its folds cut with its own seed), not the
    # seed-0 trial on the folds of the seed-7 trial that heads the group
    _, alone = search(tmp_path, "alone", SEEDS, "--cv", "3", "--vectorize", "1")
    _, together = search(tmp_path, "together", SEEDS, "--cv", "3", "--vectorize", "2")
    score = lambda rows: {r["seed"]: float(r["value"]) for r in rows}  # noqa: E731
    assert len(score(alone)) == 2 and score(alone).keys() == score(together).keys()
    for key, value in score(alone).items():
        assert score(together)[key] == pytest.approx(value, rel=1e-6, abs=1e-7), key


UNBUILDABLE = """[search]
strategy = "grid"
seed = 0
""" + SEARCH_FIXED + """epochs = 1

[params]
kernel = { elements = [{ choices = [3, 15] }] }
lr = { choices = [0.001, 0.01] }
"""


@pytest.mark.parametrize("cv", [[], ["--cv", "2"]], ids=["split", "cv"])
def test_a_vectorised_search_prunes_an_unbuildable_configuration_and_trains_the_others(tmp_path, cv):
    # kernel 15 leaves nothing of digits' 8x8 images: those two trials are pruned with the plugin's reason
    out, rows = search(tmp_path, "s", UNBUILDABLE, "--vectorize", "4", *cv)
    states = {(r["kernel"], r["lr"]): r["state"] for r in rows}
    assert sorted(states.values()) == ["complete", "complete", "pruned", "pruned"], out
    for r in rows:
        if r["kernel"] == "[15]":
            assert r["state"] == "pruned" and r["note"].startswith("invalid configuration: conv layer"), r
            assert "reduces 8×8 images to nothing" in r["note"], r
    assert (tmp_path / "s" / "best.toml").is_file()


HYPERBAND = """[search]
strategy = "random"
seed = 0
pruner = "hyperband"
""" + SEARCH_FIXED + """epochs = 1

[params]
lr = { low = 1e-5, high = 3e-2, log = true }
"""


@pytest.mark.parametrize("vectorize", ["1", "4"])
def test_a_pruned_cv_trial_names_its_fold_and_leaves_the_value_to_complete_trials(tmp_path, vectorize):
    out, rows = search(tmp_path, "s", HYPERBAND, "--cv", "2", "--trials", "4", "--vectorize", vectorize)
    pruned = [r for r in rows if r["state"] == "pruned"]
    assert pruned, out  # Hyperband prunes from the first step (fold 1's epoch 1)
    for r in pruned:
        assert re.fullmatch(r"pruned by the hyperband pruner after epoch 1 of fold 1 \(of 2\)", r["note"]), r
        assert r["value"] == "", r  # not one fold's epoch beside the complete trials' means over the folds
    assert all(r["value"] != "" for r in rows if r["state"] == "complete")


def test_a_changed_study_in_a_shared_storage_is_told_to_take_another_study_name(tmp_path):
    space = tmp_path / "s.toml"
    space.write_text(SEEDS)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    assert_ok(invoke("search", "convae", "--space", space, "--cv", "2", "--trials", "1", "--storage", storage,
                     "--study", "S", "--out", tmp_path / "a"))
    r = invoke("search", "convae", "--space", space, "--cv", "3", "--trials", "1", "--storage", storage,
               "--study", "S", "--out", tmp_path / "b")
    out = assert_clean_error(r, "was begun with other settings", "cv (2 in the study, 3 now)",
                             "start a new study: --study NEW (or another --storage)", code=2)
    assert "another --out" not in out  # the storage holds the study by its name, whatever the folder


def test_trials_of_an_interrupted_vectorised_group_say_why_they_failed(tmp_path, monkeypatch):
    from zoo.training import multitrial

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    (tmp_path / "s.toml").write_text(SEEDS)
    monkeypatch.setattr(multitrial, "train_together", ctrl_c)
    with pytest.raises(Interrupted):
        zoo.run_search("convae", tmp_path / "s.toml", out=tmp_path / "s", trials=2, vectorize=2, seed=0)
    rows = rows_of(tmp_path / "s")
    failed = [r for r in rows if r["state"] == "fail"]
    assert len(failed) == 2 and all(r["note"] == "interrupted (in a group of 2 vectorised trials)" for r in failed)
    queued = [r for r in rows if r["state"] == "waiting"]
    assert len(queued) == 2 and all(r["note"] == "" for r in queued)  # a retry's row is of its own run


def test_cv_1_in_a_space_file_is_said_as_the_space_files(tmp_path):
    (tmp_path / "s.toml").write_text(SEEDS.replace('strategy = "grid"', 'strategy = "grid"\ncv = 1'))
    r = invoke("search", "convae", "--space", tmp_path / "s.toml", "--out", tmp_path / "s")
    out = assert_clean_error(r, "s.toml: [search] cv = 1: cross-validation needs at least 2 folds", code=2)
    assert "--cv 1" not in out


def test_another_study_name_in_a_folder_of_results_is_refused_as_a_usage_error(tmp_path):
    (tmp_path / "s.toml").write_text(SEEDS)
    assert_ok(invoke("search", "convae", "--space", tmp_path / "s.toml", "--trials", "1", "--study", "s",
                     "--out", tmp_path / "st"))
    r = invoke("search", "convae", "--space", tmp_path / "s.toml", "--study", "other", "--out", tmp_path / "st")
    assert_clean_error(r, "holds no study 'other' (it holds 's')", "Resume it with --study s", code=2)
