"""Latent-space analysis: `zoo latent` (PCA / t-SNE scatter + CSV), `zoo manifold` (decoded grids) and
`zoo interpolate` (between class means or test images), through the API and the CLI, on real runs."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, assert_clean_error, assert_ok, invoke, is_png, quiet

import zoo
from zoo.analysis import interpolation, latent, manifold
from zoo.errors import CapabilityError, ConfigError, RunError

DIGITS_TEST = 359  # digits' test split


@pytest.fixture(scope="module")
def ae2(tmp_path_factory) -> Path:
    """A ConvAE with a 2-D latent (this module's own: default outputs may be written into it)."""
    out = tmp_path_factory.mktemp("an") / "ae2"
    zoo.train("convae", dataset="digits", epochs=1, latent_dim=2, out=out, log=quiet, progress=False, **TINY)
    return out


@pytest.fixture(scope="module")
def vae3(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("an") / "vae3"
    zoo.train("vae", dataset="digits", epochs=1, latent_dim=3, out=out, log=quiet, progress=False, **TINY)
    return out


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory) -> Path:
    """A ConvAE on an RGB folder data set whose classes have names (circle, square)."""
    from PIL import Image, ImageDraw

    root = tmp_path_factory.mktemp("shapes")
    rng = np.random.default_rng(0)
    for cls in ("circle", "square"):
        (root / "data" / cls).mkdir(parents=True)
        for i in range(20):
            im = Image.new("RGB", (28, 28), (0, 0, 0))
            a, b = int(rng.integers(2, 8)), int(rng.integers(18, 26))
            colour = tuple(int(v) for v in rng.integers(80, 256, 3))
            (ImageDraw.Draw(im).ellipse if cls == "circle" else ImageDraw.Draw(im).rectangle)((a, a, b, b), fill=colour)
            im.save(root / "data" / cls / f"{i}.png")
    out = root / "run"
    zoo.train("convae", dataset=f"folder:{root / 'data'}", epochs=1, latent_dim=3, out=out, log=quiet,
              progress=False, **TINY)
    return out


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("an") / "gan"
    zoo.train("gan", dataset="digits", epochs=1, out=out, log=quiet, progress=False, g_channels=4, d_channels=4,
              latent_dim=8, device="cpu")
    return out


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("an") / "clf"
    zoo.train("classifier", dataset="digits", epochs=1, out=out, log=quiet, progress=False, **TINY)
    return out


def read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        return reader.fieldnames, list(reader)


@torch.no_grad()
def codes_of(run: Path, dataset: str = "digits") -> tuple[torch.Tensor, torch.Tensor]:
    """The test codes and labels, computed here without the latent tools (zoo.analysis)."""
    net = zoo.load(run)
    data = zoo.load_dataset(dataset)
    return net.encode(data.test_x.float() / 255.0), data.test_y




# ------------------------------------------------------------------------------------------ zoo latent

def test_latent_pca_writes_png_and_csv(digits_run, tmp_path):
    out = assert_ok(invoke("latent", digits_run, "--method", "pca", "--out", tmp_path / "pca.png"))
    assert "pca" in out and "pca.csv" in out
    assert is_png(tmp_path / "pca.png")
    header, rows = read_csv(tmp_path / "pca.csv")
    assert header == ["index", "label", "class", "x", "y"]
    assert len(rows) == DIGITS_TEST  # --n 5000 asks for more than the test set has: all of it
    _, labels = codes_of(digits_run)
    assert [int(r["index"]) for r in rows] == list(range(DIGITS_TEST))
    assert [int(r["label"]) for r in rows] == labels.tolist()
    assert all(r["class"] == r["label"] for r in rows)  # digits' class names are the digits
    xy = np.array([[float(r["x"]), float(r["y"])] for r in rows])
    assert np.allclose(xy.mean(0), 0, atol=1e-4) and xy[:, 0].var() >= xy[:, 1].var()  # principal components


def test_latent_api_n_legend_and_default_output(digits_run, ae2, tmp_path):
    run = Path(shutil.copytree(digits_run, tmp_path / "run"))  # a 4-D latent: projected
    r = latent.latent_scatter(run, method="pca", n=40)
    assert r.png == run / "latent-pca.png" and is_png(r.png) and r.csv == run / "latent-pca.csv"
    r = latent.latent_scatter(ae2, method="pca", n=40)  # a 2-D latent: plotted as it is, named so
    assert r.png == ae2 / "latent.png" and is_png(r.png) and r.csv == ae2 / "latent.csv"
    assert len(read_csv(r.csv)[1]) == 40
    assert r.legend == sorted({str(int(v)) for v in r.labels}, key=int)  # class names, only those present


def test_two_dimensional_latent_is_plotted_as_it_is(ae2, tmp_path):
    z, labels = codes_of(ae2)
    for method in ("pca", "tsne"):
        out = assert_ok(invoke("latent", ae2, "--method", method, "--n", "60", "--out", tmp_path / f"{method}.png"))
        assert "plotted as they are" in out
        _, rows = read_csv(tmp_path / f"{method}.csv")
        xy = torch.tensor([[float(r["x"]), float(r["y"])] for r in rows], dtype=torch.float64)
        torch.testing.assert_close(xy, z[:60].double(), rtol=1e-5, atol=1e-6)
        assert [int(r["label"]) for r in rows] == labels[:60].tolist()


def test_latent_tsne(digits_run, tmp_path):
    r = latent.latent_scatter(digits_run, method="t-SNE", n=120, out=tmp_path / "t.png")
    assert r.method == "tsne" and r.coords.shape == (120, 2) and np.isfinite(r.coords).all()
    assert is_png(tmp_path / "t.png") and len(read_csv(tmp_path / "t.csv")[1]) == 120
    assert r.seconds > 0


def test_class_names_in_csv_and_legend(shapes_run, tmp_path):
    r = latent.latent_scatter(shapes_run, method="pca", out=tmp_path / "s.png")
    assert r.legend == ["circle", "square"]
    _, rows = read_csv(tmp_path / "s.csv")
    assert {r["class"] for r in rows} == {"circle", "square"}
    assert all(r["class"] == ["circle", "square"][int(r["label"])] for r in rows)


def test_latent_errors(digits_run, tmp_path):
    assert_clean_error(invoke("latent", digits_run, "--method", "tnse", "--out", tmp_path / "x.png"),
                       "unknown projection method 'tnse'", "tsne")
    assert_clean_error(invoke("latent", digits_run, "--out", tmp_path / "x.csv"), ".png")
    assert_clean_error(invoke("latent", tmp_path / "nowhere"), "does not exist")
    with pytest.raises(ConfigError, match="umap"):
        latent.latent_scatter(digits_run, method="umap", out=tmp_path / "x.png")


# ------------------------------------------------------------------------------------------ zoo manifold

def test_manifold_of_a_two_dimensional_latent(ae2, tmp_path):
    r = manifold.manifold(ae2, steps=6, out=tmp_path / "m.png")
    assert r.kind == "latent" and is_png(r.png)
    assert tuple(r.latents.shape) == (6, 6, 2) and tuple(r.images.shape) == (6, 6, 1, 28, 28)
    z, _ = codes_of(ae2)
    lo, hi = (torch.from_numpy(np.percentile(z.double().numpy(), q, axis=0)).float() for q in (5, 95))
    # Columns run left to right over z[0]; rows top to bottom over z[1] from its largest value.
    torch.testing.assert_close(r.latents[0, 0], torch.stack([lo[0], hi[1]]), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(r.latents[-1, -1], torch.stack([hi[0], lo[1]]), rtol=1e-5, atol=1e-6)
    assert torch.allclose(r.latents[:, 0, 0], r.latents[0, 0, 0])  # one z[0] per column
    assert torch.allclose(r.latents[0, :, 1], r.latents[0, 0, 1])  # one z[1] per row
    net = zoo.load(ae2)
    with torch.no_grad():
        torch.testing.assert_close(r.images[2, 3], net.decode(r.latents[2, 3][None])[0], rtol=1e-4, atol=1e-5)
    out = assert_ok(invoke("manifold", ae2, "--steps", "4"))
    assert "4×4" in out and is_png(ae2 / "manifold.png")


def test_manifold_of_a_vae_is_over_the_prior_quantiles(vae3, tmp_path):
    r = manifold.manifold(vae3, steps=5, out=tmp_path / "m.png")
    assert r.kind == "prior" and tuple(r.latents.shape) == (5, 5, 3) and is_png(r.png)
    expected = torch.distributions.Normal(0.0, 1.0).icdf((torch.arange(5) + 0.5) / 5)
    torch.testing.assert_close(r.xs, expected)
    (i, j), (other,) = r.dims, set(range(3)) - set(r.dims)
    torch.testing.assert_close(r.latents[0, :, i], expected)
    torch.testing.assert_close(r.latents[:, 0, j], expected.flip(0))
    assert (r.latents[..., other] == 0).all()  # the other dimension at 0


def test_manifold_of_a_larger_latent_is_over_two_principal_directions(digits_run, tmp_path):
    from sklearn.decomposition import PCA

    r = manifold.manifold(digits_run, steps=5, out=tmp_path / "m.png")
    assert r.kind == "pca" and tuple(r.latents.shape) == (5, 5, 4) and is_png(r.png)
    flat = r.latents.reshape(-1, 4).double()
    assert torch.linalg.matrix_rank(flat - flat[0], rtol=1e-4) == 2  # a plane in the 4-D latent
    z, _ = codes_of(digits_run)
    scores = PCA(n_components=2, random_state=0).fit(z.double().numpy()).transform(flat.numpy())
    grid = torch.stack(torch.meshgrid(r.ys, r.xs, indexing="ij")[::-1], -1).reshape(-1, 2)
    np.testing.assert_allclose(scores, grid.double().numpy(), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(r.xs[[0, -1]].numpy(), [scores[:, 0].min(), scores[:, 0].max()], rtol=1e-4)
    code_scores = PCA(n_components=2, random_state=0).fit(z.double().numpy()).transform(z.double().numpy())
    np.testing.assert_allclose(r.xs[[0, -1]].numpy(), np.percentile(code_scores[:, 0], [5, 95]), rtol=1e-4)
    assert r.dims is None and r.explained[0] >= r.explained[1] > 0


def test_manifold_rgb_data(shapes_run, tmp_path):
    r = manifold.manifold(shapes_run, steps=3, out=tmp_path / "m.png")
    assert tuple(r.images.shape) == (3, 3, 3, 28, 28) and is_png(r.png)


# ------------------------------------------------------------------------------------------ zoo interpolate

def test_interpolation_between_class_means(digits_run, tmp_path):
    r = interpolation.interpolate(digits_run, 3, "8", steps=7, out=tmp_path / "i.png")
    assert is_png(r.png) and tuple(r.latents.shape) == (7, 4) and tuple(r.images.shape) == (7, 1, 28, 28)
    z, labels = codes_of(digits_run)
    torch.testing.assert_close(r.latents[0], z[labels == 3].mean(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(r.latents[-1], z[labels == 8].mean(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(r.latents[3], (r.latents[0] + r.latents[-1]) / 2, rtol=1e-5, atol=1e-6)
    net = zoo.load(digits_run)
    with torch.no_grad():
        torch.testing.assert_close(r.images[[0, -1]], net.decode(r.latents[[0, -1]]), rtol=1e-4, atol=1e-5)
    out = assert_ok(invoke("interpolate", digits_run, "--from", "3", "--to", "8", "--steps", "5", "--out",
                           tmp_path / "cli.png"))
    assert "5 steps" in out and is_png(tmp_path / "cli.png")


def test_interpolation_between_test_images(digits_run, tmp_path):
    r = interpolation.interpolate(digits_run, "#5", "#200", steps=4, out=tmp_path / "i.png")
    z, _ = codes_of(digits_run)
    torch.testing.assert_close(r.latents[0], z[5], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(r.latents[-1], z[200], rtol=1e-5, atol=1e-6)
    assert r.start.kind == r.end.kind == "image" and r.start.image is not None
    mixed = interpolation.interpolate(digits_run, "#5", "7", steps=3, out=tmp_path / "m.png")
    assert mixed.end.kind == "class" and is_png(mixed.png)


def test_interpolation_between_one_code_and_itself_says_so(digits_run, tmp_path, capsys):
    interpolation.interpolate(digits_run, "#5", "#5", steps=3, out=tmp_path / "same.png")
    assert "#5 and #5 have the same code: every step decodes the same image" in capsys.readouterr().err
    interpolation.interpolate(digits_run, "#5", "#6", steps=3, out=tmp_path / "two.png")
    assert "the same code" not in capsys.readouterr().err


def test_interpolation_by_class_name(shapes_run, tmp_path):
    out = assert_ok(invoke("interpolate", shapes_run, "--from", "Circle", "--to", "square", "--steps", "4"))
    assert "circle" in out and "square" in out and is_png(shapes_run / "interpolation.png")
    r = interpolation.interpolate(shapes_run, "circle", 1, steps=3, out=tmp_path / "i.png")
    assert (r.start.index, r.end.index) == (0, 1) and tuple(r.images.shape) == (3, 3, 28, 28)


def test_interpolation_errors(digits_run, shapes_run, tmp_path):
    png = tmp_path / "x.png"
    assert_clean_error(invoke("interpolate", digits_run, "--from", "3", "--to", "12", "--out", png), "out of range")
    assert_clean_error(invoke("interpolate", shapes_run, "--from", "sqare", "--to", "circle", "--out", png),
                       "unknown class 'sqare'", "square")
    assert_clean_error(invoke("interpolate", digits_run, "--from", "#99999", "--to", "3", "--out", png),
                       "does not exist", f"#{DIGITS_TEST - 1}")
    assert_clean_error(invoke("interpolate", digits_run, "--from", "#x", "--to", "3", "--out", png), "#INDEX")
    assert_clean_error(invoke("interpolate", digits_run, "--from", "3"), "--to")


# ------------------------------------------------------------------------------------------ capabilities

def test_gan_is_refused_cleanly(gan_run, tmp_path):
    png = tmp_path / "x.png"
    assert_clean_error(invoke("latent", gan_run, "--out", png), "cannot encode")
    assert_clean_error(invoke("manifold", gan_run, "--out", png), "cannot decode")
    assert_clean_error(invoke("interpolate", gan_run, "--from", "1", "--to", "2", "--out", png), "cannot encode")
    assert_clean_error(invoke("generate", gan_run, "--sampler", "gmm", "--out", png),
                       "--sampler gmm: a latent sampler draws codes for an autoencoder's decoder",
                       f"It samples by itself: zoo generate {gan_run}", code=2)  # an option it has no use for
    assert_clean_error(invoke("eval", gan_run, "--iwae-k", "5"), "(--iwae-k) does not apply to model 'gan'", code=2)
    assert not png.exists()


def test_classifier_codes_plot_but_do_not_decode(classifier_run, tmp_path):
    r = latent.latent_scatter(classifier_run, method="pca", n=50, out=tmp_path / "c.png")  # it can encode
    assert is_png(r.png)
    with pytest.raises(CapabilityError):
        manifold.manifold(classifier_run, out=tmp_path / "m.png")
    assert_clean_error(invoke("interpolate", classifier_run, "--from", "1", "--to", "2", "--out", tmp_path / "i.png"),
                       "cannot decode")
    assert_clean_error(invoke("generate", classifier_run, "--class", "1", "--out", tmp_path / "g.png"),
                       "model 'classifier' makes no images")  # not "sample it without --class", which fails too
    assert_clean_error(invoke("generate", classifier_run, "--out", tmp_path / "g.png"),  # no advice that fails
                       "model 'classifier' makes no images: it has no decoder and cannot sample",
                       "Generate with an autoencoder, a VAE or a GAN", code=1)


# ------------------------------------------------------------------------------------------ tiny data sets

def _tiny_run(root: Path, model: str, values: list[int], **config) -> Path:
    """A run trained for one epoch on a flat folder of grey images, one per value in `values`."""
    from PIL import Image

    (root / "pics").mkdir(parents=True)
    for i, v in enumerate(values):
        Image.fromarray(np.random.default_rng(v).integers(0, 256, (28, 28), dtype=np.uint8)).save(
            root / "pics" / f"{i}.png")
    zoo.train(model, dataset=f"folder:{root / 'pics'}", epochs=1, out=root / "run", log=quiet, progress=False,
              **TINY, **config)
    return root / "run"


@pytest.fixture(scope="module")
def one_image(tmp_path_factory) -> Path:
    """A ConvAE with a 4-D latent trained on a folder of one image."""
    return _tiny_run(tmp_path_factory.mktemp("one"), "convae", [0], latent_dim=4)


@pytest.fixture(scope="module")
def one_image_1d(tmp_path_factory) -> Path:
    return _tiny_run(tmp_path_factory.mktemp("one1d"), "convae", [0], latent_dim=1)


def test_manifold_on_a_one_image_data_set_is_a_clear_error(one_image, one_image_1d, tmp_path):
    for run in (one_image, one_image_1d):
        assert_clean_error(invoke("manifold", run, "--out", tmp_path / "m.png"),
                           "needs at least 2 codes, got 1 from the test images of folder:")
    assert not (tmp_path / "m.png").exists()


def test_manifold_over_the_prior_needs_no_test_images(tmp_path):
    for d in (1, 3):
        run = _tiny_run(tmp_path / f"vae{d}", "vae", [0], latent_dim=d)
        r = manifold.manifold(run, steps=3, out=tmp_path / f"m{d}.png")
        assert r.kind == "prior" and tuple(r.latents.shape) == ((3, 3, d) if d > 1 else (1, 3, 1)) and is_png(r.png)


def test_latent_on_fewer_images_than_a_projection_needs_is_a_clear_error(one_image, one_image_1d, tmp_path):
    for method, name in (("pca", "PCA"), ("tsne", "t-SNE")):
        assert_clean_error(invoke("latent", one_image, "--method", method, "--out", tmp_path / "l.png"),
                           f"{name} needs at least 3 codes, got 1 from the test images of folder:",
                           "Ask for more images (--n)")
    r = latent.latent_scatter(one_image_1d, out=tmp_path / "one.png")  # a 1-D latent: plotted as it is
    assert r.method == "as-is" and r.coords.shape == (1, 2) and is_png(r.png)


def test_latent_of_an_empty_split_is_a_clear_error(tmp_path):
    run = tmp_path / "run"
    zoo.train("convae", dataset="digits", epochs=1, val_fraction=0.0, latent_dim=2, out=run, log=quiet,
              progress=False, **TINY)
    assert_clean_error(invoke("latent", run, "--split", "val", "--out", tmp_path / "l.png"),
                       "a plot needs at least 1 code, got 0 from the val images of digits")


def test_identical_codes_are_refused_not_crashed(tmp_path):
    run = _tiny_run(tmp_path, "convae", [7, 7, 7], latent_dim=4)  # three copies of one image: one code
    # the codes a model gives, not the command line, are at fault: exit code 1, not 2
    assert_clean_error(invoke("manifold", run, "--out", tmp_path / "m.png"), "all 3 codes", "are the same", code=1)
    for method in ("pca", "tsne"):  # scikit-learn's t-SNE of identical codes used to kill the process
        assert_clean_error(invoke("latent", run, "--method", method, "--out", tmp_path / "l.png"),
                           "all 3 codes from the test images of", "no spread to show", code=1)
        with pytest.raises(RunError, match="all 5 codes from the given codes are the same"):
            latent.project(torch.ones(5, 4), method)


def test_codes_that_are_not_finite_are_refused():
    z = torch.randn(6, 4)
    z[2, 1] = float("nan")
    for method in ("pca", "tsne"):
        with pytest.raises(RunError, match="NaN or infinite"):
            latent.project(z, method)
    with pytest.raises(RunError, match="NaN or infinite"):
        latent.project(torch.full((3, 2), float("inf")))


def test_interpolation_on_a_one_image_data_set(one_image, tmp_path):
    r = interpolation.interpolate(one_image, "#0", "image", steps=3, out=tmp_path / "i.png")  # its code, its class mean
    torch.testing.assert_close(r.latents[0], r.latents[-1])  # one image: its code is its class's mean
    assert is_png(r.png)
    assert_clean_error(invoke("interpolate", one_image, "--from", "#1", "--to", "0", "--out", tmp_path / "x.png"),
                       "test image #1 does not exist: the test set has 1 images (#0..#0)")
