"""What cards, zoo info and zoo compare say of runs of the newer families (cards23): zoo eval --fid's figures in
the run's own card and info, the options that measured them, a damaged training log, an edited eval.json, a
conditional model's class accuracy, the pushed card's lines, a config.json zoo cannot build."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import zoo
from conftest import assert_ok, invoke, quiet
from zoo.runs import checkpoint as ckpt


@pytest.fixture(scope="module")
def gan_and_features(tmp_path_factory) -> tuple[Path, Path]:
    """A 1-epoch tiny GAN and a 1-epoch classifier (its feature network) on digits, which has no catalogued one."""
    root = tmp_path_factory.mktemp("cards23")
    zoo.train("gan", dataset="digits", epochs=1, g_channels=8, d_channels=8, out=root / "gan", log=quiet,
              progress=False, device="cpu")
    zoo.train("classifier", dataset="digits", epochs=1, out=root / "features", log=quiet, progress=False,
              device="cpu")
    return root / "gan", root / "features"


def _quality(run: Path, **extra) -> None:
    """A quality.json of the run's current weights, as zoo eval --fid writes it."""
    record = {"images": 359, "samples_vs_test": {"fid": 1.25, "kid": 0.01, "precision": 0.5, "recall": 0.25},
              ckpt.WEIGHTS_DIGEST: ckpt.weights_digest(run / "model.safetensors"), "feature_network": "features-x",
              **extra}
    (run / "quality.json").write_text(json.dumps(record))


def _compared(run: Path) -> dict:
    result = invoke("compare", run, "--json")
    assert_ok(result)
    return json.loads(result.stdout)["runs"][0]


def test_eval_fid_writes_the_runs_card_with_the_command_that_measured_it_and_info_shows_the_figures(
        gan_and_features, tmp_path, monkeypatch):
    gan, features = gan_and_features
    shutil.copytree(gan, tmp_path / "mygan")
    shutil.copytree(features, tmp_path / "feat")
    monkeypatch.chdir(tmp_path)
    assert_ok(invoke("eval", "mygan", "--fid", "--fid-n", "100", "--features", "feat", "--no-progress"))
    quality = json.loads(Path("mygan/quality.json").read_text())
    assert quality["feature_network"] == str(tmp_path / "feat")  # not the cwd-relative "feat"
    card = Path("mygan/README.md").read_text()
    assert "## Sample quality (100 samples" in card and "| classifier_fid |" in card
    assert f"`zoo eval mygan --fid --features {tmp_path / 'feat'} --fid-n 100`" in card
    assert 'zoo.load("mygan")' in card  # the run as the user typed it, as zoo train wrote the card
    out = assert_ok(invoke("info", "mygan"))
    assert "sample quality (100 samples against the test images" in out and "classifier_fid " in out
    assert "last epoch 1 kept" in out and "best epoch" not in out  # a GAN keeps its last epoch
    data = json.loads(assert_ok(invoke("info", "mygan", "--json")))
    assert data["sample_quality"]["classifier_fid"] == pytest.approx(quality["samples_vs_test"]["fid"])
    # pushed: the network by a name no reader takes for a catalogued one, the figures in the model-index
    assert_ok(invoke("push", "mygan", f"file://{tmp_path / 'hub' / 'gan'}"))
    pushed = (tmp_path / "hub" / "gan" / "README.md").read_text()
    assert "--features ./feat --fid-n 100" in pushed and str(tmp_path / "feat") not in pushed
    assert "model-index:" in pushed and "- {type: classifier_fid, value:" in pushed
    assert f"zoo info file://{tmp_path / 'hub' / 'gan'}\n" in pushed  # the pulled weights, not the model's help
    assert "## Training metrics (last epoch 1 of 1 kept)" in pushed


def test_info_shows_a_classifiers_validation_accuracy(gan_and_features):
    out = assert_ok(invoke("info", gan_and_features[1]))
    assert "best epoch 1 (" in out and "val_accuracy " in out


def test_a_damaged_metrics_line_is_said_and_the_card_names_the_epochs_the_checkpoint_records(run_copy, tmp_path):
    path = run_copy / "metrics.jsonl"
    lines = path.read_text().splitlines()
    path.write_text(lines[0] + "\n" + lines[1][:30] + "\n")  # epoch 2's line cut short
    out = assert_ok(invoke("push", run_copy, f"file://{tmp_path / 'hub' / 'r'}"))
    assert "1 damaged line of metrics.jsonl skipped" in out
    card = (tmp_path / "hub" / "r" / "README.md").read_text()
    assert "epochs: 2}" in card and "of 1" not in card and "metrics.jsonl is partial" in card
    info = assert_ok(invoke("info", run_copy))
    assert "training: 2 of 2 epochs" in info and "1 damaged line of metrics.jsonl skipped" in info


def test_an_eval_json_edited_since_its_evaluation_is_neither_published_nor_compared(vae_copy, tmp_path):
    assert_ok(invoke("eval", vae_copy, "--no-progress"))
    record = json.loads((vae_copy / "eval.json").read_text())
    record["metrics"]["mse"] = 1e-9
    (vae_copy / "eval.json").write_text(json.dumps(record))
    out = assert_ok(invoke("push", vae_copy, f"file://{tmp_path / 'hub' / 'v'}"))
    assert "eval.json holds other figures than its evaluation wrote" in out
    assert not (tmp_path / "hub" / "v" / "eval.json").exists()
    assert "1e-09" not in (tmp_path / "hub" / "v" / "README.md").read_text()
    row = _compared(vae_copy)
    assert "mse" not in row["test_metrics"] and any("edited since" in n for n in row["notes"])


def test_a_conditional_models_class_accuracy_is_compared_and_carded(run_copy, tmp_path):
    _quality(run_copy, class_accuracy={"mean": 0.625, "per_class": {}})
    row = _compared(run_copy)
    assert row["test_metrics"]["class_accuracy"] == pytest.approx(0.625)
    assert_ok(invoke("push", run_copy, f"file://{tmp_path / 'hub' / 'c'}"))
    card = (tmp_path / "hub" / "c" / "README.md").read_text()
    assert "| class_accuracy | 0.625 |" in card and "- {type: class_accuracy, value: 0.625}" in card
    assert "--features features-x --fid-n 359" in card


def test_a_stale_quality_json_is_said_by_compare(run_copy):
    _quality(run_copy)
    record = json.loads((run_copy / "quality.json").read_text())
    record[ckpt.WEIGHTS_DIGEST] = "0" * 64
    (run_copy / "quality.json").write_text(json.dumps(record))
    row = _compared(run_copy)
    assert "classifier_fid" not in row["test_metrics"]
    assert any("quality.json is stale" in n for n in row["notes"])


def test_compare_names_zoo_eval_fid_for_quoted_sample_figures():
    out = assert_ok(invoke("compare", "gan-mnist", "--sort", "test_classifier_fid"))
    assert "zoo eval gan-mnist --fid measures them" in out


def test_info_and_compare_say_a_config_json_zoo_cannot_build_and_offer_no_load_line(run_copy):
    record = json.loads((run_copy / "config.json").read_text())
    record["config"]["my_extra"] = 3
    (run_copy / "config.json").write_text(json.dumps(record))
    out = assert_ok(invoke("info", run_copy))
    assert "does not describe a convae model that zoo builds" in out and "zoo.load(" not in out
    row = _compared(run_copy)
    assert any("does not describe a convae model that zoo builds" in n for n in row["notes"])
