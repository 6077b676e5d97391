"""Folder data sets (folder:PATH): the two layouts, everything else refused rather than silently
relabelled, the path a run records, the shape a run asks for, and tiny folders that say what they reuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import TINY, TINY_SET, assert_clean_error, assert_ok, invoke, quiet, write_idx_set
from PIL import Image

import zoo
from zoo.data import canonical_dataset_name
from zoo.errors import ConfigError, DataNotFoundError


def _write_pngs(root: Path, classes: dict[str, int], n: int, size: tuple[int, int], mode: str) -> None:
    """`n` images per class; every pixel of class c has the value classes[c] (its label is recoverable)."""
    for cls, value in classes.items():
        (root / cls).mkdir(parents=True)
        colour = value if mode == "L" else (value, 255 - value, value // 2)
        for i in range(n):
            Image.new(mode, size, colour).save(root / cls / f"{i:03d}.png")


def _png(path: Path, value: int = 0, size: tuple[int, int] = (28, 28), mode: str = "L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(path)
    return path


def _refusal(root: Path) -> DataNotFoundError:
    with pytest.raises(DataNotFoundError) as e:
        zoo.load_dataset(f"folder:{root}")
    return e.value


# ------------------------------------------------------------------------------------------ the two layouts

def test_folder_of_grey_pngs_in_class_folders(tmp_path):
    values = {"cats": 30, "dogs": 200}
    _write_pngs(tmp_path / "pics", values, n=6, size=(20, 20), mode="L")
    data = zoo.load_dataset(f"folder:{tmp_path / 'pics'}")
    assert data.classes == ("cats", "dogs")
    assert data.shape == (1, 20, 20)
    total = sum(data.split(s)[0].shape[0] for s in ("train", "val", "test"))
    assert total == 12
    for split in ("train", "val", "test"):
        x, y = data.split(split)
        assert x.dtype == torch.uint8
        for img, label in zip(x, y.tolist()):
            assert int(img[0, 3, 3]) == values[data.classes[label]]


def test_folder_of_rgb_pngs(tmp_path):
    values = {"a": 10, "b": 100, "c": 250}
    _write_pngs(tmp_path / "pics", values, n=4, size=(32, 32), mode="RGB")
    data = zoo.load_dataset(f"folder:{tmp_path / 'pics'}")
    assert data.shape == (3, 32, 32)
    assert data.num_classes == 3
    x, y = data.train_x, data.train_y
    assert x.shape[1:] == (3, 32, 32)
    for img, label in zip(x, y.tolist()):
        v = values[data.classes[label]]
        assert img[:, 0, 0].tolist() == [v, 255 - v, v // 2]


def test_folder_image_size_resizes(tmp_path):
    _write_pngs(tmp_path / "pics", {"a": 10, "b": 100}, n=3, size=(32, 32), mode="RGB")
    data = zoo.load_dataset(f"folder:{tmp_path / 'pics'}", image_size=16)
    assert data.shape == (3, 16, 16)
    assert data.test_x.shape[1:] == (3, 16, 16)


def test_flat_folder_has_one_unlabelled_class_and_tiny_folders_still_split(tmp_path):
    root = tmp_path / "pics"
    for i in range(3):
        _png(root / f"{i}.png", i * 50)
    data = zoo.load_dataset(f"folder:{root}")
    assert data.classes == ("image",)
    for split in ("train", "val", "test"):
        assert data.split(split)[0].shape[0] > 0, split


def test_flat_folder_ignores_sub_folders_without_images_and_other_files(tmp_path):
    root = tmp_path / "pics"
    for i in range(4):
        _png(root / f"{i}.png", i * 50)
    (root / "thumbs").mkdir()
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("my pictures")
    (root / "labels.csv").write_text("a,b\n")
    data = zoo.load_dataset(f"folder:{root}")
    assert data.classes == ("image",)
    assert data.train_x.shape[0] == 4  # every image once (the tiny folder's test split reuses them)


@pytest.mark.parametrize("make, words", [
    (lambda root: None, ["image folder not found"]),
    (lambda root: root.mkdir(), ["no images in"]),
    (lambda root: (root.mkdir(), (root / "x.png").write_bytes(b"not a png")), ["cannot read image", "x.png"]),
], ids=["missing", "empty", "corrupt-png"])
def test_bad_image_folder_is_a_clear_error(tmp_path, make, words):
    root = tmp_path / "pics"
    make(root)
    with pytest.raises(DataNotFoundError) as e:
        zoo.load_dataset(f"folder:{root}")
    for w in words:
        assert w in str(e.value)


def test_train_on_a_folder_of_rgb_images(tmp_path):
    _write_pngs(tmp_path / "pics", {"a": 10, "b": 100}, n=5, size=(40, 40), mode="RGB")
    result = zoo.train("convae", dataset=f"folder:{tmp_path / 'pics'}", image_size=32, epochs=1,
                       out=tmp_path / "run", log=quiet, progress=False, **TINY)
    assert result.model.shape == (3, 32, 32)
    ev = zoo.evaluate(tmp_path / "run")
    assert ev["images"] == 2 and ev["dataset"] == f"folder:{tmp_path / 'pics'}"
    model = zoo.load(tmp_path / "run")
    assert model.reconstruct(torch.rand(2, 3, 32, 32)).shape == (2, 3, 32, 32)


def test_a_push_of_a_run_trained_on_a_folder_says_the_folder_path_it_publishes(tmp_path):
    _write_pngs(tmp_path / "pics", {"a": 10, "b": 100}, n=5, size=(28, 28), mode="L")
    zoo.train("convae", dataset=f"folder:{tmp_path / 'pics'}", epochs=1, out=tmp_path / "run", log=quiet,
              progress=False, **TINY)
    out = assert_ok(invoke("push", tmp_path / "run", (tmp_path / "hub" / "mine").as_uri()))
    said = f"the data set is named by its path on this machine, folder:{tmp_path / 'pics'}: config.json and the card"
    assert said in " ".join(out.split())
    assert str(tmp_path / "pics") in (tmp_path / "hub" / "mine" / "config.json").read_text()  # as said

def test_a_class_given_by_its_index_is_named_in_what_is_drawn(tmp_path):
    from safetensors import safe_open

    _write_pngs(tmp_path / "pics", {"cats": 10, "dogs": 100}, n=5, size=(28, 28), mode="L")
    zoo.train("convae", dataset=f"folder:{tmp_path / 'pics'}", epochs=1, out=tmp_path / "run", log=quiet,
              progress=False, **TINY)
    for label, said in (("1", "class 1: dogs"), ("dogs", "class dogs"), (torch.tensor(1), "class 1: dogs")):
        zoo.api.generate(tmp_path / "run", n=2, class_label=label, out=tmp_path / "s.safetensors")
        with safe_open(tmp_path / "s.safetensors", "pt") as f:
            assert f.metadata()["sampling"] == said

# ------------------------------------------------------------------------------------------ other layouts: refused

def test_stray_images_beside_class_folders_are_refused_and_named(tmp_path):
    root = tmp_path / "pics"
    _write_pngs(root, {"cats": 30, "dogs": 200}, n=3, size=(16, 16), mode="L")
    for name in ("stray.png", "b.jpg", "c.png", "d.png", "e.png"):
        _png(root / name)
    e = _refusal(root)
    assert "cats, dogs" in e.message and "5 image(s) outside them" in e.message
    assert "b.jpg, c.png, d.png and 2 more" in e.message  # a few names, not a flood
    assert "no label" in e.message
    assert "Move them into a class folder or remove them" in e.hint


def test_one_stray_image_stops_training_with_one_clear_message(tmp_path):
    root = tmp_path / "pics"
    _write_pngs(root, {"cats": 30, "dogs": 200}, n=3, size=(16, 16), mode="L")
    _png(root / "stray.png")
    run = tmp_path / "run"
    assert_clean_error(invoke("train", "convae", "--dataset", f"folder:{root}", "--epochs", "1", "--out", run,
                              *TINY_SET), "stray.png", "Move them into a class folder")
    assert not run.exists()


def test_hidden_files_and_folders_are_skipped(tmp_path):
    root = tmp_path / "pics"
    _write_pngs(root, {"cats": 30, "dogs": 200}, n=5, size=(16, 16), mode="L")
    _png(root / ".ipynb_checkpoints" / "stray-checkpoint.png")       # a tool's folder at the top
    _png(root / "cats" / ".ipynb_checkpoints" / "000-checkpoint.png")  # ... and inside a class
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "dogs" / "._000.png").write_bytes(b"\0\5\26\7 AppleDouble")  # macOS metadata, not a PNG
    (root / ".empty-hidden-folder").mkdir()
    data = zoo.load_dataset(f"folder:{root}")
    assert data.classes == ("cats", "dogs") and data.reused == {}
    assert sum(data.split(s)[0].shape[0] for s in ("train", "val", "test")) == 10


@pytest.mark.parametrize("nested", ["train/cats/0.png", "cats/kittens/0.png"], ids=["split-folders", "sub-class"])
def test_images_in_folders_inside_class_folders_are_refused(tmp_path, nested):
    root = tmp_path / "pics"
    _png(root / "dogs" / "0.png")
    _png(root / nested)
    e = _refusal(root)
    inner = str(Path(nested).parent)
    assert f"inside class folders of {root}: {inner}. " in e.message
    assert "Point folder: at the folder whose sub-folders are the classes" in e.hint


def test_class_folder_without_images_is_refused(tmp_path):
    root = tmp_path / "pics"
    _write_pngs(root, {"cats": 30}, n=3, size=(16, 16), mode="L")
    (root / "dogs").mkdir()
    (root / "dogs" / "photo.heic").write_bytes(b"not read by zoo")
    (root / "mice").mkdir()
    (root / "owls").mkdir()
    (root / "owls" / "x.png").symlink_to(tmp_path / "gone.png")  # a broken link: no image (it made a class of none)
    e = _refusal(root)
    assert "with no images: dogs, mice, owls" in e.message
    assert "Add images" in e.hint and ".png" in e.hint


# ------------------------------------------------------------------------------------------ the path

@pytest.mark.parametrize("name", ["folder:", "folder:   ", "  FOLDER:\t"])
def test_empty_folder_path_is_refused(name, tmp_path):
    _png(tmp_path / "in-the-working-directory.png")  # what an empty path used to scan
    for call in (lambda: zoo.load_dataset(name), lambda: canonical_dataset_name(name)):
        with pytest.raises(DataNotFoundError) as e:
            call()
        assert "folder: needs the path of a folder" in e.value.message and "folder:." in e.value.hint
    assert_clean_error(invoke("train", "convae", "--dataset", name, "--epochs", "1", "--out", tmp_path / "run",
                              *TINY_SET), "needs the path")


def test_canonical_dataset_name_makes_a_folder_path_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert canonical_dataset_name("folder:pics") == f"folder:{tmp_path / 'pics'}"
    assert canonical_dataset_name(" folder: pics/../pics ") == f"folder:{tmp_path / 'pics'}"
    assert canonical_dataset_name("folder:~/x") == f"folder:{tmp_path / 'home' / 'x'}"
    assert canonical_dataset_name(f"folder:{tmp_path}") == f"folder:{tmp_path}"
    assert canonical_dataset_name("MNIST") == "mnist" and canonical_dataset_name(" Digits ") == "digits"
    assert canonical_dataset_name("cifar10") == "cifar10"  # unknown: left for load_dataset to refuse


def test_folder_data_set_is_named_by_its_absolute_path(tmp_path, monkeypatch):
    _write_pngs(tmp_path / "pics", {"a": 10, "b": 100}, n=3, size=(8, 8), mode="L")
    monkeypatch.chdir(tmp_path)
    data = zoo.load_dataset("folder:pics")
    assert data.name == f"folder:{tmp_path / 'pics'}" == canonical_dataset_name("folder:pics")


def test_a_run_on_a_relative_folder_evaluates_from_another_directory(tmp_path, monkeypatch):
    _write_pngs(tmp_path / "project" / "pics", {"a": 10, "b": 100}, n=3, size=(16, 16), mode="L")
    monkeypatch.chdir(tmp_path / "project")
    zoo.train("convae", dataset="folder:pics", epochs=1, out="run", log=quiet, progress=False, **TINY)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    ev = zoo.evaluate(tmp_path / "project" / "run", save=False)
    assert ev["dataset"] == f"folder:{tmp_path / 'project' / 'pics'}"


def test_a_runs_image_folder_that_moved_is_found_again_by_data_dir(tmp_path):
    _write_pngs(tmp_path / "pics", {"a": 10, "b": 100}, n=6, size=(16, 16), mode="L")
    run = tmp_path / "run"
    zoo.train("convae", dataset=f"folder:{tmp_path / 'pics'}", epochs=1, out=run, log=quiet, progress=False, **TINY)
    before = zoo.evaluate(run, save=False)["metrics"]
    (tmp_path / "pics").rename(tmp_path / "moved")
    assert_clean_error(invoke("eval", run), "image folder not found", "--data-dir FOLDER")
    assert zoo.evaluate(run, data_dir=tmp_path / "moved", save=False)["metrics"] == before
    assert_ok(invoke("generate", run, "--sampler", "gaussian", "--n", "4", "--data-dir", tmp_path / "moved",
                     "--out", tmp_path / "s.png"))
    _write_pngs(tmp_path / "other", {"x": 10, "y": 100}, n=6, size=(16, 16), mode="L")
    assert_clean_error(invoke("eval", run, "--data-dir", tmp_path / "other"), "class")  # not the run's classes


def test_a_moved_folder_run_resumes_with_data_dir_where_the_folder_is_now(tmp_path):
    """--data-dir was ignored on resume for a folder run (refused: 'image folder not found ... folder:PATH',
    an option --resume refuses), and saved as typed where the old folder still existed."""
    _write_pngs(tmp_path / "pics", {"a": 10, "b": 100}, n=6, size=(16, 16), mode="L")
    run = tmp_path / "run"
    zoo.train("convae", dataset=f"folder:{tmp_path / 'pics'}", epochs=1, out=run, log=quiet, progress=False, **TINY)
    (tmp_path / "pics").rename(tmp_path / "moved")
    assert_clean_error(invoke("train", "--resume", run, "--epochs", "2"), "image folder not found",
                       f"zoo train --resume {run} --data-dir FOLDER")  # not 'folder:PATH', which a resume refuses
    assert_ok(invoke("train", "--resume", run, "--epochs", "2", "--data-dir", tmp_path / "moved", "--no-progress"))
    train = json.loads((run / "config.json").read_text())["train"]
    assert train["dataset"] == f"folder:{tmp_path / 'moved'}" and train["data_dir"] == ""
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2


def test_a_resume_on_other_images_than_the_run_trained_on_is_refused(tmp_path):
    """A folder that gained images, or another --data-dir's files, were trained on without a word (and
    config.json kept the old sizes)."""
    _write_pngs(tmp_path / "pics", {"a": 10, "b": 100}, n=6, size=(16, 16), mode="L")
    run = tmp_path / "run"
    zoo.train("convae", dataset=f"folder:{tmp_path / 'pics'}", epochs=1, out=run, log=quiet, progress=False, **TINY)
    before = (run / "model.safetensors").read_bytes()
    _write_pngs(tmp_path / "pics", {"c": 200}, n=10, size=(16, 16), mode="L")  # a third class: refused as such
    assert_clean_error(invoke("train", "--resume", run, "--epochs", "2"), "class")
    for extra in (tmp_path / "pics" / "c").iterdir():
        extra.rename(tmp_path / "pics" / "a" / f"more-{extra.name}")
    (tmp_path / "pics" / "c").rmdir()
    assert_clean_error(invoke("train", "--resume", run, "--epochs", "2"), f"{run} was trained on other images",
                       "train images where it had", "--data-dir")
    assert (run / "model.safetensors").read_bytes() == before


# ------------------------------------------------------------------------------------------ the shape of a run

def test_shape_converts_a_folder_to_those_channels_and_that_size(tmp_path):
    root = tmp_path / "pics"
    _write_pngs(root, {"a": 10, "b": 100}, n=3, size=(32, 32), mode="RGB")
    grey = zoo.load_dataset(f"folder:{root}", shape=(1, 12, 20), image_size=32)  # shape wins over image_size
    assert grey.shape == (1, 12, 20) and grey.test_x.shape[1:] == (1, 12, 20)
    for img, label in zip(grey.train_x, grey.train_y.tolist()):
        v = (10, 100)[label]
        assert int(img[0, 5, 5]) == Image.new("RGB", (1, 1), (v, 255 - v, v // 2)).convert("L").getpixel((0, 0))
    rgb = zoo.load_dataset(f"folder:{tmp_path / 'pics'}", shape=(3, 8, 8))
    assert rgb.shape == (3, 8, 8)
    flat = tmp_path / "grey"
    for i in range(3):
        _png(flat / f"{i}.png", 60, (10, 10))
    as_rgb = zoo.load_dataset(f"folder:{flat}", shape=(3, 10, 10))
    assert as_rgb.shape == (3, 10, 10) and (as_rgb.train_x == 60).all()


def test_shape_with_channels_a_folder_cannot_have_is_refused(tmp_path):
    _write_pngs(tmp_path / "pics", {"a": 10}, n=2, size=(8, 8), mode="L")
    with pytest.raises(ConfigError, match="not 2 channels"):
        zoo.load_dataset(f"folder:{tmp_path / 'pics'}", shape=(2, 8, 8))


def test_shape_that_a_fixed_data_set_does_not_have_is_refused(tmp_path):
    write_idx_set(tmp_path / "mnist", n_train=20, n_test=5)
    assert zoo.load_dataset("mnist", data_dir=str(tmp_path), shape=(1, 28, 28)).shape == (1, 28, 28)
    for name in ("mnist", "digits"):
        with pytest.raises(DataNotFoundError) as e:
            zoo.load_dataset(name, data_dir=str(tmp_path), shape=(3, 32, 32))
        assert e.value.message == f"{name} has images of shape 1×28×28, but the run was trained on 3×32×32"


def test_classes_that_changed_since_the_run_are_refused(tmp_path):
    root = tmp_path / "pics"
    _write_pngs(root, {"cats": 10, "dogs": 100}, n=3, size=(8, 8), mode="L")
    assert zoo.load_dataset(f"folder:{root}", classes=("cats", "dogs")).classes == ("cats", "dogs")
    with pytest.raises(DataNotFoundError) as e:
        zoo.load_dataset(f"folder:{root}", classes=("cats", "dogs", "mice"))
    assert "has the classes cats, dogs, but the run was trained on cats, dogs, mice" in e.value.message
    flat = tmp_path / "flat"
    for i in range(3):
        _png(flat / f"{i}.png", size=(8, 8))
    with pytest.raises(DataNotFoundError) as e:  # its one class is named "image" inside zoo: never said so
        zoo.load_dataset(f"folder:{flat}", classes=("cats", "dogs"))
    assert "has no class folders (its images are one class), but the run was trained on cats, dogs" in e.value.message


def test_a_run_evaluates_after_its_folder_images_changed_size_and_colour(tmp_path):
    root = tmp_path / "pics"
    _write_pngs(root, {"a": 10, "b": 100}, n=3, size=(16, 16), mode="L")
    run = tmp_path / "run"
    zoo.train("convae", dataset=f"folder:{root}", epochs=1, out=run, log=quiet, progress=False, **TINY)
    for cls in ("a", "b"):
        for p in (root / cls).iterdir():
            Image.new("RGB", (40, 24), (200, 10, 10)).save(p)
    ev = zoo.evaluate(run, save=False)
    assert ev["images"] > 0
    assert_ok(invoke("reconstruct", run, "--n", "2", "--out", tmp_path / "r.png"))


# ------------------------------------------------------------------------------------------ tiny folders

def test_tiny_folder_says_its_splits_reuse_the_training_images(tmp_path):
    root = tmp_path / "pics"
    for i in range(3):
        _png(root / f"{i}.png", i * 50)
    data = zoo.load_dataset(f"folder:{root}")
    assert data.reused == {"test": "train", "val": "train"}
    assert torch.equal(data.val_x, data.train_x)
    info = data.info()
    assert info["reused"] == {"test": "train", "val": "train"}
    assert "reuses the training images" in info["caveat"] and "not generalisation" in info["caveat"]
    _write_pngs(tmp_path / "enough", {"a": 10, "b": 100}, n=8, size=(8, 8), mode="L")
    big = zoo.load_dataset(f"folder:{tmp_path / 'enough'}")
    assert big.reused == {} and "reused" not in big.info() and big.caveat() == ""


def test_an_older_folder_run_whose_validation_split_reused_its_training_images_resumes(tmp_path):
    """A zoo before 2026-12-06 reused a folder's training images as the validation split under val_fraction 0,
    and recorded that count: the resume was refused as 'trained on other images'."""
    _write_pngs(tmp_path / "pics", {"a": 10, "b": 100}, n=6, size=(16, 16), mode="L")
    run = tmp_path / "run"
    zoo.train("convae", dataset=f"folder:{tmp_path / 'pics'}", epochs=1, val_fraction=0.0, out=run, log=quiet,
              progress=False, **TINY)
    record = json.loads((run / "config.json").read_text())
    sizes = record["data"]["sizes"]
    record["data"] = {**record["data"], "reused": {"val": "train"}, "sizes": {**sizes, "val": sizes["train"]}}
    (run / "config.json").write_text(json.dumps(record))
    assert_ok(invoke("train", "--resume", run, "--epochs", "2", "--no-progress"))
    record["data"]["reused"] = 1  # not a table: read as no reuse, never a traceback
    (run / "config.json").write_text(json.dumps(record))
    assert_ok(invoke("eval", run))


# ------------------------------------------------------------------------------------------ which file is which

def test_each_split_names_the_file_of_each_image_and_the_per_image_csv_shows_it(tmp_path):
    """`zoo eval --per-image` of a folder's images gave an index in a shuffled split: no user could tell which
    of their files scored worst (the outlier they were looking for)."""
    for i in range(30):  # every file its own grey value, so a file and its image are matched by the pixel
        _png(tmp_path / "pics" / ("a" if i % 2 else "b") / f"img{i:02d}.png", value=3 * i, size=(12, 12))
    data = zoo.load_dataset(f"folder:{tmp_path / 'pics'}")
    named = []
    for split in ("train", "val", "test"):
        x, _ = data.split(split)
        files = data.files[split]
        assert len(files) == x.shape[0] > 0
        for image, file in zip(x, files):
            assert int(image[0, 0, 0]) == Image.open(tmp_path / "pics" / file).getpixel((0, 0))
        named += files
    assert sorted(named) == sorted(p.relative_to(tmp_path / "pics").as_posix()
                                   for p in (tmp_path / "pics").rglob("*.png"))  # each file once
    run = tmp_path / "run"
    zoo.train("convae", dataset=f"folder:{tmp_path / 'pics'}", epochs=1, out=run, log=quiet, progress=False, **TINY)
    assert_ok(invoke("eval", run, "--per-image", tmp_path / "scores.csv"))
    rows = (tmp_path / "scores.csv").read_text().splitlines()
    assert rows[0].startswith("index,file,label,class,")
    assert [r.split(",")[1] for r in rows[1:]] == list(data.files["test"])
