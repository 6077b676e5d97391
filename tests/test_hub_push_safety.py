"""`zoo push RUN file://DEST` may only create a folder hub or replace one a push made: never another
run, the run itself, a folder that holds or lies in it, zoo's or huggingface-hub's caches, zoo's bundled
weights, or anything through a link; and it never publishes a damaged run. Every refusal leaves every
byte where it was."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

import zoo
from conftest import assert_clean_error, assert_ok, invoke, quiet, run_zoo, stopped_run
from test_hub import REPO_ID, hf_env, server  # noqa: F401  (fixtures)
from zoo import hub as zhub
from zoo import registry

MARK = ".zoo-pushed.json"


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every file (its bytes), link (its target) and folder under `root`, by relative path."""
    root = Path(root)
    found: dict[str, bytes | str] = {".": "dir"}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = f"link -> {os.readlink(path)}"
            elif path.is_dir():
                found[rel] = "dir"
            else:
                found[rel] = path.read_bytes()
    return found


def flip_tensor_bytes(path: Path, n: int = 50) -> None:
    """Damage the tensors' bytes (not the header) of a safetensors file, as a bad disk would."""
    data = bytearray(path.read_bytes())
    for i in range(len(data) - n, len(data)):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


def test_a_run_with_damaged_weights_is_not_pushed_and_the_message_blames_the_run_not_a_download(run_copy, tmp_path):
    weights = run_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    assert_clean_error(invoke("push", run_copy, f"file://{tmp_path / 'hub' / 'r'}"), "not a valid safetensors file",
                       "the run's own file is damaged: restore it (or train the run again) before pushing", code=1)
    assert not (tmp_path / "hub").exists()


def test_a_run_that_has_not_finished_an_epoch_is_pushed_with_a_note_that_its_weights_are_untrained(run_copy,
                                                                                                   tmp_path):
    stopped_run("convae", tmp_path / "early")
    result = invoke("push", tmp_path / "early", f"file://{tmp_path / 'hub' / 'r'}")
    assert_ok(result)
    assert "has not finished an epoch: the push publishes its initial, untrained weights" in result.output
    card = (tmp_path / "hub" / "r" / "README.md").read_text()  # what a puller reads says it too
    assert "stopped before it finished an epoch: these are the weights it started with, not trained ones" in card
    assert "  training: {best_epoch: 0, epochs: 0, of: 3}" in card
    (run_copy / "metrics.jsonl").unlink()  # a trained run that lost its training log is not said to be untrained
    result = invoke("push", run_copy, f"file://{tmp_path / 'hub' / 'trained'}")
    assert "has not finished an epoch" not in assert_ok(result)
    assert "not trained ones" not in (tmp_path / "hub" / "trained" / "README.md").read_text()


def test_a_push_that_replaces_another_runs_entry_says_so_and_one_of_the_same_run_does_not(digits_run, run_copy,
                                                                                         tmp_path):
    dest = f"file://{tmp_path / 'hub' / 'entry'}"
    assert_ok(invoke("push", digits_run, dest))
    again = invoke("push", digits_run, dest)
    assert_ok(again)
    assert "held a push of another run" not in again.output
    config = json.loads((run_copy / "config.json").read_text())
    config["run_id"] = "another-run"
    (run_copy / "config.json").write_text(json.dumps(config))
    other = invoke("push", run_copy, dest)
    assert_ok(other)
    assert f"note: {dest} held a push of another run (a convae run trained {config['created']}): replaced" \
        in other.output


def test_push_over_another_run_is_refused_and_leaves_it_byte_identical(digits_run, tmp_path):
    other = Path(shutil.copytree(digits_run, tmp_path / "runs" / "b"))
    (other / "sampler-gmm.safetensors").write_bytes(b"fitted sampler")
    before, siblings = snapshot(other), sorted(os.listdir(other.parent))
    out = assert_clean_error(invoke("push", digits_run, f"file://{other}"),
                             "is a zoo run folder", "not a folder hub that `zoo push` made", "refusing to replace it")
    assert "checkpoint.safetensors" in out and "move" in out  # says what DEST is and what to do
    assert snapshot(other) == before
    assert sorted(os.listdir(other.parent)) == siblings  # no temporary folder left beside it


def test_push_onto_into_or_around_the_run_itself_is_refused(run_copy, tmp_path):
    before = snapshot(tmp_path)
    os.symlink(run_copy, tmp_path / "alias")
    cases = {
        f"file://{run_copy}": "is the run",
        "file://run": "is the run",                  # relative to the working directory (tmp_path)
        f"file://{tmp_path / 'alias'}": "is the run",  # a link to it
        f"file://{run_copy / 'hub'}": "inside the run",
        f"file://{run_copy / 'a' / 'b'}": "inside the run",
        f"file://{tmp_path}": "holds the run",
    }
    for dest, fragment in cases.items():
        assert_clean_error(invoke("push", run_copy, dest), fragment, "refusing to")
    (tmp_path / "alias").unlink()
    assert snapshot(tmp_path) == before


