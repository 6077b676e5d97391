"""Folder data sets of images deeper than 8 bits: 16-bit and float grey levels are scaled to 8 bits
(never clipped to white or black), and a float image outside [0, 1] is refused naming its file. Photos
stored turned, with an EXIF orientation saying so, are read upright, as viewers show them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_SET, assert_ok, invoke
from PIL import Image

import zoo
from zoo.errors import DataNotFoundError


def _sixteen_bit_folder(root: Path) -> dict[str, np.ndarray]:
    """Two classes of 16-bit PNGs with random levels over the whole 0..65535 range; name -> values."""
    rng = np.random.default_rng(0)
    values = {}
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(5):
            a = (rng.random((16, 16)) * 65535).astype(np.uint16)
            Image.fromarray(a).save(root / cls / f"{i}.png")
            values[f"{cls}/{i}.png"] = a
    return values


def _all_images(data) -> torch.Tensor:
    return torch.cat([data.split(s)[0] for s in ("train", "val", "test")])


def test_a_folder_of_16_bit_pngs_keeps_its_grey_levels_scaled_by_257(tmp_path):
    values = _sixteen_bit_folder(tmp_path / "pics")
    data = zoo.load_dataset(f"folder:{tmp_path / 'pics'}")
    assert Image.open(tmp_path / "pics" / "a" / "0.png").mode.startswith("I;16")
    expected = {tuple(np.rint(a / 257.0).astype(np.uint8).ravel()) for a in values.values()}
    got = {tuple(img[0].numpy().ravel()) for img in _all_images(data)}
    assert got <= expected and len(got) == len(expected)  # every image, each with its own /257 levels
    x = data.train_x
    assert float((x == 255).float().mean()) < 0.01 and 100 < float(x.float().mean()) < 155  # not clipped white
    assert any("16-bit" in n and "257" in n and "a/0.png" in n for n in data.notes)


def test_training_on_16_bit_pngs_says_how_they_were_read(tmp_path):
    _sixteen_bit_folder(tmp_path / "pics")
    out = assert_ok(invoke("train", "convae", "--dataset", f"folder:{tmp_path / 'pics'}", "--epochs", "1",
                           "--batch-size", "8", "--out", str(tmp_path / "run"), *TINY_SET))
    assert "16-bit" in out and "divided by 257" in out


def test_a_float_tiff_in_0_1_is_kept_as_grey_levels(tmp_path):
    root = tmp_path / "pics"
    root.mkdir()
    a = np.random.default_rng(1).random((12, 12)).astype(np.float32)
    for i in range(3):
        Image.fromarray(a).save(root / f"{i}.tif")
    assert Image.open(root / "0.tif").mode == "F"
    data = zoo.load_dataset(f"folder:{root}")
    assert data.shape == (1, 12, 12)
    assert torch.equal(data.train_x[0, 0], torch.from_numpy(np.rint(a * 255.0).astype(np.uint8)))
    assert any("float" in n and "255" in n for n in data.notes)


def test_a_32_bit_integer_image_within_16_bits_is_scaled_like_one(tmp_path):
    root = tmp_path / "pics"
    root.mkdir()
    a = (np.arange(64).reshape(8, 8) * 1000).astype(np.int32)
    for i in range(3):
        Image.fromarray(a).save(root / f"{i}.tif")
    data = zoo.load_dataset(f"folder:{root}")
    assert torch.equal(data.train_x[0, 0], torch.from_numpy(np.rint(a / 257.0).astype(np.uint8)))


@pytest.mark.parametrize("values, words", [
    (np.linspace(-2.0, 300.0, 64, dtype=np.float32).reshape(8, 8), ["float image", "-2 to 300", "[0, 1]"]),
    (np.full((8, 8), 70000, dtype=np.int32), ["32-bit integer image", "70000", "0..65535"]),
], ids=["float-out-of-range", "int-beyond-16-bit"])
def test_an_image_out_of_range_is_refused_naming_the_file_and_its_range(tmp_path, values, words):
    root = tmp_path / "pics"
    root.mkdir()
    Image.new("L", (8, 8), 100).save(root / "0.png")
    Image.new("L", (8, 8), 100).save(root / "1.png")
    Image.fromarray(values).save(root / "odd.tif")
    with pytest.raises(DataNotFoundError) as e:
        zoo.load_dataset(f"folder:{root}")
    assert str(root / "odd.tif") in str(e.value)
    for w in words:
        assert w in str(e.value)


def test_denoise_reads_a_users_16_bit_and_float_files_as_a_folder_data_set_does(tmp_path):
    from PIL import Image

    import zoo

    (tmp_path / "mine").mkdir()
    Image.fromarray(np.full((8, 8), 25700, np.uint16)).save(tmp_path / "mine" / "deep.png")
    Image.fromarray(np.full((8, 8), 0.5, np.float32), "F").save(tmp_path / "mine" / "float.tiff")
    x, files = zoo.load_images(tmp_path / "mine", (1, 8, 8), "cpu")
    levels = {p.name: round(float(img.max()) * 255) for p, img in zip(files, x)}
    assert levels == {"deep.png": 100, "float.tiff": 128}
    Image.fromarray(np.full((8, 8), np.nan, np.float32), "F").save(tmp_path / "mine" / "nan.tiff")
    with pytest.raises(zoo.ZooError, match="NaN or infinite"):
        zoo.load_images(tmp_path / "mine", (1, 8, 8), "cpu")


def _turned_photo(path: Path, stored: np.ndarray, orientation: int) -> None:
    """`stored` saved (PNG, TIFF, ...) with an EXIF that says how to turn it for viewing (a camera held sideways)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(path, exif=exif)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])  # a camera's JPEG; PNG keeps the pixels exact
