"""Data sets: digits, IDX files in their usual layouts, the search order. (Folders of images:
test_folder_datasets.py.)"""

from __future__ import annotations

import gzip
import json
import shutil
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import (IDX_NAMES, TINY_SET, assert_clean_error, assert_ok, invoke, make_idx_arrays, read_config,
                      real_data, write_idx_set)

import zoo
from zoo.errors import DataNotFoundError


def _ids(x: torch.Tensor) -> list[int]:
    """The id each synthetic image carries in its pixel [0, 0]."""
    return x[:, 0, 0, 0].tolist()


# ------------------------------------------------------------------------------------------ digits

def test_digits_shapes_and_split_sizes():
    data = zoo.load_dataset("digits")
    for split in ("train", "val", "test"):
        x, y = data.split(split)
        assert x.dtype == torch.uint8 and x.shape[1:] == (1, 28, 28)
        assert y.dtype == torch.int64 and y.shape == (x.shape[0],)
        assert 0 <= int(y.min()) and int(y.max()) <= 9
    sizes = data.info()["sizes"]
    assert sum(sizes.values()) == 1797
    assert sizes == {"train": 1294, "val": 144, "test": 359}
    assert data.shape == (1, 28, 28)
    assert data.num_classes == 10
    assert int(data.train_x.max()) == 255 and int(data.train_x.min()) == 0


def test_digits_split_is_fixed():
    a, b = zoo.load_dataset("digits"), zoo.load_dataset("digits")
    for split in ("train", "val", "test"):
        assert torch.equal(a.split(split)[0], b.split(split)[0])
        assert torch.equal(a.split(split)[1], b.split(split)[1])


def test_val_fraction_moves_images_from_train_to_val_only():
    a, b = zoo.load_dataset("digits", val_fraction=0.1), zoo.load_dataset("digits", val_fraction=0.5)
    assert torch.equal(a.test_x, b.test_x)
    assert b.val_x.shape[0] == 719 and b.train_x.shape[0] == 719
    assert a.train_x.shape[0] + a.val_x.shape[0] == b.train_x.shape[0] + b.val_x.shape[0]


def test_unknown_data_set_name():
    with pytest.raises(DataNotFoundError) as e:
        zoo.load_dataset("cifar10")
    assert "unknown data set 'cifar10'" in str(e.value)
    assert "mnist" in e.value.hint and "digits" in e.value.hint and "folder:PATH" in e.value.hint


# ------------------------------------------------------------------------------------------ IDX files

@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "plain"])
@pytest.mark.parametrize("layout", ["mnist", "MNIST/raw", "MNIST", "."], ids=["DIR-mnist", "DIR-MNIST-raw",
                                                                            "DIR-MNIST", "DIR"])
def test_idx_files_are_read_in_each_layout(tmp_path, gz, layout):
    root = tmp_path / "data"
    arrays = write_idx_set(root / layout, gz=gz, n_train=40, n_test=12)
    data = zoo.load_dataset("mnist", data_dir=str(root))
    assert data.name == "mnist"
    assert data.test_x.shape == (12, 1, 28, 28)
    assert torch.equal(data.test_x[:, 0], torch.from_numpy(arrays["test_images"]))
    assert torch.equal(data.test_y, torch.from_numpy(arrays["test_labels"]).long())
    # train + val hold every training image exactly once, each with its own label
    ids = _ids(data.train_x) + _ids(data.val_x)
    assert sorted(ids) == list(range(40))
    assert data.val_x.shape[0] == 4
    for x, y in ((data.train_x, data.train_y), (data.val_x, data.val_y)):
        for i, label in zip(_ids(x), y.tolist()):
            assert label == i % 10
            assert torch.equal(x[_ids(x).index(i), 0], torch.from_numpy(arrays["train_images"][i]))


def test_fashion_mnist_torchvision_layout(tmp_path):
    write_idx_set(tmp_path / "FashionMNIST" / "raw", gz=False, n_train=20, n_test=5)
    data = zoo.load_dataset("fashion-mnist", data_dir=str(tmp_path))
    assert data.name == "fashion-mnist"
    assert data.classes[0] == "T-shirt/top" and data.classes[9] == "Ankle boot"
    assert data.test_x.shape == (5, 1, 28, 28)


