"""A newcomer's first hour (issue 12): what a new user tripped over, each fixed and held here through
the CLI or the API. Other points of that list live with their subject (test_conv_geometry,
test_folder_frictions, test_analysis_frictions, test_eval_frictions, test_search_defaults,
test_plugin_discovery, test_output_places, test_readme)."""

from __future__ import annotations

import json
import re

from conftest import TINY, TINY_SET, assert_clean_error, assert_ok, invoke, is_png, quiet, read_config
from PIL import Image

import zoo
from zoo import hub as zhub


# ------------------------------------------------------------------------------------------ model cards

def _card_lines(card: str) -> tuple[str, str]:
    """The Python load line and the `zoo eval` line a model card shows."""
    load = re.search(r"^run = (zoo\.load\(.*\))  #", card, re.M).group(1)
    cli = re.search(r"^zoo eval (.*)$", card, re.M).group(1)
    return load, cli


def test_a_run_cards_load_lines_work_as_written(tmp_path):
    zoo.train("convae", dataset="digits", epochs=1, out="runs/digits", log=quiet, progress=False, **TINY)
    load, cli = _card_lines((tmp_path / "runs" / "digits" / "README.md").read_text())
    assert load == 'zoo.load("runs/digits")'
    assert eval(load, {"zoo": zoo}).folder == tmp_path / "runs" / "digits"  # noqa: S307  (the card's own line)
    assert_ok(invoke("eval", *cli.split()))


def test_a_pushed_cards_load_line_works_from_the_hub(digits_run, tmp_path):
    dest = tmp_path / "hub" / "digits"
    zhub.push(digits_run, f"file://{dest}")
    load, cli = _card_lines((dest / "README.md").read_text())
    assert load == f'zoo.load("file://{dest}")'
    assert eval(load, {"zoo": zoo}).record["model"] == "convae"  # noqa: S307
    assert_ok(invoke("eval", cli))


# ------------------------------------------------------------------------------------------ zoo info

def test_info_of_a_run_folder_says_what_it_is(run_copy):
    out = assert_ok(invoke("info", run_copy))
    assert f"{run_copy}: a convae run" in out and "on digits" in out
    assert "training: 2 of 2 epochs (completed), best epoch" in out and "channels=[4, 8, 8]" in out
    assert f'load it: zoo.load("{run_copy}")' in out
    data = json.loads(assert_ok(invoke("info", run_copy, "--json")))
    assert data["model"] == "convae" and data["training"]["epochs"] == 2
    assert data["changed"]["hidden"] == [16] and "latent_dim" not in data["changed"]  # the default is not shown


def test_info_of_a_hub_location_and_the_listing_of_a_folder_hub(digits_run, tmp_path):
    for name in ("a", "b"):
        zhub.push(digits_run, f"file://{tmp_path / 'hub' / name}")
    out = assert_ok(invoke("info", f"file://{tmp_path / 'hub' / 'a'}"))
    assert "a convae run" in out
    listing = assert_ok(invoke("info", f"file://{tmp_path / 'hub'}"))
    assert f"file://{tmp_path / 'hub' / 'a'}  convae on digits" in listing
    assert f"file://{tmp_path / 'hub' / 'b'}  convae on digits" in listing
    entries = json.loads(assert_ok(invoke("info", f"file://{tmp_path / 'hub'}", "--json")))["entries"]
    assert [e["name"] for e in entries] == ["a", "b"]


def test_info_of_something_that_is_neither_is_one_message(tmp_path):
    assert_clean_error(invoke("info", "runs/nothing"), "runs/nothing does not exist")
    assert_clean_error(invoke("info", "convea"), "unknown model 'convea'")


# ------------------------------------------------------------------------------------------ naming the model

def test_train_takes_the_model_a_config_file_names(tmp_path):
    (tmp_path / "best.toml").write_text('model = "dae"\nepochs = 1\nchannels = [4, 8, 8]\nhidden = [16]\n')
    assert_ok(invoke("train", "--config", tmp_path / "best.toml", "--out", tmp_path / "r", *TINY_SET))
    assert read_config(tmp_path / "r")["model"] == "dae"


