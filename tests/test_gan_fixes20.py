"""The GAN and cGAN options walked by a hostile tester (gan20): a run's own training picture kept from
zoo generate, a quality.json kept from a measurement by another (or a weak) feature network, settings a GAN
cannot use refused in one message, and what a collapse, an untrained run and the presets say."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import TINY, assert_clean_error, assert_ok, invoke, is_png, quiet, read_metrics

import zoo
from zoo.errors import TrainingDiverged

# Narrow networks: an epoch of digits takes well under a second on one thread.
SMALL = {"g_channels": 8, "d_channels": 8, "latent_dim": 16, "device": "cpu"}
SMALL_SET = ["--set", "g_channels=8", "--set", "d_channels=8", "--set", "latent_dim=16", "--device", "cpu",
             "--no-progress"]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("ZOO_OFFLINE", "1")


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory) -> Path:
    """A finished 1-epoch tiny GAN run on digits. Read-only: copy it to change it."""
    out = tmp_path_factory.mktemp("gan20") / "gan"
    zoo.train("gan", dataset="digits", epochs=1, out=out, progress=False, log=quiet, **SMALL)
    return out


@pytest.fixture
def gan_copy(gan_run, tmp_path) -> Path:
    return Path(shutil.copytree(gan_run, tmp_path / "gan"))


def _classifier(folder: Path, **settings) -> Path:
    settings = {**TINY, **settings}
    return zoo.train("classifier", dataset="digits", out=folder, progress=False, log=quiet, **settings).run_dir


@pytest.fixture(scope="module")
def feature_networks(tmp_path_factory) -> dict[str, Path]:
    """Classifiers of digits as feature networks: `good` (about 96 % right on the test images), and `weak` and
    `weak2` (one epoch: well under 90 %, which zoo warns of), two networks with other weights."""
    root = tmp_path_factory.mktemp("gan20-features")
    return {"good": _classifier(root / "good", epochs=15, lr=1e-2, batch_size=32),
            "weak": _classifier(root / "weak", epochs=1), "weak2": _classifier(root / "weak2", epochs=1, seed=1)}


def _quality(run: Path, features: Path, **options) -> dict:
    return zoo.api.sample_quality(run, features=str(features), n=100, progress=False, **options)


def _kept_network(run: Path) -> str:
    return json.loads((run / "quality.json").read_text())["feature_network"]


# ------------------------------------------------------------------------------------------ A1

def test_generate_without_out_keeps_a_gan_runs_training_samples_and_writes_a_grid_of_its_own(gan_copy):
    trained = (gan_copy / "samples.png").read_bytes()  # the end of training's picture, which the card shows
    output = assert_ok(invoke("generate", gan_copy, "--n", "4"))
    assert f"wrote {gan_copy / 'samples-prior.png'}" in output
    assert is_png(gan_copy / "samples-prior.png")
    assert (gan_copy / "samples.png").read_bytes() == trained


# ------------------------------------------------------------------------------------------ A2

def test_a_measurement_by_a_weak_feature_network_does_not_replace_one_by_a_good_one(gan_copy, feature_networks):
    good, weak = feature_networks["good"], feature_networks["weak"]
    assert "written" in _quality(gan_copy, good)
    quick = _quality(gan_copy, weak, seeds=2)  # fuller, but by a network that classifies too few images right
    assert "written" not in quick
    assert "classifies only" in quick["kept"] and f"--features {good}" in quick["kept"]
    assert _kept_network(gan_copy) == str(good)


def test_a_measurement_by_another_feature_network_replaces_quality_json_only_when_it_is_fuller(gan_copy,
                                                                                             feature_networks):
    first, other = feature_networks["weak"], feature_networks["weak2"]
    assert "written" in _quality(gan_copy, first, seeds=2)
    as_full = _quality(gan_copy, other, seeds=2)
    assert "written" not in as_full and "another feature network" in as_full["kept"]
    assert "delete it" in as_full["kept"] and f"--features {first}" in as_full["kept"]
    assert _kept_network(gan_copy) == str(first)
    assert "written" in _quality(gan_copy, other, seeds=3)
    assert _kept_network(gan_copy) == str(other)


def test_a_measurement_by_a_good_feature_network_replaces_one_by_a_weak_one(gan_copy, feature_networks):
    assert "written" in _quality(gan_copy, feature_networks["weak"], seeds=2)
    assert "written" in _quality(gan_copy, feature_networks["good"])
    assert _kept_network(gan_copy) == str(feature_networks["good"])


# ------------------------------------------------------------------------------------------ B1

def test_a_gan_of_one_pixel_images_in_batches_of_one_is_refused_in_one_message(tmp_path):
    from PIL import Image

    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(30):
        Image.new("L", (8, 8), color=8 * i).save(flat / f"{i}.png")
    out = tmp_path / "run"
    assert_clean_error(invoke("train", "gan", "--dataset", f"folder:{flat}", "--epochs", "1", "--set", "image_size=1",
                              "--batch-size", "1", *SMALL_SET, "--out", out),
                       "a batch of one image", "--batch-size", code=2)
    assert not out.exists()


# ------------------------------------------------------------------------------------------ C1

@pytest.mark.parametrize("model", ["gan", "cgan"])
def test_patience_on_a_gan_is_said_to_stop_nothing_and_its_description_says_it_does_not_stop_early(model, tmp_path):
    """Said, not refused: a run trained with --patience before must still resume (patience stays as trained)."""
    out = tmp_path / "run"
    said = assert_ok(invoke("train", model, "--dataset", "digits", "--epochs", "2", "--patience", "1", *SMALL_SET,
                            "--out", out))
    assert "no validation loss" in said and "--patience 1 never stops it" in said
    assert [r["epoch"] for r in read_metrics(out)] == [1, 2]  # every epoch trained
    assert "no early stopping" in zoo.model_info(model)["description"]


# ------------------------------------------------------------------------------------------ C2

def test_a_collapse_says_its_remedies_need_a_new_run(tmp_path):
    with pytest.raises(TrainingDiverged, match="collapse") as e:
        zoo.train("gan", dataset="digits", epochs=1, out=tmp_path / "run", progress=False, log=quiet,
                  collapse_steps=1, collapse_threshold=10.0, **SMALL)
    assert "new run" in e.value.hint and "--resume keeps the run's settings" in e.value.hint


# ------------------------------------------------------------------------------------------ C3

@pytest.mark.parametrize("model", ["gan", "cgan"])
def test_a_dropout_schedule_on_a_gan_does_not_ask_for_a_dropout_setting_it_has_not(model, tmp_path):
    output = assert_clean_error(invoke("train", model, "--dataset", "digits", "--epochs", "1", *SMALL_SET,
                                       "--set", "train_callbacks=dropout-schedule:0.5:3", "--out", tmp_path / "run"),
                                "no `dropout` setting", "Leave the schedule out", code=2)
    assert "--set dropout" not in output


# ------------------------------------------------------------------------------------------ C5

def test_the_gan_presets_shown_for_cgan_do_not_promise_it_clusters():
    output = assert_ok(invoke("info", "cgan"))
    shown = [line for line in output.splitlines() if line.strip().startswith(("sngan (gan's", "wgan-gp (gan's"))]
    assert len(shown) == 2
    assert all("cgan is conditioned on the classes instead" in line for line in shown)
    assert all("(self-conditioning on 50 clusters" not in line for line in shown)


# ------------------------------------------------------------------------------------------ C6

@pytest.mark.parametrize("settings, said", [
    (["--set", "gp_weight=1000"], "gp_weight 1000 weighs the gradient penalty of loss=wgan-gp"),
    (["--set", "optimizer=sgd", "--set", "beta1=0.1", "--set", "beta2=0.2"], "beta1 0.1 and beta2 0.2"),
])
def test_a_gan_setting_the_configuration_does_not_use_is_said_and_its_run_resumes(settings, said, tmp_path):
    out = tmp_path / "run"
    output = assert_ok(invoke("train", "gan", "--dataset", "digits", "--epochs", "1", *SMALL_SET, *settings,
                              "--out", out))
    assert said in output and ("changes nothing" in output or "they change nothing" in output)
    assert_ok(invoke("train", "--resume", out, "--epochs", "2", "--no-progress"))  # the keys a resume cannot change


def test_zoo_info_says_the_collapse_check_is_not_made_with_wgan_gp():
    helps = {p["name"]: p["help"] for p in zoo.model_info("gan")["params"]}
    assert "not checked with loss=wgan-gp" in helps["collapse_steps"]


def test_sgd_with_the_default_betas_still_trains_a_gan(tmp_path):
    assert_ok(invoke("train", "gan", "--dataset", "digits", "--epochs", "1", *SMALL_SET, "--set", "optimizer=sgd",
                     "--out", tmp_path / "run"))


# ------------------------------------------------------------------------------------------ D1

def test_generating_from_a_run_that_finished_no_epoch_says_its_weights_are_untrained(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged):  # the first step counts as collapsed: epoch 0's weights are kept
        zoo.train("gan", dataset="digits", epochs=1, out=run, progress=False, log=quiet, collapse_steps=1,
                  collapse_threshold=10.0, **SMALL)
    output = assert_ok(invoke("generate", run, "--n", "4"))
    assert "has not finished an epoch: these images are of its initial, untrained weights" in output


def test_generating_from_a_trained_run_says_nothing_of_untrained_weights(gan_copy):
    assert "untrained" not in assert_ok(invoke("generate", gan_copy, "--n", "4"))


# ------------------------------------------------------------------------------------------ D4

def test_fid_with_a_sampler_on_a_gan_exits_2_as_generate_does(gan_run, feature_networks):
    said = assert_clean_error(invoke("generate", gan_run, "--sampler", "gmm", "--n", "4"), code=2)
    measured = assert_clean_error(invoke("eval", gan_run, "--fid", "--features", feature_networks["weak"],
                                         "--sampler", "gmm", "--no-progress"), "--sampler", code=2)
    assert said and measured


# ------------------------------------------------------------------------------------------ C2, with the engine

def _collapse_said(train) -> str:
    """Where a training that collapses said it did ("epoch E, step S of the epoch"), or "completed"."""
    try:
        train()
    except TrainingDiverged as e:
        return e.message.split("(")[1].split(")")[0]
    return "completed"


def test_a_resumed_gan_collapses_at_the_step_the_uninterrupted_run_does(tmp_path):
    # every step counts as collapsed (threshold 10), an epoch of digits is 11 steps: 15 are reached in epoch 2
    collapse = {"collapse_threshold": 10.0, "collapse_steps": 15, "dataset": "digits", "progress": False,
                "log": quiet, **SMALL}
    whole = _collapse_said(lambda: zoo.train("gan", epochs=3, out=tmp_path / "whole", **collapse))
    assert whole == "epoch 2, step 4 of the epoch"
    zoo.train("gan", epochs=1, out=tmp_path / "part", **collapse)  # 11 steps of the streak saved with epoch 1
    resumed = _collapse_said(lambda: zoo.train(resume=tmp_path / "part", epochs=3, progress=False, log=quiet))
    assert resumed == whole


def test_zoo_generate_out_into_a_gan_runs_own_samples_png_is_refused(gan_copy, tmp_path):
    """samples.png is the picture a GAN's training ends with, which its card shows: a run record, as loss.png is."""
    trained = (gan_copy / "samples.png").read_bytes()
    said = assert_clean_error(invoke("generate", gan_copy, "--n", "4", "--out", gan_copy / "samples.png"),
                              "would replace the run's own samples.png")
    assert "Write the output elsewhere" in said and (gan_copy / "samples.png").read_bytes() == trained


