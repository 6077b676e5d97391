"""Own image folders (report data20, its F12 items): an interpolation to a class with no test images names the
class; a cross-validation on a relative folder: records it by its absolute path, as zoo train does."""
from __future__ import annotations

import json

import pytest
from conftest import TINY, quiet
from test_folder_fixes20 import _folder, _run

import zoo


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
