"""A folder hub never leads zoo out of itself: a file that is a symbolic link (or not a regular file
at all) is refused when the model needs it and skipped, with a note, when it is optional; a link
swapped in while a pull runs is not followed either; copies in the cache get ordinary permissions, never
more than the hub's file has."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

import zoo
from conftest import assert_clean_error, assert_ok, invoke
from zoo import hub as zhub


@pytest.fixture
def hub(folder_hub) -> Path:
    return folder_hub


def assert_cache_clean() -> list[Path]:
    """No link and no byte of the secret anywhere in zoo's cache; returns its files."""
    files = []
    for dirpath, dirnames, filenames in os.walk(zhub.zoo_cache()):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            assert not path.is_symlink(), path
            if path.is_file():
                assert b"TOP-SECRET" not in path.read_bytes(), path
                files.append(path)
    return files


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_picture_linked_to_a_private_file_is_skipped_and_never_copied(hub, secret):
    (hub / "loss.png").unlink()
    os.symlink(secret, hub / "loss.png")
    (hub / "config.json").chmod(0o600)  # a private file of the hub itself: its copy stays private
    result = invoke("pull", f"file://{hub}")
    out = assert_ok(result)
    assert "loss.png" in out and "symbolic link" in out and "skipped" in out
    folder = Path(result.stdout.strip().splitlines()[-1])
    assert not (folder / "loss.png").exists() and (folder / "reconstructions.png").is_file()
    files = assert_cache_clean()
    assert files and all(stat.S_IMODE(p.stat().st_mode) == (0o600 if p.name == "config.json" else 0o666) & ~umask()
                         for p in files if p.name != ".zoo-pulled.json")
    zoo.load(f"file://{hub}")


@pytest.mark.parametrize("name", ["config.json", "model.safetensors"])
def test_a_model_file_that_is_a_link_refuses_the_pull(name, hub, secret, tmp_path):
    target = tmp_path / "elsewhere" / name  # even a link to a perfectly good copy is refused
    target.parent.mkdir()
    (hub / name).rename(target)
    os.symlink(target, hub / name)
    assert_clean_error(invoke("pull", f"file://{hub}"), f"{name} of file://{hub} is a symbolic link",
                       "never follows a link out of a hub")
    with pytest.raises(zhub.HubError, match="symbolic link"):
        zoo.load(f"file://{hub}")
    assert not [p for p in assert_cache_clean() if p.name == name]


def test_a_link_to_the_secret_under_a_model_name_is_refused(hub, secret):
    (hub / "config.json").unlink()
    os.symlink(secret, hub / "config.json")
    assert_clean_error(invoke("pull", f"file://{hub}"), "config.json", "symbolic link")
    assert_cache_clean()


def test_a_fifo_or_folder_in_a_hub_is_skipped_without_hanging(hub):
    (hub / "loss.png").unlink()
    os.mkfifo(hub / "loss.png")           # opening it for reading would wait for a writer forever
    (hub / "samples.png").mkdir()
    out = assert_ok(invoke("pull", f"file://{hub}"))
    assert "loss.png" in out and "not a regular file" in out


def test_a_link_swapped_in_while_pulling_is_never_followed(hub, secret):
    """One thread keeps swapping loss.png between a picture and a link to the secret while pulls run:
    opening with O_NOFOLLOW means the moment between zoo's check and its copy cannot be used."""
    picture = (hub / "loss.png").read_bytes()
    stop = threading.Event()

    def swap():
        i = 0
        while not stop.is_set():
            tmp = hub / f".swap-{i}"
            if i % 2:
                tmp.write_bytes(picture)
            else:
                os.symlink(secret, tmp)
            os.replace(tmp, hub / "loss.png")
            i += 1

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    try:
        for _ in range(40):
            zhub.pull(f"file://{hub}", log=lambda msg: None)
    finally:
        stop.set()
        swapper.join()
    assert_cache_clean()
