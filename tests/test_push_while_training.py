"""A push reads a run, then publishes it: a training that resumes on the run meanwhile (rewriting its config.json and
weights) would have it publish a card and figures of other weights than it uploads. The push checks the run again
just before publishing, and publishes nothing where it changed."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

import zoo
from conftest import quiet
from test_hub import REPO_ID, hf_env, server  # noqa: F401  (fixtures)
from zoo import hub as zhub
from zoo.hub import folder
from zoo.runs.lock import lock_run


def _meanwhile(monkeypatch, action) -> None:
    """Run `action` once, while the push writes its first file into the folder hub's new version."""
    write, done = folder._write, []

    def write_and_meanwhile(path, value):
        if not done:
            done.append(action())
        return write(path, value)

    monkeypatch.setattr(folder, "_write", write_and_meanwhile)


def test_a_training_resumed_while_a_folder_push_runs_has_the_push_publish_nothing(run_copy, tmp_path, monkeypatch):
    dest = tmp_path / "hub" / "digits"
    _meanwhile(monkeypatch, lambda: zoo.train(resume=run_copy, epochs=3, log=quiet, progress=False))
    with pytest.raises(zhub.HubError, match="changed while it was being pushed .its weights or config.json were "
                                            "replaced.: nothing was published") as e:
        zhub.push(run_copy, f"file://{dest}")
    assert e.value.hint == "Push it again when its training has ended."
    assert os.listdir(dest.parent) == []  # no entry, no half-written version left behind
    monkeypatch.undo()
    zhub.push(run_copy, f"file://{dest}")  # pushed again, as the message says: the resumed run, whole
    assert (dest / "model.safetensors").read_bytes() == (run_copy / "model.safetensors").read_bytes()


def test_a_training_begun_on_the_run_during_a_folder_push_is_said(run_copy, tmp_path, monkeypatch):
    dest = tmp_path / "hub" / "digits"
    zhub.push(run_copy, f"file://{dest}")
    before = {p.name: p.read_bytes() for p in dest.iterdir()}
    held = []
    _meanwhile(monkeypatch, lambda: held.append(lock_run(run_copy)))  # as `zoo train --resume` takes it
    try:
        with pytest.raises(zhub.HubError, match="a zoo process began training it"):
            zhub.push(run_copy, f"file://{dest}")
    finally:
        held[0].release()
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == before  # the earlier version stays as it was


def test_weights_replaced_before_an_upload_are_not_committed(server, hf_env, run_copy):  # noqa: F811
    """Between reading the run and building the upload, its weights change: no commit is made."""
    script = (
        "import importlib\n"
        "p = importlib.import_module('zoo.hub.push')  # the module (zoo.hub.push is also the function)\n"
        "from pathlib import Path\n"
        "real = p.offline\n"
        "def meanwhile():\n"
        f"    w = Path({str(run_copy)!r}) / 'model.safetensors'\n"
        "    data = bytearray(w.read_bytes()); data[-1] ^= 1; w.write_bytes(bytes(data))\n"
        "    return real()\n"
        "p.offline = meanwhile\n"
        "from zoo import hub\n"
        "try:\n"
        f"    hub.push({str(run_copy)!r}, 'hf://{REPO_ID}')\n"
        "except hub.HubError as e:\n"
        "    print('refused:', e.message)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **hf_env})
    assert "refused:" in done.stdout and "nothing was published" in done.stdout, done.stdout + done.stderr
    assert not [r for r in server.requests if r[0] == "POST" and "commit" in r[1]], server.requests


def test_a_run_whose_files_cannot_be_read_is_one_clear_refusal(run_copy, tmp_path, monkeypatch):
    """As a user who may not read the weights: a raw PermissionError (the CLI said "You may not write there")."""
    import pathlib

    read_bytes = pathlib.Path.read_bytes

    def denied(self):
        if self.parent == run_copy:
            raise PermissionError(13, "Permission denied")
        return read_bytes(self)

    monkeypatch.setattr(pathlib.Path, "read_bytes", denied)
    with pytest.raises(zhub.HubError, match=f"cannot read config.json from {run_copy}: Permission denied"):
        zhub.push(run_copy, f"file://{tmp_path / 'hub' / 'x'}")
    assert not (tmp_path / "hub" / "x").exists()
