"""Fixes of the latent-space and generation tools (latent25): --out never replaces a search's or a cv's results,
nor a CSV zoo latent did not write; default names of zoo latent and zoo denoise keep splits and noises apart; every
picture of an untrained run says so; --spread beyond float32, an image given as a class, the maf's hint on few codes
and the spread of one image are said as what they are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import zoo
from conftest import TINY, assert_clean_error, assert_ok, invoke, is_png, quiet, stopped_run, tiny_space
from zoo.errors import ConfigError, RunError

UNTRAINED = "has not finished an epoch: these {} its initial, untrained weights"


def _digest(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


# ------------------------------------------------------------------------------------------ #3 --out

def test_out_over_a_search_studys_results_is_refused_and_they_are_kept(digits_run, tmp_path):
    pytest.importorskip("optuna")
    (tmp_path / "space.toml").write_text(tiny_space(1, 1))
    study = tmp_path / "studies" / "s"
    assert_ok(invoke("search", "convae", "--space", tmp_path / "space.toml", "--out", study))
    before = _digest(study)
    assert "trials.csv" in before and "history.png" in before
    assert_clean_error(invoke("latent", digits_run, "--n", "20", "--out", study / "trials.png"),
                       "would replace trials.csv of a search's study folder", code=2)
    assert_clean_error(invoke("reconstruct", digits_run, "--n", "2", "--out", study / "history.png"),
                       "would replace history.png of a search's study folder", code=2)
    assert _digest(study) == before
    assert_ok(invoke("reconstruct", digits_run, "--n", "2", "--out", study / "mine.png"))  # a new file: written


def test_out_over_a_cv_folders_picture_is_refused_and_it_is_kept(digits_run, tmp_path):
    folder = tmp_path / "cv"
    assert_ok(invoke("cv", "convae", "--dataset", "digits", "--folds", "2", "--epochs", "1", "--set", "channels=4,8,8",
                     "--set", "hidden=16", "--device", "cpu", "--out", folder))
    before = _digest(folder)
    assert_clean_error(invoke("reconstruct", digits_run, "--n", "2", "--out", folder / "cv.png"),
                       "would replace cv.png of a cross-validation's folder", code=2)
    assert _digest(folder) == before


@pytest.mark.parametrize("copied", ["best.toml", "journal.log", "space.toml", "cv.png"])
def test_one_file_of_a_studys_or_cvs_name_makes_no_results_folder_and_out_may_be_written_again(digits_run, tmp_path,
                                                                                             copied):
    (tmp_path / copied).write_text("lr = 0.001\n")  # a best.toml copied out to train from, a log of the user's
    out = tmp_path / "recon.png"
    for _ in range(2):
        assert_ok(invoke("reconstruct", digits_run, "--n", "2", "--out", out))
    assert is_png(out)


def test_zoo_latent_refuses_to_replace_a_csv_it_did_not_write_beside_its_picture(digits_run, tmp_path):
    (tmp_path / "summary.csv").write_text("my,own,sheet\n")
    assert_clean_error(invoke("latent", digits_run, "--n", "20", "--out", tmp_path / "summary.png"),
                       "summary.csv is not a scatter's coordinates", code=2)
    assert (tmp_path / "summary.csv").read_text() == "my,own,sheet\n" and not (tmp_path / "summary.png").exists()
    for _ in range(2):  # its own scatter's CSV is replaced with its picture
        assert_ok(invoke("latent", digits_run, "--n", "20", "--out", tmp_path / "mine.png"))
    assert (tmp_path / "mine.csv").read_text().startswith("index,label,class,x,y")


# ------------------------------------------------------------------------------------------ #8 default names

def test_latent_and_denoise_default_names_keep_splits_and_noises_apart(run_copy):
    assert_ok(invoke("latent", run_copy, "--n", "30", "--split", "train"))
    assert_ok(invoke("latent", run_copy, "--n", "30"))
    assert is_png(run_copy / "latent-pca-train.png") and is_png(run_copy / "latent-pca.png")
    assert (run_copy / "latent-pca-train.csv").is_file() and (run_copy / "latent-pca.csv").is_file()
    assert_ok(invoke("denoise", run_copy, "--noise", "gaussian:0.3", "--n", "2"))
    assert_ok(invoke("denoise", run_copy, "--noise", "salt-pepper:0.2", "--n", "2", "--split", "train"))
    assert is_png(run_copy / "denoised-gaussian_0.3.png") and is_png(run_copy / "denoised-salt-pepper_0.2-train.png")


# ------------------------------------------------------------------------------------------ #4 untrained

def test_every_picture_of_a_run_that_finished_no_epoch_says_its_weights_are_untrained(digits_run, tmp_path):
    early = stopped_run("convae", tmp_path / "early")
    commands = [("reconstructions are of", ["reconstruct", "--n", "2"]),
                ("denoised images are of", ["denoise", "--noise", "gaussian:0.3", "--n", "2"]),
                ("codes are of", ["latent", "--n", "30"]), ("images are of", ["manifold", "--steps", "2"]),
                ("images are of", ["interpolate", "--from", "1", "--to", "2", "--steps", "2"])]
    for these, (command, *rest) in commands:
        out = assert_ok(invoke(command, early, *rest))
        assert f"note: {early} " + UNTRAINED.format(these) in out, (command, out)
    trained = assert_ok(invoke("reconstruct", digits_run, "--n", "2", "--out", tmp_path / "r.png"))
    assert "untrained" not in trained


# ------------------------------------------------------------------------------------------ #1, #2 arguments

def test_a_spread_whose_codes_overflow_float32_is_refused_naming_spread(digits_run, tmp_path):
    out = assert_clean_error(invoke("generate", digits_run, "--class", "3", "--spread", "1e300", "--n", "2",
                                    "--out", tmp_path / "s.png"), "--spread 1e+300 draws codes beyond the range "
                             "of float32", code=2)
    assert "run.encode" not in out and not (tmp_path / "s.png").exists()
    with pytest.raises(ConfigError, match="--spread 1e"):
        zoo.sample(digits_run, n=2, class_label=3, spread=1e40)


def test_an_image_given_as_a_class_is_refused_in_a_short_message_naming_its_shape(digits_run, tmp_path):
    run = zoo.load(digits_run)
    x, _ = run.data("test")
    for image in (x[0], x[0].float() / 255, x[0].numpy()):
        with pytest.raises(ConfigError) as refused:
            zoo.interpolate(run, 3, image, steps=3, out=tmp_path / "i.png")
        assert len(str(refused.value)) < 400 and "of shape [1, 28, 28]" in str(refused.value)
        assert "end= takes a class" in str(refused.value) and "run.encode(a)" in str(refused.value)
    with pytest.raises(ConfigError) as refused:
        zoo.sample(run, n=2, class_label=x[0])
    assert len(str(refused.value)) < 300 and "uint8 tensor of shape [1, 28, 28]" in str(refused.value)
    with pytest.raises(ConfigError) as refused:
        zoo.sample(run, n=2, class_label="x" * 5000)
    assert len(str(refused.value)) < 300  # an unknown name is shortened


# ------------------------------------------------------------------------------------------ #6, #7 small data

def test_maf_and_two_stage_name_gmm_only_where_it_can_fit_the_codes():
    from zoo.analysis.latent_samplers import get_sampler

    gen = torch.Generator().manual_seed(0)
    few = torch.randn(17, 4, generator=gen, dtype=torch.float64)        # 8 components of 4-D on 17 codes: no
    some = torch.randn(300, 2, generator=gen, dtype=torch.float64)      # 10 components of 2-D on 300 codes: yes
    for name in ("maf", "two-stage"):
        with pytest.raises(RunError) as refused:
            get_sampler(name)().fit(few)
        assert refused.value.hint.startswith("Use the gaussian sampler,")
        with pytest.raises(RunError) as refused:
            get_sampler(name)().fit(some)
        assert refused.value.hint.startswith("Use the gaussian or gmm sampler,")
    with pytest.raises(zoo.ZooError, match="no covariance can be estimated"):
        get_sampler("gmm")().fit(few)
    get_sampler("gmm")().fit(some)
    get_sampler("gaussian")().fit(few)


def test_spread_for_a_class_of_one_test_image_says_one_image_has_no_spread(tmp_path):
    rng = np.random.default_rng(0)
    for c in range(3):
        folder = tmp_path / "pics" / f"cls{c}"
        folder.mkdir(parents=True)
        for k in range(8):
            a = (rng.random((16, 16)) * 80).astype("uint8")
            a[4:12, 4:12] = 80 + 60 * c
            Image.fromarray(a).save(folder / f"{k}.png")
    zoo.train("convae", dataset=f"folder:{tmp_path / 'pics'}", epochs=1, out=tmp_path / "run", log=quiet,
              progress=False, **TINY)
    run = zoo.load(tmp_path / "run")
    _, y = run.data("test")
    alone = [run.classes[i] for i in range(len(run.classes)) if int((y == i).sum()) == 1]
    assert alone, y  # the split of 8 images a class leaves one class a single test image
    out = assert_clean_error(invoke("generate", tmp_path / "run", "--class", alone[0], "--spread", "1", "--n", "2",
                                    "--out", tmp_path / "g.png"), f"class {alone[0]} has 1 test image",
                             "one image has no spread to measure", "--spread 0", code=1)
    assert "trained for longer" not in out
