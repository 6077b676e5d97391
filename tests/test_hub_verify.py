"""A folder-hub pull says "verified" only of what it checked: each copied file against the sha256 the
push recorded in its mark (.zoo-pushed.json). A changed model file refuses the pull, a changed card or
picture is left out with a note, a file the mark does not list is fetched unverified; a hard-linked file
is treated as a symbolic link (never copied), and cached copies are never more permissive than the hub's."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from conftest import assert_clean_error, assert_ok, invoke

import zoo
from zoo import hub as zhub

MARK = ".zoo-pushed.json"


def mark_of(hub: Path) -> dict:
    return json.loads((hub / MARK).read_text())


def rewrite_mark(hub: Path, change) -> None:
    mark = mark_of(hub)
    change(mark["files"])
    (hub / MARK).write_text(json.dumps(mark))


def pulled(result) -> tuple[str, Path]:
    """The pull's messages and the cached folder it printed."""
    out = assert_ok(result)
    return out, Path(result.stdout.strip().splitlines()[-1])


def summary(out: str, hub: Path) -> str:
    """The pull's last message: 'file://HUB: fetched; verified ...; not verified: ...'."""
    return next(line for line in reversed(out.splitlines()) if line.startswith(f"file://{hub}: "))


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_pull_says_verified_of_every_file_the_push_mark_vouches_for(folder_hub):
    pushed = sorted(mark_of(folder_hub)["files"])
    out, folder = pulled(invoke("pull", f"file://{folder_hub}"))
    assert summary(out, folder_hub).endswith(f"fetched; verified {', '.join(pushed)}")
    assert "not verified" not in out
    out, again = pulled(invoke("pull", f"file://{folder_hub}"))  # the cached copy keeps what was checked
    assert again == folder
    assert summary(out, folder_hub).endswith(f"already in the cache; verified {', '.join(pushed)}")
    assert zoo.hub.pull(f"file://{folder_hub}")["verified"] == pushed


def test_a_changed_card_or_picture_is_left_out_and_not_called_verified(folder_hub):
    with open(folder_hub / "README.md", "a") as fh:
        fh.write("x")
    (folder_hub / "loss.png").write_bytes(b"someone else's file")
    out, folder = pulled(invoke("pull", f"file://{folder_hub}"))
    for name in ("README.md", "loss.png"):
        assert f"note: {name} of file://{folder_hub} is not the file the push wrote" in out
        assert not (folder / name).exists()
    assert "in its push mark but not in the hub" not in out  # they are in the hub, changed: said once, rightly
    line = summary(out, folder_hub)
    assert "README.md" not in line and "loss.png" not in line
    assert "verified config.json" in line and "model.safetensors" in line
    zoo.load(f"file://{folder_hub}")


@pytest.mark.parametrize("name", ["config.json", "model.safetensors"])
def test_a_model_file_that_differs_from_the_push_mark_refuses_the_pull(folder_hub, name):
    rewrite_mark(folder_hub, lambda files: files.update({name: "0" * 64}))
    assert_clean_error(invoke("pull", f"file://{folder_hub}"),
                       f"{name} of file://{folder_hub} is not the file the push wrote", "push the run again")
    assert not list((zhub.zoo_cache() / "file").glob("*/model.safetensors"))


def test_a_file_the_mark_does_not_list_is_fetched_and_said_unverified(folder_hub):
    rewrite_mark(folder_hub, lambda files: files.pop("loss.png"))
    out, folder = pulled(invoke("pull", f"file://{folder_hub}"))
    assert (folder / "loss.png").is_file()
    assert "loss.png of file://" in out and "not in its push mark" in out
    line = summary(out, folder_hub)
    assert line.endswith("; not verified: loss.png") and "; verified README.md, config.json" in line


