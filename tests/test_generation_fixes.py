"""Fixes of the generation and latent-space tools (gen19): the tensor-file suffix in any case, grids that grow
with their samples instead of shrinking them, denoised outputs of two same-named inputs kept apart, collapsed
codes and oversized mixtures refused, default names from the resolved class and sampler, whole numbers held in
tensors and arrays, and notes and hints where a result or a refusal said too little."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, TINY_SET, assert_clean_error, assert_ok, invoke, is_png, quiet, write_idx_set
from PIL import Image

import zoo
from zoo.analysis import plots
from zoo.analysis.latent_samplers import get_sampler

MIN_TILE = 20  # pixels a sample must keep in a picture


@pytest.fixture(scope="module")
def cvae(tmp_path_factory) -> Path:
    """A tiny conditional VAE (1 epoch): a model that samples a class, and cannot decode a code alone."""
    out = tmp_path_factory.mktemp("gen19") / "cvae"
    zoo.train("cvae", dataset="digits", epochs=1, latent_dim=2, out=out, log=quiet, progress=False, **TINY)
    return out


def picture_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size


def raw_warnings(call) -> list[str]:
    """The Python warnings `call` raised, every one of them (matplotlib's, scikit-learn's), as text."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return [f"{w.category.__name__}: {w.message}" for w in caught]


# ------------------------------------------------------------------------------- 1. the tensor file's suffix

def test_generate_writes_the_images_as_tensors_to_an_upper_case_safetensors_name(digits_vae_run, tmp_path):
    from safetensors.torch import load_file

    assert_ok(invoke("generate", digits_vae_run, "--n", "4", "--out", tmp_path / "x.SAFETENSORS"))
    assert load_file(str(tmp_path / "x.SAFETENSORS"))["images"].shape == (4, 1, 28, 28)
    # more than a picture shows: no "write them to a tensor file instead", since that is what was asked
    assert_ok(invoke("generate", digits_vae_run, "--n", "2600", "--out", tmp_path / "y.SafeTensors"))
    assert load_file(str(tmp_path / "y.SafeTensors"))["images"].shape == (2600, 1, 28, 28)


# ------------------------------------------------------------------------------- 2. grids keep their samples visible

def test_a_per_class_grid_wraps_its_rows_and_keeps_every_sample_at_20_pixels_without_raw_warnings(cvae, tmp_path):
    said = raw_warnings(lambda: zoo.generate(cvae, per_class=100, out=tmp_path / "pc100.png"))
    assert said == []  # no "Tight layout not applied" UserWarning
    w, h = picture_size(tmp_path / "pc100.png")
    # 1,000 samples of 10 classes: each class in 2 lines of 50, so 50 across and 20 lines down at 20 px or more
    assert w >= 50 * MIN_TILE and h >= 20 * MIN_TILE, (w, h)


def test_a_grid_that_cannot_keep_its_images_at_20_pixels_is_refused_with_what_to_ask_instead(tmp_path):
    rows = [(str(i), torch.rand(1, 1, 28, 28)) for i in range(130)]  # 130 labelled rows: 130 lines
    with pytest.raises(zoo.ZooError, match="would show each at") as e:
        plots.image_rows(rows, tmp_path / "tall.png", hint="Ask fewer.")
    assert e.value.hint == "Ask fewer." and not (tmp_path / "tall.png").exists()


def test_an_interpolation_of_200_steps_wraps_its_panels_instead_of_shrinking_them(digits_run, tmp_path):
    assert raw_warnings(lambda: zoo.interpolate(digits_run, "#1", "#2", steps=200, out=tmp_path / "i200.png")) == []
    w, h = picture_size(tmp_path / "i200.png")
    panels = 200 + 2  # the two input images too
    assert w * h / panels >= 80 * 80, (w, h)  # room for each panel and its caption (a single line gave 14 px)
    assert h > 5 * 100  # in several lines
    assert max(w, h) <= plots.PIXEL_BUDGET, (w, h)  # 20 panels a line were 2,794 pixels wide


