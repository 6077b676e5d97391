"""Where results go: beside a run the user owns; for a catalogued, downloaded or read-only model, into
./zoo-outputs/NAME/, never over the user's own files in the working directory."""

from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import assert_ok, invoke, is_png

import zoo


def test_outputs_of_a_catalogued_model_go_to_its_own_folder_and_spare_the_users_files(tmp_path):
    (tmp_path / "samples.png").write_bytes(b"the user's own picture")
    out = assert_ok(invoke("generate", "gan", "--n", "4"))
    assert "using the catalogued weights 'gan-mnist' for model 'gan'" in out
    assert "outputs go to zoo-outputs/gan-mnist/" in out
    assert is_png(tmp_path / "zoo-outputs" / "gan-mnist" / "samples.png")
    assert (tmp_path / "samples.png").read_bytes() == b"the user's own picture"


def test_eval_of_a_catalogued_name_writes_eval_json_in_its_output_folder(tmp_path):
    result = zoo.evaluate("convae-mnist", save=True, limit=64, data_dir=str(_digits_as_mnist(tmp_path)))
    written = Path(result["written"][0])
    assert written == tmp_path / "zoo-outputs" / "convae-mnist" / "eval.json"
    assert json.loads(written.read_text())["metrics"] == result["metrics"]
    assert not list(tmp_path.glob("*eval.json"))


def _digits_as_mnist(tmp_path: Path) -> Path:
    """A tiny MNIST-shaped IDX data folder, so a catalogued MNIST model can be evaluated offline."""
    import gzip
    import struct

    import numpy as np

    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 256), ("t10k", 64)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        with gzip.open(folder / f"{split}-images-idx3-ubyte.gz", "wb") as f:
            f.write(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
        with gzip.open(folder / f"{split}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(struct.pack(">II", 2049, n) + labels.tobytes())
    return tmp_path / "data"
