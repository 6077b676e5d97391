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


def test_a_pushed_heads_info_says_nothing_of_its_publishers_paths(run_copy, tmp_path):
    """A pulled copy's init_from is a path of the machine it was trained on: checked here, it said "gone" (or
    compared an unrelated run that happened to lie there)."""
    head = _head(run_copy, tmp_path / "head")
    hub = f"file://{tmp_path / 'hub' / 'head'}"
    assert_ok(invoke("push", str(head), hub))
    shutil.rmtree(run_copy)  # as on another machine
    said = assert_ok(invoke("info", hub))
    assert "encoder: copied from" not in said and "gone" not in said, said
    assert json.loads(invoke("info", hub, "--json").stdout)["provenance"] == []


def test_a_source_folder_that_cannot_be_read_is_said_not_a_failed_info(run_copy, tmp_path, monkeypatch):
    """As a user without the right to enter the source's folder: `zoo info` of the head said "You may not write
    there" (a PermissionError from a read)."""
    import pathlib

    head = _head(run_copy, tmp_path / "head")
    is_file = pathlib.Path.is_file

    def denied(self, *args, **kwargs):
        if str(self).startswith(str(run_copy)):
            raise PermissionError(13, "Permission denied")
        return is_file(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "is_file", denied)
    said = assert_ok(invoke("info", str(head)))
    assert "its weights cannot be read now (Permission denied)" in said, said
