"""A newcomer's frictions with the latent tools and `zoo denoise` (issue 12, items 8 and 17): a 2-D latent's
scatter is named for what it plots; `zoo manifold` spans the central 90% of the test codes (not their
outliers) and sweeps a VAE's most active dimensions (or those `--dims` names); `zoo denoise --input DIR`
writes every denoised image under its own name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, assert_clean_error, assert_ok, invoke, is_png, quiet
from PIL import Image
from torch import nn

import zoo
import zoo.analysis.plots
from zoo.analysis import manifold
from zoo.runs import checkpoint as ckpt
from zoo.training.regularize import plain_state_dict


@torch.no_grad()
def codes_of(net, dataset: str = "digits") -> torch.Tensor:
    """The test codes of `net`, computed here without the latent tools (zoo.analysis)."""
    return net.encode(zoo.load_dataset(dataset).test_x.float() / 255.0).double()


@pytest.fixture(scope="module")
def ae2(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fr") / "ae2"
    zoo.train("convae", dataset="digits", epochs=1, latent_dim=2, out=out, log=quiet, progress=False, **TINY)
    return out


@pytest.fixture(scope="module")
def vae4_inactive01(tmp_path_factory) -> Path:
    """A VAE with a 4-D latent whose dimensions 0 and 1 are inactive by construction: their posterior
    means are 0 for every image (the encoder's rows for them are zeroed, and the weights saved)."""
    out = tmp_path_factory.mktemp("fr") / "vae4"
    zoo.train("vae", dataset="digits", epochs=1, latent_dim=4, out=out, log=quiet, progress=False, **TINY)
    net = zoo.load(out).model
    last = [m for m in net.encoder.modules() if isinstance(m, nn.Linear)][-1]  # outputs [mu (4), logvar (4)]
    with torch.no_grad():
        last.weight[[0, 1]] = 0.0
        last.bias[[0, 1]] = 0.0
    ckpt.save_tensors(out / ckpt.WEIGHTS, plain_state_dict(net), {"format": "pt"})
    return out


@pytest.fixture(scope="module")
def dae(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fr") / "dae"
    zoo.train("dae", dataset="digits", epochs=1, noise="gaussian:0.3", out=out, log=quiet, progress=False, **TINY)
    return out


# ------------------------------------------------------------------------------------------ zoo latent

def test_latent_of_a_2d_latent_is_named_for_the_codes_not_a_projection(ae2, monkeypatch):
    figures = []
    save = zoo.analysis.plots.save_figure

    def spy(fig, path, **kw):  # what the written picture says: its title and axis labels
        ax = fig.axes[0]
        figures.append((ax.get_title(), ax.get_xlabel(), ax.get_ylabel()))
        return save(fig, path, **kw)

    monkeypatch.setattr(zoo.analysis.plots, "save_figure", spy)
    out = assert_ok(invoke("latent", ae2, "--method", "tsne", "--n", "50"))
    assert "the t-SNE projection was skipped" in out and "already 2-D" in out
    assert is_png(ae2 / "latent.png") and (ae2 / "latent.csv").is_file()
    assert not (ae2 / "latent-tsne.png").exists() and not (ae2 / "latent-tsne.csv").exists()
    title, xlabel, ylabel = figures[-1]
    assert "latent codes (2-D, no projection needed)" in title and "t-SNE" not in title
    assert (xlabel, ylabel) == ("latent z[0]", "latent z[1]")


def test_latent_of_a_larger_latent_keeps_the_method_in_its_name(digits_run, tmp_path):
    out = assert_ok(invoke("latent", digits_run, "--method", "pca", "--n", "50", "--out", tmp_path / "x.png"))
    assert "skipped" not in out and "pca" in out


# ------------------------------------------------------------------------------------------ zoo manifold

def test_manifold_of_a_vae_sweeps_its_most_active_dimensions(vae4_inactive01, tmp_path):
    net = zoo.load(vae4_inactive01)
    act = codes_of(net).var(0)  # Burda et al.'s activity: the variance of the posterior means
    assert act[0] == act[1] == 0 and (act[2:] > 0).all()
    expected = tuple(int(i) for i in torch.argsort(act, descending=True)[:2])
    assert set(expected) == {2, 3}

    out = assert_ok(invoke("manifold", vae4_inactive01, "--steps", "5", "--out", tmp_path / "m.png"))
    assert f"the prior's quantiles of z[{expected[0]}] and z[{expected[1]}]" in out
    assert "the two most active of 4" in out
    for i in expected:  # each chosen dimension with its activity
        assert f"z[{i}] {float(act[i]):.3g}" in out
    assert is_png(tmp_path / "m.png")

    r = manifold.manifold(vae4_inactive01, steps=5, out=tmp_path / "m2.png")
    assert r.dims == expected and r.chosen_by == "activity" and r.n_codes == 359
    torch.testing.assert_close(r.activity, act, rtol=1e-4, atol=1e-9)
    q = torch.distributions.Normal(0.0, 1.0).icdf((torch.arange(5) + 0.5) / 5)
    torch.testing.assert_close(r.latents[0, :, expected[0]], q)          # the most active along x
    torch.testing.assert_close(r.latents[:, 0, expected[1]], q.flip(0))  # the next along y
    assert (r.latents[..., [0, 1]] == 0).all()  # the inactive ones at the prior's mean


def test_manifold_dims_option_picks_the_swept_dimensions(vae4_inactive01, digits_run, tmp_path):
    out = assert_ok(invoke("manifold", vae4_inactive01, "--steps", "4", "--dims", "3, 0", "--out", tmp_path / "m.png"))
    assert "z[3] and z[0]" in out and "chosen with --dims" in out and "z[0] 0 (inactive)" in out
    r = manifold.manifold(vae4_inactive01, steps=4, dims="3,0", out=tmp_path / "m.png")
    assert r.dims == (3, 0) and r.chosen_by == "--dims"
    assert (r.latents[..., [1, 2]] == 0).all()
    assert len(set(r.latents[0, :, 3].tolist())) == 4 and len(set(r.latents[:, 0, 0].tolist())) == 4

    # An autoencoder with a 4-D latent: the named dimensions over the central 90% of their test codes,
    # the others at the codes' mean (instead of the principal directions).
    r = manifold.manifold(digits_run, steps=4, dims=(1, 2), out=tmp_path / "ae.png")
    z = codes_of(zoo.load(digits_run))
    assert r.kind == "latent" and r.dims == (1, 2)
    np.testing.assert_allclose(r.xs[[0, -1]].numpy(), np.percentile(z[:, 1].numpy(), [5, 95]), rtol=1e-4)
    np.testing.assert_allclose(r.ys[[-1, 0]].numpy(), np.percentile(z[:, 2].numpy(), [5, 95]), rtol=1e-4)
    torch.testing.assert_close(r.latents[..., [0, 3]], z.mean(0)[[0, 3]].float().expand(4, 4, 2))


@pytest.mark.parametrize("dims, message", [
    ("0,9", "dimension 9 does not exist in the 4-D latent"),
    ("-1,2", "dimension -1 does not exist in the 4-D latent"),
    ("2,2", "names dimension 2 twice"),
    ("a,1", "'a' is not a whole number"),
    ("1.5,2", "'1.5' is not a whole number"),
    ("1", "names 1 dimension; the grid has 2 axes"),
    ("0,1,2", "names 3 dimensions; the grid has 2 axes"),
])
def test_manifold_dims_option_is_validated(vae4_inactive01, tmp_path, dims, message):
    png = tmp_path / "m.png"
    assert_clean_error(invoke("manifold", vae4_inactive01, "--dims", dims, "--out", png), f"--dims '{dims}'", message,
                       "Give two different dimensions of the 4-D latent (0..3), e.g. --dims 0,1", code=2)
    assert not png.exists()


def test_manifold_of_a_vae_without_its_data_needs_dims(tmp_path):
    pics = tmp_path / "pics"
    pics.mkdir()
    for i in range(5):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (28, 28), dtype=np.uint8)).save(pics / f"{i}.png")
    run = tmp_path / "run"
    zoo.train("vae", dataset=f"folder:{pics}", epochs=1, latent_dim=3, out=run, log=quiet, progress=False, **TINY)
    for p in pics.iterdir():
        p.unlink()
    pics.rmdir()  # the data is gone: the activity cannot be measured, the grid over the prior still drawn
    assert_clean_error(invoke("manifold", run, "--steps", "3", "--out", tmp_path / "m.png"),
                       "image folder not found", "--dims I,J")
    out = assert_ok(invoke("manifold", run, "--steps", "3", "--dims", "2,0", "--out", tmp_path / "m.png"))
    assert "the prior's quantiles of z[2] and z[0]" in out and "chosen with --dims" in out
    assert is_png(tmp_path / "m.png")