def _fill(data) -> int:
    return int(data.test_x[0, 0, 5, 5])


def test_search_order_data_dir_then_env_then_cache(tmp_path, monkeypatch):
    given, env, cache = tmp_path / "given", tmp_path / "env", tmp_path / "xdg-cache" / "zoo" / "datasets"
    write_idx_set(given / "mnist", fill=11)
    write_idx_set(env / "MNIST" / "raw", fill=22)
    write_idx_set(cache / "mnist", fill=33)
    monkeypatch.setenv("ZOO_DATA_DIR", str(env))
    assert _fill(zoo.load_dataset("mnist", data_dir=str(given))) == 11   # --data-dir first
    assert _fill(zoo.load_dataset("mnist")) == 22                         # then $ZOO_DATA_DIR
    monkeypatch.delenv("ZOO_DATA_DIR")
    assert _fill(zoo.load_dataset("mnist")) == 33                         # then the user cache
    # an empty --data-dir or $ZOO_DATA_DIR is passed over
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "empty"))
    assert _fill(zoo.load_dataset("mnist", data_dir=str(tmp_path / "empty2"))) == 33


def test_cli_data_dir_option_beats_env(tmp_path, monkeypatch):
    write_idx_set(tmp_path / "given" / "mnist", fill=11, n_train=50, n_test=10)
    write_idx_set(tmp_path / "env" / "mnist", fill=22, n_train=30, n_test=10)
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "env"))
    run = tmp_path / "run"
    assert_ok(invoke("train", "convae", "--dataset", "mnist", "--data-dir", tmp_path / "given", "--epochs", "1",
                     "--out", run, *TINY_SET))
    assert read_config(run)["data"]["sizes"] == {"train": 45, "val": 5, "test": 10}
    assert read_config(run)["train"]["data_dir"] == str(tmp_path / "given")


def test_not_found_offline_names_every_place_and_the_fix(tmp_path, monkeypatch):
    given, env = tmp_path / "given", tmp_path / "env"
    given.mkdir()
    monkeypatch.setenv("ZOO_DATA_DIR", str(env))
    with pytest.raises(DataNotFoundError) as e:
        zoo.load_dataset("kmnist", data_dir=str(given))
    text = str(e.value)
    cache = tmp_path / "xdg-cache" / "zoo" / "datasets"
    for root in (given, env, cache):
        for sub in ("kmnist", os.path.join("KMNIST", "raw"), "KMNIST"):
            assert f"  {root / sub}\n" in text, (root / sub, text)
        # Only an explicit --data-dir is searched bare: every set has the same file names.
        assert (f"  {root}\n" in text) == (root == given)
    assert str(Path("/usr/share/datasets/kmnist")) in text
    assert "train-images-idx3-ubyte" in text and "gzipped or not" in text
    assert "downloads are off" in text
    assert "--data-dir" in e.value.hint and "ZOO_DATA_DIR" in e.value.hint
    assert not cache.exists()  # nothing was downloaded


def test_not_found_says_what_is_wrong_with_zoo_data_dir(tmp_path, monkeypatch):
    """$ZOO_DATA_DIR pointing at one set's own files (or at nothing) was one more place in the list: the user was
    not told that it is the folder above one folder per set."""
    write_idx_set(tmp_path / "files", n_train=20, n_test=5)
    for env, said in ((tmp_path / "files", "holds one data set's files itself: it is the folder above one folder "
                                           "per data set"), (tmp_path / "none", "does not exist")):
        monkeypatch.setenv("ZOO_DATA_DIR", str(env))
        with pytest.raises(DataNotFoundError, match=f"\\$ZOO_DATA_DIR \\({env}\\) {said}"):
            zoo.load_dataset("kmnist")


def test_fashion_mnist_not_found_mentions_the_debian_package(tmp_path):
    with pytest.raises(DataNotFoundError) as e:
        zoo.load_dataset("fashion-mnist", data_dir=str(tmp_path))
    assert "apt-get install dataset-fashion-mnist" in e.value.hint