def test_push_into_zoo_and_hugging_face_caches_or_bundled_weights_is_refused(digits_run, run_copy, tmp_path,
                                                                            monkeypatch):
    hub = tmp_path / "team" / "a"
    zhub.push(digits_run, f"file://{hub}")
    cached = Path(zhub.pull(f"file://{hub}")["folder"])
    hf_cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(hf_cache))
    snap = Path(shutil.copytree(cached, hf_cache / "models--org--name" / "snapshots" / ("0" * 40)))
    bundled = registry.weights_folder("convae-mnist")
    watched = {p: snapshot(p) for p in (zhub.zoo_cache(), hf_cache, bundled)}

    for dest in (cached, zhub.zoo_cache() / "file" / "new-entry", snap, hf_cache / "fresh",
                 bundled, bundled.parent / "zoo-test-never-created"):
        assert_clean_error(invoke("push", run_copy, f"file://{dest}"),
                           "inside zoo's cache, the Hugging Face Hub cache or zoo's bundled weights")
    assert {p: snapshot(p) for p in watched} == watched
    assert not (bundled.parent / "zoo-test-never-created").exists()
    zoo.load(f"file://{hub}")  # the pulled copy still loads


def test_push_through_a_symbolic_link_is_refused(digits_run, run_copy, tmp_path):
    real = tmp_path / "real-hub"
    zhub.push(digits_run, f"file://{real}")
    os.symlink(real, tmp_path / "link")
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    before = snapshot(tmp_path)
    for name in ("link", "dangling"):
        assert_clean_error(invoke("push", run_copy, f"file://{tmp_path / name}"), "is a symbolic link")
    assert snapshot(tmp_path) == before


def test_a_push_into_a_folder_reached_through_a_link_works(digits_run, tmp_path):
    (tmp_path / "mnt" / "share").mkdir(parents=True)
    os.symlink(tmp_path / "mnt" / "share", tmp_path / "team")  # /team -> /mnt/share, as shared disks often are
    for _ in range(2):  # created, then replaced
        assert_ok(invoke("push", digits_run, f"file://{tmp_path / 'team' / 'digits'}"))
    assert sorted(os.listdir(tmp_path / "mnt" / "share")) == ["digits"]
    zoo.load(f"file://{tmp_path / 'team' / 'digits'}")


def test_a_push_replaces_only_a_folder_hub_a_push_made_and_keeps_nothing_else(run_copy, tmp_path):
    dest = tmp_path / "hub" / "digits"
    (run_copy / "samples.png").write_bytes(b"\x89PNG\r\n\x1a\nfirst version only")
    assert_ok(invoke("push", run_copy, f"file://{dest}"))
    assert (dest / "samples.png").is_file()

    (run_copy / "samples.png").unlink()
    assert_ok(invoke("push", run_copy, f"file://{dest}"))
    mark = json.loads((dest / MARK).read_text())
    assert sorted(os.listdir(dest)) == sorted([MARK, *mark["files"]])  # the picture of the first push is gone
    assert "samples.png" not in mark["files"]
    assert all(zhub.file_sha256(dest / name) == sha for name, sha in mark["files"].items())
    assert sorted(os.listdir(dest.parent)) == ["digits"]

    (dest / "notes.txt").write_text("my notes")
    before = snapshot(dest)
    assert_clean_error(invoke("push", run_copy, f"file://{dest}"), "holds files no push wrote (notes.txt)")
    assert snapshot(dest) == before
    (dest / "notes.txt").unlink()

    (dest / "README.md").write_text("edited by hand")
    before = snapshot(dest)
    assert_clean_error(invoke("push", run_copy, f"file://{dest}"), "README.md changed since zoo pushed it")
    assert snapshot(dest) == before

    (dest / MARK).write_text("not json")  # a damaged mark is no mark
    assert_clean_error(invoke("push", run_copy, f"file://{dest}"), "not a folder hub that `zoo push` made")

    empty = tmp_path / "empty"
    empty.mkdir()
    assert_ok(invoke("push", run_copy, f"file://{empty}"))
    (tmp_path / "a-file").write_text("x")
    assert_clean_error(invoke("push", run_copy, f"file://{tmp_path / 'a-file'}"), "exists and is not a folder")
    assert (tmp_path / "a-file").read_text() == "x"