def test_a_hub_without_a_mark_verifies_nothing(folder_hub):
    (folder_hub / MARK).unlink()  # a hub pushed by an older zoo
    out, folder = pulled(invoke("pull", f"file://{folder_hub}"))
    assert "not verified against what a push wrote" in out
    line = summary(out, folder_hub)
    assert "; verified" not in line and "; not verified: README.md, config.json" in line
    assert zoo.hub.pull(f"file://{folder_hub}")["verified"] == []


@pytest.mark.parametrize("mark", ["{not json", "[]", '{"files": ["config.json"]}', '{"files": null}',
                                  '{"files": {"config.json": 123}}', '{"files": {"config.json": "abc"}}'])
def test_a_mark_that_is_not_one_a_push_writes_refuses_the_pull(folder_hub, mark):
    (folder_hub / MARK).write_text(mark)
    assert_clean_error(invoke("pull", f"file://{folder_hub}"), "is not one a push writes")
    assert not any(p.is_file() for p in zhub.zoo_cache().rglob("model.safetensors"))


def test_a_file_the_mark_lists_but_the_hub_lacks_is_said(folder_hub):
    (folder_hub / "loss.png").unlink()
    out, folder = pulled(invoke("pull", f"file://{folder_hub}"))
    assert "loss.png of file://" in out and "in its push mark but not in the hub" in out
    assert not (folder / "loss.png").exists()


def assert_secret_not_cached() -> None:
    for path in zhub.zoo_cache().rglob("*"):
        if path.is_file():
            assert b"TOP-SECRET" not in path.read_bytes(), path


def test_a_picture_hard_linked_to_a_private_file_is_skipped_and_never_copied(folder_hub, secret):
    (folder_hub / "loss.png").unlink()
    os.link(secret, folder_hub / "loss.png")
    out, folder = pulled(invoke("pull", f"file://{folder_hub}"))
    assert f"loss.png of file://{folder_hub} is a hard link" in out and "skipped" in out
    assert not (folder / "loss.png").exists() and (folder / "config.json").is_file()
    assert_secret_not_cached()


@pytest.mark.parametrize("name", ["config.json", "model.safetensors"])
def test_a_hard_linked_model_file_refuses_the_pull(folder_hub, tmp_path, name):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.link(folder_hub / name, elsewhere / name)  # even a second name of the very file pushed
    assert_clean_error(invoke("pull", f"file://{folder_hub}"), f"{name} of file://{folder_hub} is a hard link",
                       "never brings one into its cache")
    assert not list((zhub.zoo_cache() / "file").glob(f"*/{name}"))


def test_cached_copies_are_never_more_permissive_than_the_hub_files(folder_hub):
    (folder_hub / "config.json").chmod(0o600)
    (folder_hub / "loss.png").chmod(0o640)
    _, folder = pulled(invoke("pull", f"file://{folder_hub}"))
    ordinary = 0o666 & ~umask()
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir() if not p.name.startswith(".")}
    assert modes["config.json"] == 0o600 & ordinary
    assert modes["loss.png"] == 0o640 & ordinary
    assert modes["model.safetensors"] == 0o644 & ordinary


def test_a_cached_copy_damaged_since_its_pull_is_copied_again_from_the_hub_and_never_called_verified(folder_hub):
    """An edited eval.json or a cut training log in zoo's cache would show wrong figures as verified; damaged
    weights would ask the user to delete zoo's cache by hand, with the intact hub right there."""
    _, cached = pulled(invoke("pull", folder_hub.as_uri()))
    for name, damage in (("metrics.jsonl", lambda b: b[:50]), ("README.md", lambda b: b + b"tampered"),
                         ("model.safetensors", lambda b: b[:1000])):
        (cached / name).write_bytes(damage((cached / name).read_bytes()))
        out, again = pulled(invoke("pull", folder_hub.as_uri()))
        assert "already in the cache" not in out, name
        assert all((again / n).read_bytes() == (folder_hub / n).read_bytes()
                   for n in ("metrics.jsonl", "README.md", "model.safetensors", "config.json"))
        cached = again
    assert "already in the cache" in pulled(invoke("pull", folder_hub.as_uri()))[0]  # intact now: used as it is