def test_missing_one_of_the_four_files_is_not_found(tmp_path):
    write_idx_set(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataNotFoundError, match="not found"):
        zoo.load_dataset("mnist", data_dir=str(tmp_path))


def test_truncated_plain_idx_file_is_a_clear_error(tmp_path):
    write_idx_set(tmp_path / "mnist", gz=False)
    path = tmp_path / "mnist" / IDX_NAMES["train_images"]
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataNotFoundError) as e:
        zoo.load_dataset("mnist", data_dir=str(tmp_path))
    assert str(path) in str(e.value)
    assert "truncated or corrupt" in str(e.value)
    assert "expected 23520 bytes of data, found 23420" in str(e.value)


def test_truncated_gzip_file_is_a_clear_error(tmp_path):
    write_idx_set(tmp_path / "mnist")
    path = tmp_path / "mnist" / (IDX_NAMES["test_images"] + ".gz")
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DataNotFoundError) as e:
        zoo.load_dataset("mnist", data_dir=str(tmp_path))
    assert str(path) in str(e.value) and "cannot read" in str(e.value)


def test_file_that_is_not_idx_is_a_clear_error(tmp_path):
    write_idx_set(tmp_path / "mnist", gz=False)
    (tmp_path / "mnist" / IDX_NAMES["train_labels"]).write_bytes(b"<html>404 not found</html>")
    with pytest.raises(DataNotFoundError, match="not an IDX file"):
        zoo.load_dataset("mnist", data_dir=str(tmp_path))


def test_images_and_labels_that_do_not_match(tmp_path):
    arrays = make_idx_arrays(n_train=20)
    arrays["train_labels"] = arrays["train_labels"][:15]
    write_idx_set(tmp_path / "mnist", arrays)
    with pytest.raises(DataNotFoundError, match="train images and labels do not match"):
        zoo.load_dataset("mnist", data_dir=str(tmp_path))


def test_idx_images_of_floats_are_refused_not_cast_to_blank_bytes(tmp_path):
    """A float32 file of pixels in [0, 1] was cast to bytes 0 and 1: black images, trained on without a word."""
    arrays = write_idx_set(tmp_path / "mnist", gz=False)
    floats = arrays["train_images"].astype(">f4") / 255
    path = tmp_path / "mnist" / IDX_NAMES["train_images"]
    path.write_bytes(bytes([0, 0, 0x0D, 3]) + b"".join(struct.pack(">I", d) for d in floats.shape) + floats.tobytes())
    with pytest.raises(DataNotFoundError) as e:
        zoo.load_dataset("mnist", data_dir=str(tmp_path))
    assert f"{path} holds float32 pixels; mnist's files hold 8-bit ones (0 to 255)" in str(e.value)
    assert "folder:PATH" in e.value.hint


def test_idx_labels_outside_the_classes_are_refused(tmp_path):
    """A label of 25 crashed the classifier's loss with a raw IndexError after the data loaded."""
    arrays = make_idx_arrays(n_train=20)
    arrays["train_labels"][3] = 25
    write_idx_set(tmp_path / "mnist", arrays)
    with pytest.raises(DataNotFoundError, match=r"holds the label 25, outside mnist's 10 classes \(0 to 9\)"):
        zoo.load_dataset("mnist", data_dir=str(tmp_path))


def test_idx_training_and_test_images_of_two_sizes_are_refused(tmp_path):
    """Test images of another size crashed the model after the first epoch, leaving a half-made run."""
    arrays = make_idx_arrays(n_train=20)
    arrays["test_images"] = make_idx_arrays(n_test=10, size=14)["test_images"]
    write_idx_set(tmp_path / "mnist", arrays)
    out = assert_clean_error(invoke("train", "vae", "--dataset", "mnist", "--data-dir", tmp_path, "--epochs", "1",
                                    "--out", tmp_path / "run"),
                             "the training images are 28×28, the test images 14×14")
    assert "Traceback" not in out and not (tmp_path / "run").exists()