def test_a_file_written_into_the_hub_while_a_push_runs_is_never_deleted(digits_run, tmp_path, monkeypatch):
    """Someone saves a file into DEST after the push checked it, while the new version is being written:
    the push checks again what it moved aside, puts it back, and refuses."""
    from zoo.hub import folder

    dest = tmp_path / "hub" / "digits"
    zhub.push(digits_run, f"file://{dest}")
    write = folder._write

    def write_and_meanwhile(path, value):
        if not (dest / "notes.txt").exists():
            (dest / "notes.txt").write_text("saved meanwhile")
        return write(path, value)

    monkeypatch.setattr(folder, "_write", write_and_meanwhile)
    before = {**snapshot(dest), "notes.txt": b"saved meanwhile"}
    with pytest.raises(zhub.HubError, match=r"holds files no push wrote \(notes.txt\)"):
        zhub.push(digits_run, f"file://{dest}")
    assert snapshot(dest) == before
    assert sorted(os.listdir(dest.parent)) == ["digits"]


@pytest.mark.parametrize("damage, fragment", [
    ("weights", "refusing to push a damaged run"),
    ("model-null", "'model' must be the name of a model"),
    ("shape-text", "data.shape must be"),
    ("header", "does not fit the model"),
])
def test_a_damaged_run_is_refused_before_anything_is_written(damage, fragment, run_copy, tmp_path):
    config = json.loads((run_copy / "config.json").read_text())
    if damage == "weights":
        flip_tensor_bytes(run_copy / "model.safetensors")
    elif damage == "model-null":
        config["model"] = None
    elif damage == "shape-text":
        config["data"]["shape"] = "1x8x8"
    else:  # weights of another configuration: the header declares other shapes
        config["config"]["latent_dim"] = config["config"].get("latent_dim", 10) + 1
    (run_copy / "config.json").write_text(json.dumps(config))
    dest = tmp_path / "new" / "hub" / "digits"
    assert_clean_error(invoke("push", run_copy, f"file://{dest}"), fragment)
    assert not (tmp_path / "new").exists()


def test_a_damaged_run_is_never_uploaded(server, hf_env, run_copy):  # noqa: F811
    flip_tensor_bytes(run_copy / "model.safetensors")
    result = run_zoo("push", run_copy, f"hf://{REPO_ID}", env=hf_env, timeout=60)
    assert_clean_error(result, "refusing to push a damaged run")
    assert REPO_ID not in server.repos
    assert not [r for r in server.requests if r[0] == "POST"]


def test_a_picture_of_other_weights_is_not_pushed_whatever_the_files_times(run_copy, tmp_path):
    import torch

    from zoo.analysis import plots

    recon = run_copy / "reconstructions.png"
    weights = run_copy / "model.safetensors"
    os.utime(recon, (weights.stat().st_mtime - 60, weights.stat().st_mtime - 60))  # a copy's order of writing
    plots.image_rows([("", torch.zeros(4, 1, 28, 28))], run_copy / "samples.png", weights="earlier weights")
    dest = tmp_path / "hub" / "r"
    out = assert_ok(invoke("push", run_copy, dest.as_uri()))
    assert "samples.png shows other weights than model.safetensors holds" in out
    assert not (dest / "samples.png").exists() and "samples.png" not in (dest / "README.md").read_text()
    assert (dest / "reconstructions.png").is_file() and (dest / "loss.png").is_file()  # of these weights


def test_a_run_stopped_before_its_end_is_pushed_with_a_note_and_a_card_that_says_so(tmp_path, capsys):
    run = stopped_run("convae", tmp_path / "stopped", epoch=2, epochs=5)
    capsys.readouterr()
    zhub.push(run, (tmp_path / "hub" / "stopped").as_uri())
    assert "training was stopped before its end" in capsys.readouterr().err
    card = (tmp_path / "hub" / "stopped" / "README.md").read_text()
    assert "## Training metrics (best epoch 1 of 1; stopped after 1 of its 5 epochs, before its end)" in card
    assert "training: {best_epoch: 1, epochs: 1, of: 5, stopped_before_its_end: true}" in card
    zoo.train(resume=run, log=quiet, progress=False)  # trained to its end: said no more
    zhub.push(run, (tmp_path / "hub" / "stopped").as_uri())
    assert "before its end" not in (tmp_path / "hub" / "stopped" / "README.md").read_text()
    assert "stopped before its end" not in capsys.readouterr().err


def test_a_config_json_edited_to_another_model_is_not_published_and_loads_as_a_damaged_record(vae_copy, tmp_path):
    """A config.json edited to hold another model's key describes no model zoo builds: a damaged record (exit
    1), not a command-line mistake (exit 2), and never published."""
    config = json.loads((vae_copy / "config.json").read_text())
    config["config"]["pseudo_inputs"] = 20  # a VampPrior's key
    (vae_copy / "config.json").write_text(json.dumps(config))
    assert_clean_error(invoke("push", vae_copy, (tmp_path / "hub" / "x").as_uri()),
                       "does not describe a vae that zoo builds (", "unknown key 'pseudo_inputs'",
                       "restore the run's own config.json")
    assert not (tmp_path / "hub" / "x").exists()
    assert_clean_error(invoke("eval", vae_copy), f"{vae_copy / 'config.json'} does not describe a vae that zoo builds",
                       "The file was edited, or is another model's", code=1)
