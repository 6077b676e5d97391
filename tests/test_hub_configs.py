"""A hostile or damaged config.json from a hub ends in one clear message on `zoo pull`, `zoo eval
hf://...` and `zoo.load(...)`: fields of the wrong type or null, text that is not JSON, and weights
whose header does not fit the model the config describes (refused from the header alone, before
anything the config sizes is allocated)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import zoo
from conftest import assert_clean_error, invoke, run_zoo
from test_hub import REPO_ID, hf_env, run_bytes, server  # noqa: F401  (fixtures)
from zoo import hub as zhub
from zoo.errors import ZooError


def _set(path: str, value):
    def change(config: dict) -> dict:
        *parents, key = path.split(".")
        node = config
        for p in parents:
            node = node[p]
        node[key] = value
        return config
    return change


CONFIGS = {
    # id: (the config.json, from the run's parsed one or as raw text; the field the message names)
    "model-null": (_set("model", None), "'model'"),
    "model-number": (_set("model", 5), "'model'"),
    "model-empty": (_set("model", ""), "'model'"),
    "config-null": (_set("config", None), "'config' must be a table"),
    "config-list": (_set("config", [1, 2]), "'config' must be a table"),
    "train-null": (_set("train", None), "'train' must be a table"),
    "data-text": (_set("data", "digits"), "'data' must be a table"),
    "shape-null": (_set("data.shape", None), "data.shape"),
    "shape-short": (_set("data.shape", [1, 8]), "data.shape"),
    "shape-text": (_set("data.shape", ["1", 8, 8]), "data.shape"),
    "shape-huge": (_set("data.shape", [1, 10**9, 8]), "data.shape"),
    "classes-text": (_set("data.classes", "0123456789"), "data.classes"),
    "plugin-list": (_set("plugin", []), "'plugin'"),
    "dataset-number": (_set("train.dataset", 3), "train.dataset"),
    "a-list": (lambda config: [config], "not a table"),
    "not-json": (b'{"model": "convae", ', "not valid JSON"),
    "not-utf8": (b'{"model": "\xff\xfe"}', "not valid JSON"),
    "deep-nesting": (b"[" * 200_000 + b"]" * 200_000, "not valid JSON"),
}


def hostile(files: dict[str, bytes], change) -> dict[str, bytes]:
    if isinstance(change, bytes):
        return {**files, "config.json": change}
    return {**files, "config.json": json.dumps(change(json.loads(files["config.json"]))).encode()}


def folder_hub(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir(parents=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


@pytest.mark.parametrize("case", list(CONFIGS))
def test_a_hostile_config_from_a_folder_hub_ends_in_one_message(case, digits_run, tmp_path):
    change, fragment = CONFIGS[case]
    hub = folder_hub(tmp_path / "hub", hostile(run_bytes(digits_run), change))
    out = assert_clean_error(invoke("pull", f"file://{hub}"), "config.json", fragment)
    assert out.count("Error:") == 1
    with pytest.raises(ZooError, match="config.json"):
        zoo.load(f"file://{hub}")
    assert not (zhub.zoo_cache() / "file").is_dir() or not [
        p for p in (zhub.zoo_cache() / "file").iterdir() if not p.name.startswith(".")]  # nothing recorded as good


@pytest.mark.parametrize("case", ["model-null", "shape-text", "deep-nesting"])
def test_a_hostile_config_through_the_hugging_face_hub_ends_in_one_message(case, server, hf_env,  # noqa: F811
                                                                          digits_run, tmp_path):
    change, fragment = CONFIGS[case]
    server.seed(REPO_ID, hostile(run_bytes(digits_run), change))
    assert_clean_error(run_zoo("eval", f"hf://{REPO_ID}", env=hf_env, timeout=60), "config.json", fragment)
    assert server.requested("model.safetensors") == []  # refused on its config alone


def huge_model(files: dict[str, bytes]) -> dict[str, bytes]:
    """The run's small weights under a config whose model would hold about 17 GB of them."""
    return hostile(files, lambda c: {**c, "config": {**c["config"], "hidden": [65536, 65536], "latent_dim": 4096}})


def test_weights_that_do_not_fit_a_huge_config_are_refused_from_the_header(digits_run, tmp_path):
    hub = folder_hub(tmp_path / "hub", huge_model(run_bytes(digits_run)))
    start = time.monotonic()
    assert_clean_error(invoke("pull", f"file://{hub}"), "does not fit the model", "refusing it")
    with pytest.raises(ZooError, match="does not fit the model"):
        zoo.load(f"file://{hub}")
    assert time.monotonic() - start < 10  # nothing of the 17 GB was ever allocated


def test_weights_that_do_not_fit_a_huge_config_are_refused_through_the_hugging_face_hub(server, hf_env,  # noqa: F811
                                                                                         digits_run):
    server.seed(REPO_ID, huge_model(run_bytes(digits_run)))
    assert_clean_error(run_zoo("eval", f"hf://{REPO_ID}", env=hf_env, timeout=60), "does not fit the model")


def _declaring_more(weights: bytes) -> bytes:
    n = int.from_bytes(weights[:8], "little")
    header = json.loads(weights[8:8 + n])
    name = next(k for k in header if k != "__metadata__")
    header[name]["shape"] = [4096, 4096]  # 64 MiB declared, the offsets unchanged
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + weights[8 + n:]


def _nested_header(weights: bytes) -> bytes:
    text = b"[" * 100_000 + b"]" * 100_000
    return len(text).to_bytes(8, "little") + text


@pytest.mark.parametrize("make", [_declaring_more, _nested_header], ids=["declares-more", "nested"])
def test_a_hostile_weights_header_is_refused(make, digits_run, tmp_path):
    files = run_bytes(digits_run)
    hub = folder_hub(tmp_path / "hub", {**files, "model.safetensors": make(files["model.safetensors"])})
    assert_clean_error(invoke("pull", f"file://{hub}"), "not a valid safetensors file")
    with pytest.raises(ZooError, match="not a valid safetensors file"):
        zoo.load(f"file://{hub}")