def test_a_relative_data_dir_is_recorded_absolute_and_found_from_elsewhere(tmp_path, monkeypatch):
    """A relative --data-dir was saved as typed: from another directory zoo eval fell back to
    $ZOO_DATA_DIR's files of the same name, and wrote their figures into eval.json."""
    (tmp_path / "project").mkdir()
    write_idx_set(tmp_path / "project" / "mydata" / "mnist", n_train=40, n_test=12)
    write_idx_set(tmp_path / "other" / "mnist", n_train=80, n_test=30, seed=1)
    monkeypatch.chdir(tmp_path / "project")
    assert_ok(invoke("train", "convae", "--dataset", "mnist", "--data-dir", "mydata", "--epochs", "1",
                     "--out", "run", *TINY_SET))
    assert read_config(tmp_path / "project" / "run")["train"]["data_dir"] == str(tmp_path / "project" / "mydata")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "other"))
    assert json.loads(assert_ok(invoke("eval", "project/run", "--json")))["images"] == 12


def test_other_files_of_the_same_count_are_told_apart_on_resume_and_eval(tmp_path):
    """A resume with --data-dir on another set's files of the same count trained on them without a word (only
    the counts were recorded); config.json now records each split's digest."""
    write_idx_set(tmp_path / "mine" / "mnist", n_train=40, n_test=12)
    write_idx_set(tmp_path / "same-size" / "mnist", n_train=40, n_test=12, seed=2)
    run = tmp_path / "run"
    assert_ok(invoke("train", "convae", "--dataset", "mnist", "--data-dir", tmp_path / "mine", "--epochs", "1",
                     "--out", run, *TINY_SET))
    digests = read_config(run)["data"]["digests"]
    assert set(digests) == {"train", "val", "test"} and len(set(digests.values())) == 3
    before = (run / "checkpoint.safetensors").read_bytes()
    assert_clean_error(invoke("train", "--resume", run, "--epochs", "2", "--data-dir", tmp_path / "same-size"),
                       f"{run} was trained on other images", "other train, val and test images than it had (as many)")
    assert (run / "checkpoint.safetensors").read_bytes() == before
    out = assert_ok(invoke("eval", run, "--data-dir", tmp_path / "same-size"))
    assert "mnist holds other test images than it had (as many): not the images" in out
    assert "not its test figures" in out
    for out in (assert_ok(invoke("info", run)), assert_ok(invoke("compare", run))):
        assert "other images than it was trained on" in out and "other test images than it had" in out
    assert "Measured on other images than it was trained and tested on" in (run / "README.md").read_text()
    # its own test files beside another set's training files: its own test figures, nothing said
    shutil.copytree(tmp_path / "mine", tmp_path / "mixed")
    for f in (tmp_path / "same-size" / "mnist").glob("train*"):
        shutil.copy(f, tmp_path / "mixed" / "mnist" / f.name)
    assert "as many" not in assert_ok(invoke("eval", run, "--data-dir", tmp_path / "mixed"))
    out = assert_ok(invoke("eval", run))  # its own files: nothing said, and its figures replace the others'
    assert "(as many)" not in out and "other_images" not in json.loads((run / "eval.json").read_text())
    assert "other images" not in assert_ok(invoke("info", run))
    assert_ok(invoke("train", "--resume", run, "--epochs", "2", "--data-dir", tmp_path / "mine"))


