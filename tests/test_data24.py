"""A user's own data, as a hostile walk met it (data24): folders of photos of many sizes, a run trained from inside
its image folder, damaged image headers, Pillow's warnings, 16-bit files of 8-bit values, and IDX files that are
incomplete, empty or badly shaped. Small synthetic files only: the size decision is exercised with tiny images."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import IDX_NAMES, TINY_SET, assert_clean_error, assert_ok, idx_bytes, invoke, write_idx_set
from PIL import Image

import zoo
from zoo.errors import DataNotFoundError
from zoo.runs import checkpoint as ckpt
from zoo.runs.modelcard import render_card


def _grey(path: Path, size=(28, 28), value=None, seed=0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    pixels = np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8) if value is None else \
        np.full((h, w), value, np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _folder(root: Path, n: int = 10, size=(28, 28)) -> Path:
    for i in range(n):
        _grey(root / f"{i:02d}.png", size, seed=i)
    return root


# ------------------------------------------------------------------------------- #2 the size a folder is read at

def test_a_folder_whose_files_share_no_size_is_read_at_the_largest_unless_beyond_1024_before_reading_pixels(
        tmp_path):
    """Every photo of its own size: read at the largest, with a note; where that is beyond image_size's own limit
    (2000×2000 photos: a model the memory could not hold) refused before a pixel is read. Tiny files stand for them."""
    root = tmp_path / "photos"
    for i, size in enumerate([(20, 20), (16, 12), (8, 6)]):
        _grey(root / f"p{i}.png", size, seed=i)
    data = zoo.load_dataset(f"folder:{root}")
    assert data.shape == (1, 20, 20) and "all are read at 20×20" in data.notes[0]
    _grey(root / "wide.png", (1100, 3))
    with pytest.raises(DataNotFoundError) as e:
        zoo.load_dataset(f"folder:{root}")
    assert "1100×3" in str(e.value) and "over 1024 pixels a side" in str(e.value)
    assert "--set image_size=N" in e.value.hint and "1024" in e.value.hint
    assert zoo.load_dataset(f"folder:{root}", image_size=8).shape == (1, 8, 8)  # the way out the hint gives
    out = assert_clean_error(invoke("train", "convae", "--dataset", f"folder:{root}", "--epochs", "1",
                                    "--out", tmp_path / "run", *TINY_SET), "over 1024 pixels a side", "image_size=N")
    assert not (tmp_path / "run").exists(), out


def test_a_most_common_size_beyond_image_sizes_own_limit_is_refused(tmp_path):
    """image_size=2000 is refused as out of range; the size chosen for the user had no limit at all."""
    root = tmp_path / "wide"
    for i in range(3):
        _grey(root / f"w{i}.png", (1100, 3), seed=i)  # wider than 1024, a few hundred bytes each
    _grey(root / "odd.png", (28, 28))
    with pytest.raises(DataNotFoundError) as e:
        zoo.load_dataset(f"folder:{root}")
    assert "most common size, 1100×3 (3 of 4 files): over 1024 pixels a side" in str(e.value)
    assert "image_size=N" in e.value.hint
    assert zoo.load_dataset(f"folder:{root}", image_size=16).shape == (1, 16, 16)


def test_a_tie_for_the_most_common_size_is_said_in_the_note(tmp_path):
    root = tmp_path / "tie"
    for i in range(2):
        _grey(root / f"a{i}.png", (10, 10), seed=i)
        _grey(root / f"b{i}.png", (12, 12), seed=i)
    _grey(root / "c.png", (8, 8))
    data = zoo.load_dataset(f"folder:{root}")
    assert data.shape == (1, 12, 12)
    assert "the most common (2 of 5 files, as many as 10×10: the larger is taken)" in data.notes[0]


# ------------------------------------------------------------------------------- #6 zoo's own folders in the data

def _fake_run(folder: Path) -> Path:
    """What a run leaves in a folder: its config.json, weights and pictures."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"")
    _grey(folder / "loss.png", (64, 48))
    _grey(folder / "reconstructions.png", (64, 48))
    return folder


def test_run_folders_and_zoo_outputs_inside_an_image_folder_are_skipped_and_said_once(tmp_path):
    loose = _folder(tmp_path / "loose")
    _fake_run(loose / "runs" / "convae-folder-20250101-000000")
    _grey(loose / "zoo-outputs" / "ae" / "samples.png", (64, 64))
    data = zoo.load_dataset(f"folder:{loose}")
    assert data.classes == ("image",) and data.shape == (1, 28, 28)
    said = [n for n in data.notes if "zoo's own output folder" in n]
    assert len(said) == 1 and "runs" in said[0] and "zoo-outputs" in said[0]

    classes = tmp_path / "classes"
    _folder(classes / "cats", 5)
    _folder(classes / "dogs", 5)
    _fake_run(classes / "runs" / "convae-folder-20250101-000000")
    _fake_run(classes / "cats" / "old-run")  # a run folder inside a class folder is no nested class
    data = zoo.load_dataset(f"folder:{classes}")
    assert data.classes == ("cats", "dogs")
    assert sum(data.split(s)[0].shape[0] for s in ("train", "test")) + data.val_x.shape[0] == 10