def test_a_manifold_of_100_steps_keeps_each_decode_at_20_pixels(digits_run, tmp_path):
    assert raw_warnings(lambda: zoo.manifold(digits_run, steps=100, out=tmp_path / "m100.png")) == []
    w, h = picture_size(tmp_path / "m100.png")
    assert w >= 100 * MIN_TILE and h >= 100 * MIN_TILE, (w, h)


# ------------------------------------------------------------------------------- 3. denoised outputs kept apart

def _folder(root: Path, shade: int) -> Path:
    root.mkdir(parents=True)
    Image.new("L", (28, 28), shade).save(root / "a.png")
    return root


def test_denoising_another_folder_of_the_same_name_gets_its_own_default_output(run_copy, tmp_path):
    first, second = _folder(tmp_path / "myimg", 30), _folder(tmp_path / "other" / "myimg", 200)
    assert_ok(invoke("denoise", run_copy, "--input", first))
    mine = (run_copy / "denoised-myimg_files" / "a.png").read_bytes()
    out = assert_ok(invoke("denoise", run_copy, "--input", second))
    assert "holds the denoised images of another input" in out
    theirs = [p for p in run_copy.glob("denoised-myimg-*.png")]
    assert len(theirs) == 1 and is_png(theirs[0].with_name(theirs[0].stem + "_files") / "a.png")
    assert (run_copy / "denoised-myimg_files" / "a.png").read_bytes() == mine  # the first input's, untouched
    assert sorted(p.name for p in (run_copy / "denoised-myimg_files").iterdir()) == ["a.png"]
    # the first input again: its own outputs, replaced in place; no third name
    assert "another input" not in assert_ok(invoke("denoise", run_copy, "--input", first))
    assert len(list(run_copy.glob("denoised-myimg*.png"))) == 2
    # named with --out onto the first input's outputs: refused, nothing replaced
    assert_clean_error(invoke("denoise", run_copy, "--input", second, "--out", run_copy / "denoised-myimg.png"),
                       "holds the denoised files of another input", "--out")
    assert (run_copy / "denoised-myimg_files" / "a.png").read_bytes() == mine


def test_a_denoising_stopped_among_its_files_is_the_same_inputs_when_run_again(run_copy, tmp_path, monkeypatch):
    """The files were written before the picture that records their input: a stop between them left files of
    'an unknown input', and the same command then went to another name (review22)."""
    first = _folder(tmp_path / "myimg", 30)
    (first / "b.png").write_bytes((first / "a.png").read_bytes())
    write = zoo.runs.checkpoint.atomic_write
    calls = []

    def stopped_at_the_second_file(path, data):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        write(path, data)
    monkeypatch.setattr(zoo.runs.checkpoint, "atomic_write", stopped_at_the_second_file)
    invoke("denoise", run_copy, "--input", first)
    monkeypatch.undo()
    assert len(calls) == 2 and (run_copy / "denoised-myimg.png").is_file()
    out = assert_ok(invoke("denoise", run_copy, "--input", first))
    assert "another input" not in out and sorted(p.name for p in run_copy.glob("denoised-myimg*.png")) == [
        "denoised-myimg.png"]


def test_denoise_shows_the_most_images_its_n_allows(run_copy, tmp_path):
    """--n 1024 (its range's top) was refused as a picture of 12-pixel images, after every image was denoised."""
    assert_ok(invoke("denoise", run_copy, "--n", "1024", "--split", "train", "--noise", "gaussian:0.3", "--out",
                     tmp_path / "d.png"))
    width, height = Image.open(tmp_path / "d.png").size
    assert min(width, height) >= 3 * 1024 ** 0.5 * 20 * 0.8  # 3,072 images of at least about 20 pixels


# ------------------------------------------------------------------------------- 4. collapsed codes