def test_manifold_span_excludes_an_outlier(tinyplug_installed, tmp_path):
    """A linear encoder whose codes are 100 × (mean brightness − 0.5) of the whole image and of its top
    half: noise images code near 0, one white test image codes at (50, 50), far outside the others."""
    root = tmp_path / "pics"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(200):
        pixels = rng.integers(0, 256, (28, 28), dtype=np.uint8)
        pixels[0, 0] = i  # the image's id
        Image.fromarray(pixels).save(root / f"{i:03d}.png")
    test_ids = sorted(zoo.load_dataset(f"folder:{root}").test_x[:, 0, 0, 0].tolist())  # the held-out files
    assert len(test_ids) == 40
    white = test_ids[0]  # made white; the split depends on the file names only, so it stays a test image
    Image.fromarray(np.full((28, 28), 255, dtype=np.uint8)).save(root / f"{white:03d}.png")
    run = tmp_path / "run"
    zoo.train("tinyae", dataset=f"folder:{root}", epochs=1, latent_dim=2, out=run, log=quiet, progress=False,
              device="cpu")
    loaded = zoo.load(run)
    net = loaded.model
    with torch.no_grad():
        net.enc.weight.zero_()
        net.enc.weight[0] = 100.0 / 784
        net.enc.weight[1, :392] = 100.0 / 392  # the top 14 rows, flattened row by row
        net.enc.bias.fill_(-50.0)
    z = codes_of(net, f"folder:{root}")
    assert z.shape == (40, 2) and torch.allclose(z.max(0).values, torch.tensor([50.0, 50.0], dtype=torch.float64))
    rest = z[z[:, 0] < 40]
    assert len(rest) == 39 and rest.abs().max() < 10  # every other code lies near 0

    r = manifold.manifold(loaded, steps=7, out=tmp_path / "m.png")  # the run, with the weights set above
    assert r.kind == "latent" and r.dims == (0, 1) and is_png(r.png)
    np.testing.assert_allclose(r.xs[[0, -1]].numpy(), np.percentile(z[:, 0].numpy(), [5, 95]), rtol=1e-4)
    np.testing.assert_allclose(r.ys[[-1, 0]].numpy(), np.percentile(z[:, 1].numpy(), [5, 95]), rtol=1e-4)
    for axis, values in enumerate((r.xs, r.ys)):  # the grid stays among the ordinary codes
        assert values.max() <= rest[:, axis].max() + 1e-4 and values.min() >= rest[:, axis].min() - 1e-4
    assert r.xs.max() < 10 < 50  # min..max would have run to the outlier at 50


