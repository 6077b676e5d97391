"""Files an older zoo wrote, read by today's: `zoo compare` shows a run folder's own evaluation only (not the
catalogue's figures of weights whose name the folder bears, nor an old model card's), `zoo info` says an old
fine-tune's relative encoder source for what it is, and an old cv.json's missing keys are left out."""
from __future__ import annotations

import json
import shutil

import zoo
from conftest import assert_ok, invoke, quiet

# The model card as zoo 074f705 wrote it after `zoo eval` (the figures kept there after a resume): no weights digest.
OLD_CARD = """---
library_name: zoo
license: mit
tags:
  - "zoo"
  - "convae"
datasets:
  - "digits"
model-index:
  - name: "r"
    results:
      - task: {type: image-reconstruction}
        dataset: {name: "digits", type: "digits", split: test}
        metrics:
          - {type: mse, value: 0.145514}
          - {type: bce, value: 0.698308}
          - {type: psnr, value: 8.39136}
---

# r: `convae` trained on digits

## Test metrics (359 test images)

| metric | value |
| --- | --- |
| mse | 0.14551 |
"""


def _compared(*runs: str) -> dict[str, dict]:
    said = json.loads(assert_ok(invoke("compare", *runs, "--json")))
    return {row["name"]: row for row in said["runs"]}


def test_compare_of_a_run_folder_named_like_catalogued_weights_shows_no_catalogue_figures(digits_run, tmp_path):
    shutil.copytree(digits_run, tmp_path / "convae")  # the user's own run, not evaluated yet
    row = _compared("convae")["convae"]
    assert row["test_metrics"] == {} and not any("catalogue" in n for n in row["notes"]), row
    assert row["metrics"]["val_loss"] > 0  # its own training figures are still there
    # the catalogued weights, named from elsewhere, still show the catalogue's quoted figures
    published = _compared("convae-mnist")["convae-mnist"]
    assert published["test_metrics"] == zoo.registry.catalogued_metrics("convae-mnist") != {}


def test_compare_takes_no_test_metrics_from_an_older_zoos_card_of_a_run_without_eval_json(run_copy):
    (run_copy / "README.md").write_text(OLD_CARD)
    assert not (run_copy / "eval.json").exists()
    row = _compared(str(run_copy))[str(run_copy)]
    assert row["test_metrics"] == {}, row


def test_info_says_an_older_zoos_relative_encoder_source_is_as_typed_and_not_checked(run_copy, tmp_path):
    head = tmp_path / "ft"
    zoo.finetune(run_copy, hidden=[8], out=head, epochs=1, log=quiet, progress=False)
    record = json.loads((head / "config.json").read_text())
    record["config"]["init_from"] = "convae"  # as typed to an older zoo's finetune, in some working directory
    del record["config"]["init_digest"]  # an older zoo recorded none
    (head / "config.json").write_text(json.dumps(record))
    said = assert_ok(invoke("info", str(head)))
    assert "encoder: copied from 'convae' by an older zoo's finetune" in said and "not checked" in said, said
    assert "copied from convae by zoo finetune" not in said


def test_info_of_an_older_zoos_cv_folder_leaves_out_the_keys_its_cv_json_lacks(tmp_path):
    fold = {"fold": "1", "train_images": 719, "val_images": 719, "epochs": 1, "best_epoch": 1, "value": 0.151,
            "test": {"loss": 0.1509, "mse": 0.1509}, "seconds": 0.1, "stopped": "completed",
            "curve": [{"epoch": 1, "train_loss": 0.152, "val_loss": 0.151}]}
    old = {"model": "convae", "dataset": "digits", "folds": 2, "metric": "val_loss", "reduce": "best",
           "config": {}, "train": {}, "mean": 0.1514, "std": 0.00047,
           "per_fold": [fold, {**fold, "fold": "2", "value": 0.1517}], "test_mean": 0.1509, "test_std": 1e-7}
    (tmp_path / "cv").mkdir()
    (tmp_path / "cv" / "cv.json").write_text(json.dumps(old))  # zoo 074f705's: no pixels, std_is, test_weights
    said = assert_ok(invoke("info", str(tmp_path / "cv")))
    assert "convae on digits: 2-fold cross-validation" in said, said
    assert "mean ± std over 2 folds: 0.1514 ± 0.00047" in said, said
    assert "(?)" not in said and "(std)" not in said
