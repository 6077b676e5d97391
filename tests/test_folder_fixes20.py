"""Own image folders beyond plain training (report data20): fine-tuning, search, eval and the messages of
folder runs whose images changed, moved or were damaged."""

from __future__ import annotations

import json
import os
import shutil
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, assert_clean_error, assert_ok, invoke, quiet
from PIL import Image

import zoo
from zoo.errors import DataNotFoundError

TINY_CLI = ["--set", "channels=4,8,8", "--set", "hidden=16", "--device", "cpu", "--no-progress"]


def _folder(root: Path, counts: dict[str, int], size: int = 16, mode: str = "L", seed: int = 0) -> Path:
    """Class folders of distinct noise images (so that other files are other bytes), `counts[c]` in class c."""
    rng = np.random.default_rng(seed)
    for k, (cls, n) in enumerate(counts.items()):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            shape = (size, size) if mode == "L" else (size, size, 3)
            pixels = np.clip(rng.normal(40 + 60 * k, 30, shape), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, mode).save(root / cls / f"{i:03d}.png")
    return root


def _run(tmp_path: Path, folder: Path, name: str = "run", **keys) -> Path:
    out = tmp_path / name
    zoo.train("convae", dataset=f"folder:{folder}", epochs=1, out=out, log=quiet, progress=False, **{**TINY, **keys})
    return out


# ------------------------------------------------------------------------------------------ F1

def test_a_class_without_test_images_has_no_accuracy_measured_and_training_says_so(tmp_path):
    root = _folder(tmp_path / "pics", {"a_big": 30, "b_tiny": 1, "c_mid": 10})
    data = zoo.load_dataset(f"folder:{root}")
    assert 1 not in data.test_y.tolist() and 1 not in data.val_y.tolist()  # b_tiny's one image is a training one
    lines: list[str] = []
    run = tmp_path / "head"
    zoo.train("classifier", dataset=f"folder:{root}", epochs=1, out=run, log=lines.append, progress=False, **TINY)
    assert any("test split holds no image of the class(es) b_tiny" in line for line in lines), lines
    report = zoo.evaluate(run)["report"]
    assert report["per_class_accuracy"][1] is None  # not 0.0: nothing was measured
    assert all(isinstance(a, float) for i, a in enumerate(report["per_class_accuracy"]) if i != 1)
    saved = json.loads((run / "eval.json").read_text())["report"]["per_class_accuracy"]
    assert saved[1] is None


# ------------------------------------------------------------------------------------------ F2

def test_a_damaged_image_in_a_folder_still_in_place_keeps_its_own_hint_not_data_dir(tmp_path):
    root = _folder(tmp_path / "pics", {"a": 12, "b": 12})
    run = _run(tmp_path, root)
    good = (root / "a" / "000.png").read_bytes()
    (root / "a" / "zz_trunc.png").write_bytes(good[:60])
    for args in (("eval", run), ("reconstruct", run), ("train", "--resume", run, "--epochs", "2")):
        out = assert_clean_error(invoke(*args), "cannot read image", "Remove or replace that file")
        assert "--data-dir" not in out, out
    (root / "a" / "zz_trunc.png").unlink()
    (root / "a").rename(root / "A")  # a renamed class folder: its hint says to restore the class folders
    out = assert_clean_error(invoke("eval", run), "restore its class folders")
    assert "--data-dir" not in out, out
    (root / "A").rename(root / "a")
    root.rename(tmp_path / "moved")  # a folder that is gone: --data-dir is the way to find it again
    assert_clean_error(invoke("eval", run), "image folder not found", "--data-dir FOLDER")


# ------------------------------------------------------------------------------------------ F3, F4

SPACE = ('[search]\ntrials = 1\n[params]\nlr = {low = 1e-4, high = 1e-2, log = true}\n[fixed]\nepochs = 1\n'
         'channels = [4, 8, 8]\nhidden = [16]\ndevice = "cpu"\n')


def _search(tmp_path: Path, root: str) -> Path:
    (tmp_path / "s.toml").write_text(SPACE)
    assert_ok(invoke("search", "convae", "--space", tmp_path / "s.toml", "--dataset", f"folder:{root}",
                     "--trials", "1", "--out", tmp_path / "st"))
    return tmp_path / "st"


def test_a_search_resumed_on_a_folder_whose_images_changed_is_refused(tmp_path):
    root = _folder(tmp_path / "pics", {"a": 15, "b": 15})
    study = _search(tmp_path, str(root))
    shutil.rmtree(root / "b")
    _folder(root, {"b": 5}, seed=1)
    assert_clean_error(invoke("search", "convae", "--trials", "2", "--out", study), "was begun on other images",
                       "train images where it had", "restore the folder")
    for p in (root / "b").iterdir():  # as many images, other bytes: refused too
        Image.fromarray(255 - np.asarray(Image.open(p)), "L").save(p)
    assert_clean_error(invoke("search", "convae", "--trials", "2", "--out", study), "was begun on other images")


