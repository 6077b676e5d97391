"""Folder data sets as a newcomer meets them: channels and size decided from every file (never the first
file's alone) and said when files are converted, class names carried into the run, and the documented
sizes of the splits."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from conftest import TINY, TINY_SET, assert_ok, invoke, quiet, read_config
from PIL import Image

import zoo
from zoo.errors import DataNotFoundError


def _png(path: Path, value=0, size: tuple[int, int] = (28, 28), mode: str = "L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(path)
    return path


def _grey_folder_with_one_colour_file(root: Path) -> None:
    """The newcomer's folder: grey 28×28 digits, and one RGB 32×32 file that sorts first."""
    _png(root / "000-odd.png", (200, 10, 10), (32, 32), "RGB")
    for i in range(1, 10):
        _png(root / f"{i:03d}.png", 20 * i)


# ------------------------------------------------------------------------------------------ channels and size

def test_one_colour_file_that_sorts_first_does_not_set_the_size_and_is_named(tmp_path):
    root = tmp_path / "digits"
    _grey_folder_with_one_colour_file(root)
    data = zoo.load_dataset(f"folder:{root}")
    assert data.shape == (3, 28, 28)  # the size of 9 of the 10 files; colour because one file has colour
    colour, size = data.notes
    assert "1 colour: 000-odd.png; 9 grey: 001.png, 002.png, 003.png and 6 more" in colour
    assert "all are read as RGB (3 channels)" in colour and "convert the colour files to grey" in colour
    assert ("2 sizes: all are read at 28×28, the most common (9 of 10 files); the other 1 are resized "
            "(000-odd.png)") in size
    assert "set image_size" in size
    x = torch.cat([data.train_x, data.val_x, data.test_x])
    greys = x[(x[:, 0] == x[:, 1]).all(dim=(1, 2)) & (x[:, 1] == x[:, 2]).all(dim=(1, 2))]
    assert sorted(int(img[0, 0, 0]) for img in greys) == [20 * i for i in range(1, 10)]  # grey kept exactly


def test_train_prints_and_records_what_reading_the_folder_changed(tmp_path):
    root = tmp_path / "digits"
    _grey_folder_with_one_colour_file(root)
    run = tmp_path / "run"
    output = assert_ok(invoke("train", "convae", "--dataset", f"folder:{root}", "--epochs", "1", "--out", run,
                              *TINY_SET))
    assert "note: " in output and "mixes colour and grey images" in output and "000-odd.png" in output
    assert "all are read at 28×28" in output
    recorded = read_config(run)["data"]
    assert recorded["shape"] == [3, 28, 28]
    assert recorded["notes"] == list(zoo.load_dataset(f"folder:{root}").notes)


def test_grey_files_of_any_grey_pil_mode_make_a_grey_folder_without_a_note(tmp_path):
    root = tmp_path / "pics"
    _png(root / "a.png", 0, mode="1")
    _png(root / "b.png", (90, 255), mode="LA")
    for i in range(4):
        _png(root / f"c{i}.png", 40 * i)
    data = zoo.load_dataset(f"folder:{root}")
    assert data.shape == (1, 28, 28) and data.notes == ()
    assert "notes" not in data.info()


def test_images_with_little_to_learn_are_said_as_read(tmp_path):
    """A shape drawn in the alpha channel alone, a folder of one flat level, masks saved as 0/1: each trained
    without a word on blank images."""
    import numpy as np

    for i in range(5):
        drawn = np.zeros((28, 28, 4), np.uint8)
        drawn[5:20, 8:12 + i, 3] = 255  # black glyphs on a transparent background
        Image.fromarray(drawn, "RGBA").save(_png(tmp_path / "alpha" / f"{i}.png"))
        _png(tmp_path / "black" / f"{i}.png", 0)
        mask = np.zeros((28, 28), np.uint8)
        mask[4:10 + i, 4:20] = 1
        Image.fromarray(mask, "L").save(_png(tmp_path / "masks" / f"{i}.png"))
    said = {name: " ".join(zoo.load_dataset(f"folder:{tmp_path / name}").notes) for name in ("alpha", "black", "masks")}
    assert "5 image(s) with a transparency (alpha) channel" in said["alpha"] and "blank image" in said["alpha"]
    assert f"every pixel of every image in {tmp_path / 'black'} is 0" in said["black"]
    assert "hold the values 0 and 1 only (of 0..255), which read as black" in said["masks"]


def test_grey_gifs_make_a_grey_folder(tmp_path):
    """A GIF's palette of greys made the folder colour: a 3-channel model of grey images."""
    for i in range(5):
        Image.new("L", (16, 16), 40 * i).save(tmp_path / f"{i}.gif")
    data = zoo.load_dataset(f"folder:{tmp_path}")
    assert data.shape == (1, 16, 16) and data.notes == ()
    every = torch.cat([data.train_x, data.val_x, data.test_x]).unique().tolist()
    assert every == [0, 40, 80, 120, 160]  # each file's grey level, as drawn


def test_grey_palette_pngs_with_a_transparent_entry_make_a_grey_folder_and_the_transparency_is_said(tmp_path):
    """A grey palette image with a transparent entry counted as colour (a 3-channel model of grey images), and
    the transparency it drops went unsaid."""
    for i in range(5):
        im = Image.new("L", (16, 16), 40 * i).convert("P")
        im.putpalette([v for level in range(256) for v in (level, level, level)])
        im.save(tmp_path / f"{i}.png", transparency=0)  # level 0 is see-through: image 0 is wholly
    data = zoo.load_dataset(f"folder:{tmp_path}")
    assert data.shape == (1, 16, 16)
    assert torch.cat([data.train_x, data.val_x, data.test_x]).unique().tolist() == [0, 40, 80, 120, 160]
    assert "1 image(s) with a transparency (alpha) channel" in " ".join(data.notes)