def test_a_run_trained_from_inside_its_image_folder_can_be_evaluated_and_trained_again(tmp_path, monkeypatch):
    """`cd my_images && zoo train convae --dataset folder:.`: its runs/ became a class, and every later command
    on the run failed, advising the user to rearrange correct images."""
    images = _folder(tmp_path / "my_images", 12)
    monkeypatch.chdir(images)
    assert_ok(invoke("train", "convae", "--dataset", "folder:.", "--epochs", "1", *TINY_SET))
    (run,) = (images / "runs").iterdir()
    assert (run / "loss.png").is_file()
    assert json.loads(assert_ok(invoke("eval", run, "--json", "--no-progress")))["images"] == 2
    again = assert_ok(invoke("train", "convae", "--dataset", "folder:.", "--epochs", "1", "--out", tmp_path / "two",
                             *TINY_SET))
    assert "zoo's own output folder(s), not read as images: runs" in again


# ------------------------------------------------------------------------------- #1, #8 damaged files, warnings

def _png_with_cut_ihdr(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ihdr = b"\0\0\0\x10"  # an IHDR chunk that says it is 4 bytes long (a damaged download)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + (4).to_bytes(4, "big") + b"IHDR" + ihdr
                     + zlib.crc32(b"IHDR" + ihdr).to_bytes(4, "big"))
    return path


@pytest.mark.parametrize("name", ["x.png", "x.ppm"])
def test_an_image_with_a_damaged_header_is_one_error_naming_the_file(tmp_path, name):
    """Pillow's ValueError for a damaged header ("Truncated IHDR chunk", a PPM's garbled size) was a traceback."""
    root = _folder(tmp_path / "pics", 4)
    bad = root / name
    if name.endswith(".png"):
        _png_with_cut_ihdr(bad)
    else:
        bad.write_bytes(b"P6\n16 x2\n255\n")
    with pytest.raises(DataNotFoundError) as e:
        zoo.load_dataset(f"folder:{root}")
    assert f"cannot read image {bad}" in str(e.value) and "Remove or replace that file" in e.value.hint
    assert_clean_error(invoke("train", "convae", "--dataset", f"folder:{root}", "--epochs", "1", "--out",
                              tmp_path / "run", *TINY_SET), f"cannot read image {bad}")


def test_pillows_warnings_are_a_note_naming_the_file_not_a_python_warning(tmp_path, monkeypatch):
    """A decompression bomb's warning printed Pillow's source line, not the image (here the limit is lowered, so
    that a 40×40 image stands for a 90-megapixel one)."""
    import warnings

    root = _folder(tmp_path / "bomb", 5)
    _grey(root / "big.png", (40, 40))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = zoo.load_dataset(f"folder:{root}", image_size=28)
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    (said,) = [n for n in data.notes if "Pillow warned" in n]
    assert "1 file(s)" in said and "big.png: Image size (1600 pixels) exceeds limit of 1000 pixels" in said


# ------------------------------------------------------------------------------- #9 16-bit files of 8-bit values

def test_sixteen_bit_files_of_eight_bit_values_are_said_so_not_called_masks(tmp_path):
    root = tmp_path / "i16"
    rng = np.random.default_rng(0)
    for i in range(6):
        root.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (28, 28)).astype(np.uint16)).save(root / f"{i}.png")
    notes = " ".join(zoo.load_dataset(f"folder:{root}").notes)
    assert "6 16-bit image(s)" in notes and "8-bit values (0..255) saved in 16-bit files?" in notes
    assert "masks saved as 0/1" not in notes


# ------------------------------------------------------------------------------- #3, #4, #5 IDX files

def test_a_data_dir_holding_three_of_the_four_idx_files_is_refused_naming_the_missing_one(tmp_path, monkeypatch):
    """It trained on $ZOO_DATA_DIR's set of the same name without a word, and recorded --data-dir as its data."""
    write_idx_set(tmp_path / "elsewhere" / "mnist", n_train=40, n_test=12)
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "elsewhere"))
    mine = tmp_path / "mine" / "mnist"
    write_idx_set(mine, gz=False)
    (mine / IDX_NAMES["test_labels"]).rename(mine / "t10k-labels.idx1-ubyte")  # misnamed
    with pytest.raises(DataNotFoundError) as e:
        zoo.load_dataset("mnist", data_dir=str(mine))
    assert (f"{mine} holds 3 of the four IDX files: t10k-labels-idx1-ubyte(.gz) not found there (other files "
            "there: t10k-labels.idx1-ubyte)") in str(e.value)
    assert_clean_error(invoke("train", "convae", "--dataset", "mnist", "--data-dir", mine, "--epochs", "1",
                              "--out", tmp_path / "run", *TINY_SET), "t10k-labels-idx1-ubyte(.gz) not found")
    assert not (tmp_path / "run").exists()
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "mine"))  # no set anywhere: the list says what is missing
    with pytest.raises(DataNotFoundError, match=r"mnist \(holds 3 of the four IDX files: t10k-labels"):
        zoo.load_dataset("mnist")