def test_an_evaluation_on_other_files_is_said_and_never_written_over_the_runs_own(tmp_path):
    """`zoo eval --data-dir` on other files under the set's name replaced eval.json (a saved bound with it),
    labelled as the run's own data set."""
    write_idx_set(tmp_path / "mine" / "mnist", n_train=40, n_test=12)
    write_idx_set(tmp_path / "bigger" / "mnist", n_train=40, n_test=20, seed=1)
    write_idx_set(tmp_path / "same-size" / "mnist", n_train=40, n_test=12, seed=2)
    run = tmp_path / "run"
    assert_ok(invoke("train", "convae", "--dataset", "mnist", "--data-dir", tmp_path / "mine", "--epochs", "1",
                     "--out", run, *TINY_SET))
    assert_ok(invoke("eval", run))
    kept = (run / "eval.json").read_bytes()
    out = assert_ok(invoke("eval", run, "--data-dir", tmp_path / "bigger"))
    assert "mnist holds 20 test images where it had 12: not the images" in out  # (only the split measured)
    assert "holds an evaluation of these weights on other test images than these" in out and "not written" in out
    out = assert_ok(invoke("eval", run, "--data-dir", tmp_path / "same-size"))
    assert "holds an evaluation of these weights on other test images than these" in out
    assert out.count("images than these") == 1 and out.index("images than these") < out.index("mse")  # up front
    assert (run / "eval.json").read_bytes() == kept
    (run / "eval.json").unlink()  # with none to keep, other data's figures are written, said as such
    assert "not its test figures" in assert_ok(invoke("eval", run, "--data-dir", tmp_path / "bigger"))
    assert json.loads((run / "eval.json").read_text())["images"] == 20


def test_cli_missing_data_offline_is_one_message(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = assert_clean_error(invoke("train", "convae", "--dataset", "kmnist", "--data-dir", empty,
                                    "--out", tmp_path / "run"), "data set 'kmnist' not found", "--data-dir")
    assert str(empty / "KMNIST" / "raw") in out
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------ real data

@pytest.mark.parametrize("name, first_class", [("mnist", "0"), ("fashion-mnist", "T-shirt/top")])
def test_real_data_set_loads(name, first_class):
    root = real_data(name)
    data = zoo.load_dataset(name, data_dir=str(root))
    assert data.info()["sizes"] == {"train": 54000, "val": 6000, "test": 10000}
    assert data.train_x.dtype == torch.uint8 and data.shape == (1, 28, 28)
    assert data.classes[0] == first_class
    assert sorted(torch.unique(data.test_y).tolist()) == list(range(10))
    if name == "fashion-mnist":
        assert torch.bincount(data.test_y).tolist() == [1000] * 10
    assert 30 < float(data.test_x.float().mean()) < 100


def test_real_fashion_mnist_trains_and_evaluates_via_zoo_data_dir(monkeypatch, tmp_path):
    root = real_data("fashion-mnist")
    monkeypatch.setenv("ZOO_DATA_DIR", str(root))
    run = tmp_path / "run"
    result = zoo.train("convae", dataset="fashion-mnist", epochs=1, val_fraction=0.9, batch_size=128, lr=0.01,
                       out=run, log=lambda m: None, progress=False, channels=[4, 8, 8], hidden=[16], device="cpu")
    assert result.model.shape == (1, 28, 28)
    val_mse = result.history[0]["val_mse"]
    assert val_mse < 0.1  # a 4-number code of a clothing image, after one epoch on 6,000 images
    ev = zoo.evaluate(run)
    assert ev["dataset"] == "fashion-mnist" and ev["images"] == 10000
    assert ev["metrics"]["mse"] == pytest.approx(val_mse, rel=0.1)  # test and validation images alike


def test_real_gzip_is_what_we_read(tmp_path):
    """The reader and our synthetic writer agree with the real files' header layout."""
    root = real_data("mnist")
    raw = gzip.decompress((root / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes())
    assert raw[:4] == bytes([0, 0, 8, 1]) and int.from_bytes(raw[4:8], "big") == 10000
    data = zoo.load_dataset("mnist", data_dir=str(root))
    assert data.test_y.tolist() == list(np.frombuffer(raw, dtype=np.uint8, offset=8))


def test_files_of_one_set_are_not_served_as_another(tmp_path, monkeypatch):
    env = tmp_path / "env"
    write_idx_set(env, fill=22)                                                  # MNIST, straight in $ZOO_DATA_DIR
    write_idx_set(tmp_path / "xdg-cache" / "zoo" / "datasets" / "fashion-mnist", fill=33)
    monkeypatch.setenv("ZOO_DATA_DIR", str(env))
    assert _fill(zoo.load_dataset("fashion-mnist")) == 33