def test_an_all_colour_folder_is_rgb_without_a_note(tmp_path):
    root = tmp_path / "pics"
    for i in range(5):
        _png(root / f"{i}.png", (i, 2 * i, 3 * i), (16, 16), "RGB")
    data = zoo.load_dataset(f"folder:{root}")
    assert data.shape == (3, 16, 16) and data.notes == ()


def test_mixed_sizes_take_the_most_common_size_and_a_tie_the_larger(tmp_path):
    common = tmp_path / "common"
    _png(common / "0-big.png", 5, (40, 30))
    for i in range(1, 4):
        _png(common / f"{i}.png", 5, (24, 24))
    data = zoo.load_dataset(f"folder:{common}")
    assert data.shape == (1, 24, 24)
    assert "read at 24×24, the most common (3 of 4 files); the other 1 are resized (0-big.png)" in data.notes[0]
    tie = tmp_path / "tie"
    for i in range(2):
        _png(tie / f"a{i}.png", 5, (24, 24))
        _png(tie / f"b{i}.png", 5, (40, 30))
    assert zoo.load_dataset(f"folder:{tie}").shape == (1, 30, 40)
    lone = tmp_path / "lone"  # no two files of one size: the largest
    _png(lone / "a.png", 5, (24, 24))
    _png(lone / "b.png", 5, (40, 30))
    assert zoo.load_dataset(f"folder:{lone}").shape == (1, 30, 40)


def test_image_size_chooses_the_size_for_every_file_without_a_note(tmp_path):
    root = tmp_path / "pics"
    _png(root / "a.png", 5, (40, 30))
    _png(root / "b.png", 90, (24, 24))
    data = zoo.load_dataset(f"folder:{root}", image_size=16)
    assert data.shape == (1, 16, 16) and data.notes == ()


def test_a_file_damaged_after_its_header_is_one_clear_error(tmp_path):
    root = tmp_path / "pics"
    for i in range(3):
        _png(root / f"{i}.png", 10 * i)
    damaged = root / "1.png"
    damaged.write_bytes(damaged.read_bytes()[:-30])  # the header reads; the pixels do not
    with pytest.raises(DataNotFoundError) as e:
        zoo.load_dataset(f"folder:{root}")
    assert f"cannot read image {damaged}" in e.value.message and "Remove or replace" in e.value.hint


# ------------------------------------------------------------------------------------------ class names

def test_class_names_are_the_folder_names_in_label_order_on_the_data_and_in_the_run(tmp_path):
    root = tmp_path / "pets"
    values = {"cats": 30, "dogs": 120, "mice": 220}
    for name, value in values.items():
        for i in range(4):
            _png(root / name / f"{i}.png", value, (12, 12))
    data = zoo.load_dataset(f"folder:{root}")
    assert data.classes == ("cats", "dogs", "mice")
    for img, label in zip(data.train_x, data.train_y.tolist()):
        assert int(img[0, 0, 0]) == values[data.classes[label]]
    run = tmp_path / "run"
    zoo.train("convae", dataset=f"folder:{root}", epochs=1, out=run, log=quiet, progress=False, **TINY)
    assert read_config(run)["data"]["classes"] == ["cats", "dogs", "mice"]
    assert zoo.load(run).record["data"]["classes"] == ["cats", "dogs", "mice"]


# ------------------------------------------------------------------------------------------ the splits

def test_folder_splits_have_the_documented_sizes_and_depend_on_the_file_names_only(tmp_path):
    root = tmp_path / "pics"
    for i in range(50):
        _png(root / ("ab"[i % 2]) / f"{i:02d}.png", i * 5, (8, 8))
    data = zoo.load_dataset(f"folder:{root}")
    assert data.info()["sizes"] == {"train": 36, "val": 4, "test": 10}  # 20% test, then 10% of the rest
    assert zoo.load_dataset(f"folder:{root}", val_fraction=0.25).info()["sizes"] == {
        "train": 30, "val": 10, "test": 10}
    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(root, copy)
    again = zoo.load_dataset(f"folder:{copy}")
    for split in ("train", "val", "test"):
        assert torch.equal(again.split(split)[0], data.split(split)[0]), split


def test_val_fraction_0_holds_out_no_validation_images_and_the_end_names_the_training_loss(tmp_path):
    """A folder with val_fraction 0 reused its training images as a validation split 'for too few images'
    (MNIST holds none out), and the end of training called the training loss a validation loss."""
    for i in range(10):
        _png(tmp_path / "pics" / f"{i}.png", 20 * i)
    data = zoo.load_dataset(f"folder:{tmp_path / 'pics'}", val_fraction=0)
    assert data.val_x.shape[0] == 0 and "val" not in data.reused and not data.caveat()
    out = assert_ok(invoke("train", "convae", "--dataset", f"folder:{tmp_path / 'pics'}", "--epochs", "1",
                           "--set", "val_fraction=0", "--out", tmp_path / "run", *TINY_SET))
    assert "too few images" not in out
    assert "completed: best epoch 1 (training loss " in out