def test_photos_with_an_exif_orientation_are_read_upright_in_a_folder_data_set(tmp_path, suffix):
    stored = np.zeros((10, 20), np.uint8)  # 20 wide, 10 high, as stored
    stored[0, :] = 255  # the stored top row
    stored[:, 0] = 128  # the stored left column
    for cls in ("a", "b"):
        (tmp_path / "pics" / cls).mkdir(parents=True)
        for i in range(3):
            _turned_photo(tmp_path / "pics" / cls / f"{i}{suffix}", stored, 6)  # 6: turn a quarter clockwise
    assert Image.open(tmp_path / "pics" / "a" / f"0{suffix}").getexif()[0x0112] == 6
    data = zoo.load_dataset(f"folder:{tmp_path / 'pics'}")
    images = _all_images(data)
    assert tuple(images.shape[1:]) == (1, 20, 10)  # upright: 10 wide, 20 high, without a resize note
    assert not any("sizes" in n for n in data.notes)
    upright = np.rot90(stored, k=-1)  # turned a quarter clockwise: the stored top row is now the right column
    assert upright[1:, -1].min() == 255 and upright[0, :].tolist() == [128] * 10  # and the left column the top
    others = [np.rot90(stored, k=1), stored.T, upright[::-1]]  # the other shapes 20 high: turned wrongly
    for img in images:  # a PNG exactly; a JPEG (lossy) nearest the upright picture by far
        error = [float(np.abs(img[0].numpy().astype(float) - a).mean()) for a in (upright, *others)]
        assert error[0] == 0 if suffix == ".png" else error[0] < min(error[1:]) / 4, error


def test_denoise_reads_a_users_turned_photo_upright(tmp_path):
    stored = np.zeros((8, 8), np.uint8)
    stored[0, :] = 255  # the stored top row; orientation 3 turns the photo half a turn: the bottom row
    (tmp_path / "mine").mkdir()
    _turned_photo(tmp_path / "mine" / "turned.png", stored, 3)
    Image.fromarray(stored).save(tmp_path / "mine" / "plain.png")
    x, files = zoo.load_images(tmp_path / "mine", (1, 8, 8), "cpu")
    rows = {p.name: [int(v) for v in (img[0, :, 0] * 255).round()] for p, img in zip(files, x)}
    assert rows == {"plain.png": [255] + [0] * 7, "turned.png": [0] * 7 + [255]}
