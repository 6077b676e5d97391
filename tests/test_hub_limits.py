"""A pull fetches at most a cap per kind of file, checked against the size the hub lists (or `stat`
gives) before the file is requested, and again while it streams: a model file over its cap refuses the
pull, an optional one is skipped with a note; ZOO_HUB_MAX_BYTES raises every cap."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import zoo
from conftest import assert_clean_error, assert_ok, invoke, run_zoo, weights
from test_hub import REPO_ID, hf_cache, hf_env, last_line, run_bytes, server  # noqa: F401  (fixtures)
from zoo import hub as zhub

MiB = 1 << 20
BIG_PICTURE = b"\x89PNG\r\n\x1a\n" + bytes(21 * MiB)  # over the 20 MiB a picture may have


def padded_weights(run: Path, tmp_path: Path, extra_mib: int = 8) -> bytes:
    """The run's weights plus one large extra tensor: far more bytes than the model has."""
    state = weights(run / "model.safetensors")
    state["extra"] = torch.zeros(extra_mib * MiB // 4)
    path = tmp_path / "padded.safetensors"
    save_file(state, str(path))
    return path.read_bytes()


def sparse(path: Path, size: int) -> None:
    """A file that claims `size` bytes and holds none: reading it whole would take hours."""
    with open(path, "wb") as fh:
        fh.truncate(size)


def verified_records(tmp_path: Path) -> list[Path]:
    return list((tmp_path / "xdg-cache" / "zoo" / "hub").rglob("verified/*.json"))


# ------------------------------------------------------------------------------------------ the Hugging Face Hub

def test_an_oversized_picture_is_skipped_without_being_requested(server, hf_env, digits_run, tmp_path):  # noqa: F811
    server.seed(REPO_ID, {**run_bytes(digits_run, "README.md"), "samples.png": BIG_PICTURE})
    result = run_zoo("pull", f"hf://{REPO_ID}", env=hf_env, timeout=60)
    folder = Path(last_line(result))
    assert "samples.png" in result.stderr and "21.0 MiB" in result.stderr and "skipped" in result.stderr
    assert "ZOO_HUB_MAX_BYTES" in result.stderr
    assert server.requested("samples.png") == []
    assert not (folder / "samples.png").exists() and run_bytes(folder) == run_bytes(digits_run)


def test_weights_larger_than_their_model_are_refused_without_being_requested(server, hf_env, digits_run,  # noqa: F811
                                                                              tmp_path):
    server.seed(REPO_ID, {**run_bytes(digits_run), "model.safetensors": padded_weights(digits_run, tmp_path)})
    result = run_zoo("eval", f"hf://{REPO_ID}", env=hf_env, timeout=60)
    assert_clean_error(result, "model.safetensors of hf://", "more than the",
                       "zoo fetches for the weights its config.json describes", "ZOO_HUB_MAX_BYTES")
    assert server.requested("model.safetensors") == []
    assert not verified_records(tmp_path)


def test_the_caps_hold_while_streaming_when_the_listing_understates_sizes(server, hf_env, digits_run,  # noqa: F811
                                                                          tmp_path):
    good = run_bytes(digits_run)
    server.seed(REPO_ID, {**good, "samples.png": BIG_PICTURE})
    server.listed_sizes = {"samples.png": 100}
    result = run_zoo("pull", f"hf://{REPO_ID}", env=hf_env, timeout=60)
    folder = Path(last_line(result))
    assert "samples.png" in result.stderr and "is larger than the 20.0 MiB" in result.stderr
    assert not (folder / "samples.png").exists()
    assert not list(hf_cache(tmp_path).rglob("*.incomplete"))
    assert not [p for p in hf_cache(tmp_path).rglob("blobs/*") if p.stat().st_size > 20 * MiB]

    server.seed("zoo-test/padded", {**good, "model.safetensors": padded_weights(digits_run, tmp_path)})
    server.listed_sizes = {"model.safetensors": len(good["model.safetensors"])}
    assert_clean_error(run_zoo("pull", "hf://zoo-test/padded", env=hf_env, timeout=60),
                       "model.safetensors of hf://zoo-test/padded is larger than the")
    assert not [p for p in hf_cache(tmp_path).rglob("blobs/*") if p.stat().st_size > 2 * MiB]


def test_ZOO_HUB_MAX_BYTES_raises_the_caps(server, hf_env, digits_run):  # noqa: F811
    server.seed(REPO_ID, {**run_bytes(digits_run), "samples.png": BIG_PICTURE})
    env = {**hf_env, "ZOO_HUB_MAX_BYTES": str(32 * MiB)}
    folder = Path(last_line(run_zoo("pull", f"hf://{REPO_ID}", env=env, timeout=60)))
    assert (folder / "samples.png").read_bytes() == BIG_PICTURE
    assert_clean_error(run_zoo("pull", f"hf://{REPO_ID}", env={**hf_env, "ZOO_HUB_MAX_BYTES": "lots"}, timeout=60),
                       "ZOO_HUB_MAX_BYTES='lots' is not a number of bytes")


# ------------------------------------------------------------------------------------------ folder hubs

@pytest.fixture
def hub(folder_hub) -> Path:
    return folder_hub


def cached_copies() -> list[Path]:
    base = zhub.zoo_cache() / "file"
    return sorted(base.iterdir()) if base.is_dir() else []


def test_a_folder_hub_picture_is_sized_by_stat_before_it_is_read(hub):
    (hub / "samples.png").unlink(missing_ok=True)
    sparse(hub / "samples.png", 1 << 40)  # 1 TiB: reading it would not end within the test's time
    result = invoke("pull", f"file://{hub}")
    out = assert_ok(result)
    assert "samples.png" in out and "1024.00 GiB" in out and "skipped" in out
    assert not (Path(result.stdout.strip().splitlines()[-1]) / "samples.png").exists()
    zoo.load(f"file://{hub}")


def test_folder_hub_weights_are_capped_by_the_model_their_config_describes(hub, digits_run, tmp_path):
    (hub / "model.safetensors").write_bytes(padded_weights(digits_run, tmp_path))
    assert_clean_error(invoke("pull", f"file://{hub}"), "zoo fetches for the weights its config.json describes")
    assert cached_copies() == []  # not even a temporary folder is left


def test_weights_of_a_model_not_installed_here_get_the_global_cap(hub):
    config = json.loads((hub / "config.json").read_text())
    config["model"] = "nosuchmodel"
    (hub / "config.json").write_text(json.dumps(config))
    sparse(hub / "model.safetensors", 3 << 30)
    assert_clean_error(invoke("pull", f"file://{hub}"), "3.00 GiB, more than the 2.00 GiB",
                       "a model whose size zoo cannot compute here")
    assert cached_copies() == []


def test_an_oversized_config_json_is_refused_unread(hub):
    sparse(hub / "config.json", 1 << 40)
    assert_clean_error(invoke("pull", f"file://{hub}"), "config.json of file://", "more than the 1.0 MiB")