def test_samplers_and_spread_refuse_codes_that_are_all_the_same_without_raw_warnings(digits_run, tmp_path):
    run = zoo.load(digits_run)
    with torch.no_grad():
        run.model.encoder[-1].weight.zero_()  # every image gets the same code: the layer's bias
    for how in ({"sampler": "gmm"}, {"sampler": "gaussian"}, {"class_label": 3, "spread": 0.5}):
        def call(how=how):
            with pytest.raises(zoo.ZooError, match="are the same"):
                zoo.generate(run, n=4, out=tmp_path / "dead.png", **how)
        assert raw_warnings(call) == [], how
    assert not (tmp_path / "dead.png").exists()


def test_the_gmm_sampler_fits_codes_of_few_distinct_points_without_raw_warnings():
    codes = torch.tensor([[0.0, 1.0], [2.0, 0.0], [1.0, 1.0]]).repeat(40, 1)  # 120 codes, 3 distinct
    fitted: list = []
    assert raw_warnings(lambda: fitted.append(get_sampler("gmm")().fit(codes))) == []
    assert fitted[0].weights.shape[0] == 1 and "component" in fitted[0].fit_warning()


# ------------------------------------------------------------------------------- 5. a mixture too large to fit

def test_the_gmm_sampler_refuses_more_covariance_parameters_than_the_codes_hold_with_a_hint():
    with pytest.raises(zoo.ZooError, match="about 10 a component, fewer than its 64 dimensions") as e:
        get_sampler("gmm")().fit(torch.randn(100, 64))
    assert "--sampler gaussian" in e.value.hint
    assert e.value.exit_code == 1  # the run's data decide, not the command line


# ------------------------------------------------------------------------------- 6. default names

def test_default_sample_pictures_are_named_by_the_resolved_class_and_sampler(run_copy):
    for spelling in ("3", "03", " 3"):
        assert_ok(invoke("generate", run_copy, "--class", spelling, "--spread", "0.5", "--n", "2"))
    for spelling in ("gmm", "GMM", " gmm"):
        assert_ok(invoke("generate", run_copy, "--sampler", spelling, "--n", "2"))
    assert sorted(p.name for p in run_copy.glob("samples*.png")) == ["samples-class-3-spread-0.5.png",
                                                                      "samples-gmm.png"]


# ------------------------------------------------------------------------------- 7. whole numbers in tensors

def test_interpolate_and_manifold_take_whole_numbers_held_in_tensors_and_arrays(digits_vae_run, tmp_path):
    r = zoo.interpolate(digits_vae_run, torch.tensor(1), np.int64(2), steps=3, out=tmp_path / "i.png")
    assert (r.start.index, r.end.index, r.start.spec) == (1, 2, "1")
    for dims in (np.array([1, 0]), torch.tensor([1, 0])):
        assert zoo.manifold(digits_vae_run, steps=2, dims=dims, out=tmp_path / "m.png").dims == (1, 0)
    for wrong in (np.array([0.5, 1.0]), torch.tensor([[0, 1]])):
        with pytest.raises(zoo.ZooError, match="whole numbers"):
            zoo.manifold(digits_vae_run, steps=2, dims=wrong, out=tmp_path / "m.png")


# ------------------------------------------------------------------------------- 8, 9. notes and hints

def test_reconstruct_says_when_the_split_holds_fewer_images_than_asked(digits_run, tmp_path):
    out = assert_ok(invoke("reconstruct", digits_run, "--n", "256", "--split", "val", "--out", tmp_path / "r.png"))
    assert "note: the val split holds 144 images: all of them shown, not 256" in out


def test_sampling_a_plain_autoencoder_in_python_points_to_the_sampler_argument(digits_run):
    with pytest.raises(zoo.ZooError, match="cannot sample by itself") as e:
        zoo.sample(digits_run, n=2)
    assert "sampler='gmm'" in e.value.hint


def test_manifold_of_a_model_that_cannot_decode_a_code_says_what_it_needs(cvae):
    assert_clean_error(invoke("manifold", cvae), "cannot decode a code", "an autoencoder or a VAE")