def test_cuda_graph_on_a_gan_on_the_cpu_is_refused_without_a_note_first_saying_it_is_ignored(tmp_path):
    said = assert_clean_error(invoke("train", "gan", "--dataset", "digits", "--epochs", "1", "--device", "cpu",
                                     "--set", "cuda_graph=true", "--out", tmp_path / "g", "--no-progress"),
                              "which cuda_graph does not record")
    assert "note:" not in said, said  # "cuda_graph acts on CUDA only: ignored", then refused, contradicted itself


def test_compare_of_gan_runs_suggests_their_training_loss_said_to_be_one_not_train_d_fake(gan_run, tmp_path):
    """No GAN has val_loss, and without a measured FID no test figure: the hint named train_d_fake (the first key by
    name), which says nothing of the samples."""
    runs = [shutil.copytree(gan_run, tmp_path / name) for name in ("a", "b")]
    first = zoo.compare(runs).table()[0]
    assert "--sort train_loss sorts them by a training figure; `zoo eval` measures test ones" in first, first


def test_a_gan_run_trained_with_patience_resumes_without_patience_given(tmp_path):
    """A run trained with --patience before the setting was said to do nothing: its resume must not be refused
    over a value a resume cannot drop unasked."""
    out = tmp_path / "run"
    zoo.train("gan", dataset="digits", epochs=1, patience=3, out=out, progress=False, log=quiet, **SMALL)
    assert_ok(invoke("train", "--resume", out, "--epochs", "2", "--no-progress"))
    assert [r["epoch"] for r in read_metrics(out)] == [1, 2]


def test_out_samples_png_into_a_run_that_has_none_is_taken(tmp_path):
    """A VAE stopped before its end has no reconstructions.png, and no samples.png: nothing of its training is
    replaced, so --out RUN/samples.png is no refusal."""
    run = tmp_path / "vae"
    zoo.train("vae", dataset="digits", epochs=1, out=run, progress=False, log=quiet, **TINY)
    (run / "reconstructions.png").unlink(missing_ok=True)
    (run / "samples.png").unlink(missing_ok=True)
    assert_ok(invoke("generate", run, "--n", "4", "--out", run / "samples.png"))
    assert is_png(run / "samples.png")