def test_a_search_begun_on_a_relative_folder_records_it_absolute_for_best_toml_and_resumes(tmp_path, monkeypatch):
    project = tmp_path / "project"
    _folder(project / "pics", {"a": 15, "b": 15})
    monkeypatch.chdir(project)
    study = _search(tmp_path, "pics")
    best = (study / "best.toml").read_text()
    assert f'dataset = "folder:{project / "pics"}"' in best, best
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "pics").mkdir(parents=True)  # a folder of that name here too: never the one read
    monkeypatch.chdir(elsewhere)
    out = assert_ok(invoke("search", "convae", "--trials", "2", "--out", study))
    assert f"dataset = folder:{project / 'pics'}" in out, out


# ------------------------------------------------------------------------------------------ F5, F5b, F6, F7

def test_finetune_on_a_source_folder_that_changed_says_the_head_may_test_on_the_encoders_images(tmp_path):
    root = _folder(tmp_path / "pics", {"a": 15, "b": 15})
    run = _run(tmp_path, root)
    quiet_head = assert_ok(invoke("finetune", run, "--epochs", "1", "--out", tmp_path / "head0", *TINY_CLI[4:]))
    assert "not the images" not in quiet_head
    _folder(root, {"c": 10}, seed=2)  # a class added since the source trained
    out = assert_ok(invoke("finetune", run, "--epochs", "1", "--out", tmp_path / "head", *TINY_CLI[4:]))
    assert f"not the images {run} was trained on" in out and "not of held-out images" in out, out


def test_finetune_finds_a_moved_source_folder_by_data_dir(tmp_path):
    root = _folder(tmp_path / "pics", {"a": 15, "b": 15})
    run = _run(tmp_path, root)
    root.rename(tmp_path / "moved")
    assert_clean_error(invoke("finetune", run, "--epochs", "1", "--out", tmp_path / "h0"), "image folder not found",
                       "--data-dir FOLDER")
    out = assert_ok(invoke("finetune", run, "--epochs", "1", "--data-dir", tmp_path / "moved", "--out",
                           tmp_path / "head", *TINY_CLI[4:]))
    assert "not the images" not in out, out
    assert json.loads((tmp_path / "head" / "config.json").read_text())["train"]["dataset"] == \
        f"folder:{tmp_path / 'moved'}"


def test_finetune_reads_the_source_folder_at_the_image_size_the_source_was_trained_at(tmp_path):
    root = _folder(tmp_path / "pics", {"a": 15, "b": 15}, size=28)
    run = _run(tmp_path, root, image_size=32)
    assert_ok(invoke("finetune", run, "--epochs", "1", "--out", tmp_path / "head", *TINY_CLI[4:]))
    assert json.loads((tmp_path / "head" / "config.json").read_text())["data"]["shape"] == [1, 32, 32]


def test_finetune_of_a_grey_source_on_colour_images_says_to_convert_them_not_to_resize(tmp_path):
    run = _run(tmp_path, _folder(tmp_path / "pics", {"a": 15, "b": 15}))
    rgb = _folder(tmp_path / "rgb", {"x": 10, "y": 10}, mode="RGB")
    out = assert_clean_error(invoke("finetune", run, "--dataset", f"folder:{rgb}", "--epochs", "1", "--out",
                                    tmp_path / "head"), "1×16×16, and these are 3×16×16", "convert the images to grey")
    assert "image_size" not in out, out
    big = _folder(tmp_path / "big", {"x": 10, "y": 10}, size=20)
    assert_clean_error(invoke("finetune", run, "--dataset", f"folder:{big}", "--epochs", "1", "--out",
                              tmp_path / "head"), "--set image_size=16")


# ------------------------------------------------------------------------------------------ F8

def test_class_folders_renamed_only_in_unicode_normalisation_are_the_runs_classes(tmp_path):
    nfc = unicodedata.normalize("NFC", "clsé_b")
    root = _folder(tmp_path / "pics", {"cls a": 6, nfc: 6})
    data = zoo.load_dataset(f"folder:{root}")
    (root / nfc).rename(root / unicodedata.normalize("NFD", nfc))
    moved = zoo.load_dataset(f"folder:{root}", classes=data.classes)
    assert moved.classes == data.classes and moved.digest("test") == data.digest("test")


def test_classes_that_print_alike_but_differ_are_shown_so_the_difference_is_seen(tmp_path):
    root = _folder(tmp_path / "pics", {"a": 6, "b\u200b": 6})  # a zero-width space
    with pytest.raises(DataNotFoundError) as e:
        zoo.load_dataset(f"folder:{root}", classes=("a", "b"))
    assert "'b\\u200b'" in e.value.message and "'b'" in e.value.message, e.value.message


# ------------------------------------------------------------------------------------------ F9