@pytest.mark.parametrize("split", ["test", "train"])
def test_idx_files_of_no_images_are_refused_before_training_naming_the_file(tmp_path, split):
    """An empty test file gave a traceback after training (the run left without its card), an empty training file
    a message for the model's author."""
    arrays = write_idx_set(tmp_path / "mnist", gz=False)
    path = tmp_path / "mnist" / IDX_NAMES[f"{split}_images"]
    path.write_bytes(idx_bytes(arrays[f"{split}_images"][:0]))
    (tmp_path / "mnist" / IDX_NAMES[f"{split}_labels"]).write_bytes(idx_bytes(arrays[f"{split}_labels"][:0]))
    assert_clean_error(invoke("train", "convae", "--dataset", "mnist", "--data-dir", tmp_path / "mnist", "--epochs",
                              "1", "--out", tmp_path / "run", *TINY_SET), f"{path} holds no images", code=1)
    assert not (tmp_path / "run").exists()


def _bad_idx(directory: Path, key: str, data: bytes) -> Path:
    write_idx_set(directory, gz=False, n_train=20, n_test=10)
    (directory / IDX_NAMES[key]).write_bytes(data)
    return directory / IDX_NAMES[key]


@pytest.mark.parametrize("key, data, said", [
    ("train_labels", bytes([0, 0, 8, 0]) + b"\x05", "holds a 0-D array []; a labels file holds [N]"),
    ("train_labels", idx_bytes(np.zeros((20, 1), np.uint8)), "holds a 2-D array [20, 1]; a labels file holds [N]"),
    ("train_images", idx_bytes(np.zeros((20, 784), np.uint8)), "holds a 2-D array [20, 784]; an images file holds"),
    ("train_labels", idx_bytes(np.zeros(19, np.uint8)), "holds 19 labels for the 20 images of"),
    ("train_images", idx_bytes(np.zeros((20, 28, 28), np.uint8))[:10],
     "truncated: its header names 3 dimension(s), which take 16 bytes, and the file holds 10 bytes"),
], ids=["labels-0-D", "labels-N-by-1", "images-flat", "labels-one-short", "header-cut"])
def test_badly_shaped_idx_files_are_one_error_naming_the_file_and_what_it_holds(tmp_path, key, data, said):
    path = _bad_idx(tmp_path / "mnist", key, data)
    with pytest.raises(DataNotFoundError) as e:
        zoo.load_dataset("mnist", data_dir=str(tmp_path / "mnist"))
    assert str(path) in str(e.value) and said in str(e.value)
    assert "Replace" in e.value.hint


# ------------------------------------------------------------------------------- #7 the card's model-index

def test_the_cards_model_index_leaves_out_eval_figures_of_other_images(digits_run):
    run = ckpt.read_json(digits_run / "config.json")
    own = {"metrics": {"mse": 0.0123}, "split": "test", "images": 359}
    card = render_card(run, own, [], "ae")
    assert "model-index:" in card and "{type: mse, value: 0.0123}" in card
    other = {**own, "other_images": "folder:/x holds 4 test images where it had 6"}
    card = render_card(run, other, [], "ae")
    front = card.split("\n---\n", 1)[0]
    assert "mse" not in front and "model-index" not in front
    assert "Measured on other images than it was trained and tested on" in card and "0.0123" in card


# ------------------------------------------------------------------------------- pyapi24 §8 a short repr

def test_an_image_data_sets_repr_is_short_and_says_its_splits(tmp_path):
    data = zoo.load_dataset("digits")
    assert repr(data) == "ImageData(name='digits', shape=(1, 28, 28), train=1294, val=144, test=359, classes=10)"
    _folder(tmp_path / "many" / "a", 30)
    _folder(tmp_path / "many" / "b", 30)
    text = repr(zoo.load_dataset(f"folder:{tmp_path / 'many'}"))
    assert len(text) < 250 and "classes=2" in text and "00.png" not in text and "tensor" not in text
    assert "train=" in text and "test=" in text


def test_a_users_own_runs_folder_of_other_files_is_not_called_zoos_output(tmp_path):
    root = tmp_path / "set"
    for c in "ab":
        for i in range(2):
            _grey(root / c / f"{i}.png", (8, 8), seed=i)
    (root / "runs").mkdir()
    (root / "runs" / "notes.txt").write_text("my notes")
    with pytest.raises(DataNotFoundError) as e:
        zoo.load_dataset(f"folder:{root}")
    assert "with no images: runs" in str(e.value) and "zoo's own" not in str(e.value)