# ------------------------------------------------------------------------------------------ zoo denoise

def _pictures(folder: Path) -> dict[str, bytes]:
    folder.mkdir(parents=True)
    Image.new("RGB", (40, 30), (200, 10, 10)).save(folder / "a.png")
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (28, 28), dtype=np.uint8)).save(folder / "b.jpg")
    (folder / "sub").mkdir()
    Image.new("L", (50, 50), 90).save(folder / "sub" / "c.bmp")
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_denoise_writes_each_denoised_image_under_its_name(dae, tmp_path):
    mine = tmp_path / "mine"
    before = _pictures(mine)
    out = assert_ok(invoke("denoise", dae, "--input", mine, "--n", "2", "--out", tmp_path / "grid.png"))
    folder = tmp_path / "grid_files"
    assert "wrote 3 denoised images (28×28, the model's size)" in out and f"to {folder}/" in out
    assert is_png(tmp_path / "grid.png")
    written = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert written == ["a.png", "b.png", "sub/c.png"]

    net = zoo.load(dae)
    x, files = zoo.api.load_images(mine, net.shape, net.device)
    with torch.no_grad():
        expected = (net.reconstruct(x).clamp(0, 1) * 255).round().to(torch.uint8)[:, 0].numpy()
    for name, source, want in zip(("a.png", "b.png", "sub/c.png"), files, expected):
        assert source.relative_to(mine).with_suffix(".png") == Path(name)
        assert is_png(folder / name)
        with Image.open(folder / name) as im:
            assert im.size == (28, 28) and im.mode == "L"  # the model's size and channels
            assert np.abs(np.asarray(im, dtype=np.int16) - want).max() <= 1
    assert {str(p.relative_to(mine)): p.read_bytes() for p in mine.rglob("*") if p.is_file()} == before