def test_jfif_and_jpe_images_are_read_and_image_files_not_read_are_named(tmp_path):
    root = _folder(tmp_path / "pics", {"a": 6, "b": 6})
    Image.open(root / "b" / "000.png").convert("L").save(root / "b" / "x.jfif", "JPEG")
    Image.open(root / "b" / "001.png").convert("L").save(root / "b" / "y.jpe", "JPEG")
    Image.open(root / "b" / "002.png").convert("L").save(root / "b" / "z.tga", "TGA")
    os.symlink(root / "nowhere.png", root / "a" / "broken.png")
    (root / "a" / "notes.txt").write_text("not an image")
    data = zoo.load_dataset(f"folder:{root}")
    assert sum(data.split(s)[0].shape[0] for s in ("train", "val", "test")) == 14  # 12 PNGs, the .jfif and .jpe
    said = [n for n in data.notes if "not read as images" in n]
    assert len(said) == 1 and "2 file(s)" in said[0] and "z.tga" in said[0] and "broken.png" in said[0], data.notes
    assert "notes.txt" not in said[0]


# ------------------------------------------------------------------------------------------ F10

def test_reconstruct_and_manifold_say_a_folder_that_changed_since_the_run(tmp_path):
    root = _folder(tmp_path / "pics", {"a": 15, "b": 15})
    run = _run(tmp_path, root)
    _folder(root, {"a": 25}, seed=3)  # 000..024 in a: 10 more images, the first 15 replaced
    for args in (("reconstruct", run, "--out", tmp_path / "r.png"), ("manifold", run, "--out", tmp_path / "m.png")):
        out = assert_ok(invoke(*args))
        assert f"not the images {run} was trained and tested on" in out, (args, out)


# ------------------------------------------------------------------------------------------ F12

def test_a_folder_data_set_that_is_a_file_or_lacks_its_prefix_is_said_so(tmp_path):
    (tmp_path / "x.npy").write_bytes(b"\x93NUMPY")
    assert_clean_error(invoke("train", "convae", "--dataset", f"folder:{tmp_path / 'x.npy'}", "--epochs", "1"),
                       "is a file, not a folder of images")
    _folder(tmp_path / "pics", {"a": 3})
    assert_clean_error(invoke("train", "convae", "--dataset", "pics", "--epochs", "1"), "unknown data set 'pics'",
                       "folder:pics")


def test_a_resume_with_data_dir_of_a_moved_folder_records_the_data_sets_new_name(tmp_path):
    root = _folder(tmp_path / "pics", {"a": 10, "b": 10})
    run = _run(tmp_path, root)
    root.rename(tmp_path / "moved")
    assert_ok(invoke("train", "--resume", run, "--epochs", "2", "--data-dir", tmp_path / "moved", "--no-progress"))
    record = json.loads((run / "config.json").read_text())
    assert record["train"]["dataset"] == record["data"]["name"] == f"folder:{tmp_path / 'moved'}"


# ------------------------------------------------------------------------------------------ F12, more

def test_an_interpolation_to_a_class_without_test_images_names_the_class(tmp_path):
    root = _folder(tmp_path / "pics", {"a_big": 30, "b_tiny": 1, "c_mid": 10})
    run = _run(tmp_path, root)
    with pytest.raises(zoo.ZooError) as e:
        zoo.interpolate(run, "a_big", "b_tiny", out=tmp_path / "i.png")
    assert e.value.message.startswith("class 'b_tiny' has no images in the test split"), e.value.message
    assert e.value.hint == "Ask for a class the test split holds."


def test_a_cross_validation_on_a_relative_folder_records_its_absolute_path(tmp_path, monkeypatch):
    _folder(tmp_path / "pics", {"a": 12, "b": 12})
    monkeypatch.chdir(tmp_path)
    zoo.cross_validate("convae", folds_k=2, dataset="folder:pics", out=tmp_path / "cv",
                       overrides={**TINY, "epochs": 1}, log=quiet)
    recorded = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert recorded["train"]["dataset"] == f"folder:{tmp_path / 'pics'}", recorded["train"]


def test_the_confusion_matrix_title_of_two_classes_does_not_run_over_its_colour_bar(tmp_path, monkeypatch):
    import torch

    from zoo.plugins import classifier

    figures = []
    monkeypatch.setattr(classifier, "save_png", lambda fig, path: figures.append(fig))
    classifier._confusion_png(torch.tensor([[30, 3], [2, 25]]), ["a_big", "b_tiny"], tmp_path / "c.png", 0.9167)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = figures[0]
    FigureCanvasAgg(fig).draw()  # laid out as save_png's file is
    renderer = fig.canvas.get_renderer()
    title = fig.axes[0].title.get_window_extent(renderer)
    colour_bar = fig.axes[1].get_tightbbox(renderer)  # with its label
    assert not title.overlaps(colour_bar), (title, colour_bar)
