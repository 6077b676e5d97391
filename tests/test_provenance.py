"""`zoo info` of a fine-tuned head says where its encoder came from, checked as it is shown: the source run still
holding the weights it was copied from, trained on since, or gone (the head holds its own copy)."""
from __future__ import annotations

import json
import shutil

import zoo
from conftest import TINY, assert_ok, invoke, quiet


def _head(source, out):
    zoo.finetune(source, hidden=[8], out=out, epochs=1, log=quiet, progress=False)
    return out


def test_zoo_info_of_a_head_says_its_encoders_source_is_unchanged_changed_or_gone(run_copy, tmp_path):
    head = _head(run_copy, tmp_path / "head")
    said = assert_ok(invoke("info", str(head)))
    assert f"encoder: copied from {run_copy} by zoo finetune (its weights unchanged since)" in said

    zoo.train(resume=run_copy, epochs=3, log=quiet, progress=False)  # the source trained on: other weights
    said = assert_ok(invoke("info", str(head)))
    assert "its weights have changed since (trained on or replaced)" in said and "unchanged" not in said
    data = json.loads(invoke("info", str(head), "--json").stdout)
    assert data["provenance"] == [line for line in said.splitlines() if line.startswith("encoder: ")]

    shutil.rmtree(run_copy)
    said = assert_ok(invoke("info", str(head)))
    assert f"that run is gone (no {run_copy / 'model.safetensors'}): this run holds its own copy" in said
    assert zoo.load(head).classify  # and it loads without it


def test_runs_of_other_models_and_heads_trained_from_scratch_say_nothing_of_a_source(digits_run, tmp_path):
    head = zoo.train("classifier", dataset="digits", epochs=1, out=tmp_path / "plain", log=quiet, progress=False,
                     **TINY).run_dir
    for run in (head, digits_run):
        assert json.loads(invoke("info", str(run), "--json").stdout)["provenance"] == []
        assert "encoder: copied from" not in assert_ok(invoke("info", str(run)))