def test_a_sampler_fitted_on_other_images_than_the_runs_is_said_and_never_kept_for_the_run(tmp_path):
    """A GMM fitted under --data-dir on another set of as many images was saved into the run, and every later
    `zoo generate RUN --sampler gmm` drew from it without a word (gen19)."""
    write_idx_set(tmp_path / "own" / "mnist", n_train=120, n_test=20, seed=0)
    write_idx_set(tmp_path / "other" / "mnist", n_train=120, n_test=20, seed=1)  # as many images, other ones
    run = tmp_path / "run"
    assert_ok(invoke("train", "convae", "--dataset", "mnist", "--data-dir", tmp_path / "own", "--epochs", "1",
                     "--out", run, *TINY_SET))
    other = invoke("generate", run, "--sampler", "gaussian", "--n", "4", "--data-dir", tmp_path / "other",
                   "--out", tmp_path / "a.png")
    assert_ok(other)
    assert "other train images than it had" in other.output and "not saved: fitted on other images" in other.output
    assert not (run / "sampler-gaussian.safetensors").exists()
    own = assert_ok(invoke("generate", run, "--sampler", "gaussian", "--n", "4", "--out", tmp_path / "b.png"))
    assert "other train images" not in own and (run / "sampler-gaussian.safetensors").is_file()
    assert "not the images" in assert_ok(invoke("latent", run, "--data-dir", tmp_path / "other",
                                                "--out", tmp_path / "l.png"))


def test_a_manifold_of_wide_images_shows_them_wide_not_squeezed_square(tmp_path):
    """Each cell of the manifold was one unit square: 12×36 images were shown at a third of their width."""
    rng = np.random.default_rng(0)
    (tmp_path / "wide").mkdir()
    for i in range(40):
        Image.fromarray(rng.integers(0, 256, (12, 36), dtype=np.uint8), "L").save(tmp_path / "wide" / f"{i}.png")
    run = tmp_path / "run"
    assert_ok(invoke("train", "vae", "--dataset", f"folder:{tmp_path / 'wide'}", "--epochs", "1", "--set",
                     "latent_dim=2", "--set", "channels=4,8", "--set", "padding=1", "--set", "hidden=16",
                     "--device", "cpu", "--no-progress", "--out", run))
    assert_ok(invoke("manifold", run, "--steps", "5", "--out", tmp_path / "m.png"))
    width, height = Image.open(tmp_path / "m.png").size
    assert width > 2 * height  # a 5×5 grid of images three times as wide as high, with its labels


def test_a_denoising_of_a_users_images_waits_for_one_that_writes_the_runs_outputs(run_copy, tmp_path):
    """Two denoisings of two folders of one name at once chose the same default name and wrote into one folder
    (concurrent19): one now waits for the other, and then names its outputs apart."""
    import subprocess
    import sys
    import time

    from zoo.runs.lock import results_lock

    first = _folder(tmp_path / "myimg", 30)
    held = results_lock(run_copy)  # as a first denoising (or an evaluation ending) holds it
    later = subprocess.Popen([sys.executable, "-m", "zoo", "denoise", str(run_copy), "--input", str(first)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(8)  # more than its start: it waits for the lock before it names its outputs
    try:
        assert later.poll() is None and not (run_copy / "denoised-myimg.png").exists()
    finally:
        held.release()
    out, _ = later.communicate(timeout=120)
    assert later.returncode == 0, out
    assert is_png(run_copy / "denoised-myimg.png") and is_png(run_copy / "denoised-myimg_files" / "a.png")


def test_an_unlabelled_grid_has_no_empty_label_column_and_sits_centred_under_its_title(tmp_path):
    import numpy as np

    images = torch.rand(16, 1, 28, 28)
    title = "gan (gan-mnist): 16 samples (the model's prior, seed 0)"  # wider than the grid
    plots.image_rows([("", images)], tmp_path / "plain.png", title=title, per_row=4)
    with Image.open(tmp_path / "plain.png") as im:
        grey = np.asarray(im.convert("L"))
    lower = grey[grey.shape[0] // 2:]  # under the title: the grid and its frame
    inked = np.flatnonzero((lower < 128).any(axis=0))
    left, right = inked[0], grey.shape[1] - 1 - inked[-1]
    assert abs(left - right) <= 12, (left, right)  # a 1.6-inch empty label column pushed the grid right