def test_denoise_files_go_beside_the_default_picture_named_after_the_input(dae, tmp_path):
    (tmp_path / "pics").mkdir()
    Image.new("L", (28, 28), 30).save(tmp_path / "pics" / "one.png")
    out = assert_ok(invoke("denoise", dae, "--input", tmp_path / "pics" / "one.png", "--noise", "gaussian:0.5"))
    assert f"to {dae / 'denoised-one_files'}/" in out and "wrote 1 denoised image " in out
    assert is_png(dae / "denoised-one.png") and is_png(dae / "denoised-one_files" / "one.png")
    out = assert_ok(invoke("denoise", dae, "--input", tmp_path / "pics"))
    assert is_png(dae / "denoised-pics.png") and is_png(dae / "denoised-pics_files" / "one.png")
    picture = (dae / "denoised-pics.png").read_bytes()
    assert_ok(invoke("denoise", dae, "--n", "4"))  # the test set's picture leaves the user's images' alone
    assert is_png(dae / "denoised.png") and (dae / "denoised-pics.png").read_bytes() == picture


def test_denoise_picture_named_like_the_input_folder_keeps_its_files_apart(dae, tmp_path):
    mine = tmp_path / "mine"
    before = _pictures(mine)
    out = assert_ok(invoke("denoise", dae, "--input", mine, "--out", tmp_path / "mine.png"))
    assert f"to {tmp_path / 'mine_files'}/" in out and is_png(tmp_path / "mine.png")
    assert is_png(tmp_path / "mine_files" / "a.png") and is_png(tmp_path / "mine_files" / "sub" / "c.png")
    assert {str(p.relative_to(mine)): p.read_bytes() for p in mine.rglob("*") if p.is_file()} == before


def test_denoise_never_writes_into_the_input_folder(dae, tmp_path):
    mine = tmp_path / "mine"
    before = _pictures(mine)
    other = tmp_path / "other_files"
    other.mkdir()
    Image.new("L", (28, 28), 0).save(other / "x.png")
    assert_clean_error(invoke("denoise", dae, "--input", other, "--out", tmp_path / "other.png"),
                       f"would be written into {other}, the input folder", "--out")
    assert_clean_error(invoke("denoise", dae, "--input", mine, "--out", mine / "grid.png"),
                       "inside the input folder")
    assert_clean_error(invoke("denoise", dae, "--input", other / "x.png", "--out", tmp_path / "other.png"),
                       f"would be written into {other}, the input folder")  # one file: its folder
    assert not (tmp_path / "other.png").exists() and not (mine / "grid.png").exists()
    assert [p.name for p in other.iterdir()] == ["x.png"]
    assert {str(p.relative_to(mine)): p.read_bytes() for p in mine.rglob("*") if p.is_file()} == before


def test_denoise_refuses_two_inputs_of_one_name_and_a_picture_not_named_png(dae, tmp_path):
    mine = tmp_path / "mine"
    _pictures(mine)
    Image.new("L", (28, 28), 0).save(mine / "a.jpg")
    assert_clean_error(invoke("denoise", dae, "--input", mine, "--out", tmp_path / "g.png"),
                       "would both be written as", "a.png", "Rename one")
    assert_clean_error(invoke("denoise", dae, "--input", mine / "b.jpg", "--out", tmp_path / "g.jpg"),
                       "give a name ending in .png")
    assert not (tmp_path / "g_files").exists() and not (tmp_path / "g.png").exists()