def test_train_without_any_model_says_where_one_may_be_named(tmp_path):
    assert_clean_error(invoke("train"), "which model?", 'model = "NAME"',
                       "Installed: cgan, classifier, convae, cvae, dae")
    (tmp_path / "odd.toml").write_text("model = 123\n")
    assert_clean_error(invoke("train", "--config", tmp_path / "odd.toml"), "model = 123", "named by a string")


def test_an_eval_option_the_model_does_not_take_is_refused(run_copy):
    assert_clean_error(invoke("eval", run_copy, "--iwae-k", 3), "(--iwae-k) does not apply to model 'convae'")
    assert not (run_copy / "eval.json").exists()


# ------------------------------------------------------------------------------------------ --overwrite

def test_overwrite_replaces_a_run_and_only_when_asked(tmp_path):
    run = tmp_path / "r"
    args = ["train", "convae", "--dataset", "digits", "--epochs", 1, "--out", run, *TINY_SET]
    assert_ok(invoke(*args))
    (run / "notes.txt").write_text("mine")
    for i in range(14):  # the old weights' pictures: every one named, and said not to be the new weights'
        (run / f"picture-{i:02d}.png").write_bytes(b"")
    first = (run / "model.safetensors").read_bytes()
    assert_clean_error(invoke(*args), "already holds a run", "--overwrite")
    out = assert_ok(invoke(*args[:-len(TINY_SET)], "--seed", 7, "--overwrite", *TINY_SET))
    assert "removed the run" in out and "kept notes.txt, picture-00.png" in out and "and 3 more" in out
    assert "are not of the new ones; delete them or make them again" in out
    assert (run / "model.safetensors").read_bytes() != first and (run / "notes.txt").read_text() == "mine"
    assert read_config(run)["train"]["seed"] == 7


def test_overwrite_keeps_the_old_run_when_the_new_one_cannot_be_built(run_copy):
    before = (run_copy / "model.safetensors").read_bytes()
    assert_clean_error(invoke("train", "convae", "--out", run_copy, "--overwrite", *TINY_SET,
                              "--set", "channels=4,4,4,4"),
                       "padding=[1, 1, 0] has 3 values, and channels gives 4 conv layers")
    assert (run_copy / "model.safetensors").read_bytes() == before and (run_copy / "config.json").is_file()


def test_overwrite_with_resume_is_refused(run_copy):
    assert_clean_error(invoke("train", "--resume", run_copy, "--overwrite"), "--overwrite with --resume")


# ------------------------------------------------------------------------------------------ GAN progress

def test_a_gan_writes_progress_grids_by_default_including_the_last_epoch(tmp_path):
    zoo.train("gan", dataset="digits", epochs=2, out=tmp_path / "g", log=quiet, progress=False,
              g_channels=8, d_channels=8, latent_dim=8, device="cpu")
    assert [p.name for p in sorted((tmp_path / "g" / "progress").iterdir())] == ["epoch_0002.png"]


# ------------------------------------------------------------------------------------------ classifiers

def test_a_classifier_from_scratch_reads_the_conv_features_by_default():
    assert zoo.create("classifier").config.features == "conv"
    assert zoo.model_info("classifier")["params"]


def test_classification_results_name_the_classes_and_the_confusion_matrix(tmp_path):
    for name, colour in (("cat", (200, 30, 30)), ("dog", (30, 30, 200))):
        (tmp_path / "pets" / name).mkdir(parents=True)
        for i in range(12):
            shade = tuple(min(255, c + 5 * i) for c in colour)
            Image.new("RGB", (16, 16), shade).save(tmp_path / "pets" / name / f"{i}.png")
    zoo.train("classifier", dataset=f"folder:{tmp_path / 'pets'}", epochs=1, out=tmp_path / "c", log=quiet,
              progress=False, **TINY)
    out = assert_ok(invoke("eval", tmp_path / "c"))
    assert re.search(r"per-class accuracy: cat: [\d.]+%, dog: [\d.]+%", out), out
    assert f"confusion matrix: {tmp_path / 'c' / 'confusion.png'}" in out and is_png(tmp_path / "c" / "confusion.png")
    assert "colour levels (RGB)" in out and "grey levels" not in out
