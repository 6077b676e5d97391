"""Latent samplers for autoencoders: fitted on the training codes, saved in the run as safetensors,
reused, reproducible; `zoo generate --sampler` and `--class`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from conftest import assert_clean_error, assert_ok, invoke, is_png, weights
from safetensors.torch import load_file, save_file

import zoo
from zoo.analysis.latent_samplers import LatentSampler, get_sampler, latent_samples, sampler_path, samplers
from zoo.errors import ConfigError, PluginError, RunError


@pytest.fixture(scope="module")
def run(digits_run, tmp_path_factory) -> Path:
    """A private copy of the shared tiny ConvAE run (latent 4): samplers are written into it."""
    return Path(shutil.copytree(digits_run, tmp_path_factory.mktemp("samplers") / "run"))


def images(run: Path, tmp_path: Path, name: str, *args: str) -> torch.Tensor:
    out = tmp_path / f"{name}.safetensors"
    assert_ok(invoke("generate", run, "--out", out, *args))
    return weights(out)["images"]


@torch.no_grad()
def train_codes(run: Path) -> torch.Tensor:
    net = zoo.load(run)
    return net.encode(zoo.load_dataset("digits").train_x.float() / 255.0)


# ------------------------------------------------------------------------------------------ the samplers

def test_builtin_samplers_are_registered_through_the_hook():
    from zoo.registry import load_registry

    found = samplers()
    assert {"standard-normal", "gaussian", "gmm"} <= set(found)
    assert all(issubclass(cls, LatentSampler) and cls.__module__ == "zoo.plugins.samplers"
               for name, cls in found.items() if name in ("standard-normal", "gaussian", "gmm"))
    assert not [f for f in load_registry().failures if f.entry_point == "samplers"]
    with pytest.raises(ConfigError, match="Did you mean: gmm"):
        get_sampler("gmn")


def test_gaussian_fits_mean_and_full_covariance():
    gen = torch.Generator().manual_seed(0)
    cov = torch.tensor([[2.0, 1.2, 0.0], [1.2, 1.0, -0.3], [0.0, -0.3, 0.5]])
    codes = torch.randn(10000, 3, generator=gen) @ torch.linalg.cholesky(cov).T + torch.tensor([1.0, -2.0, 3.0])
    s = get_sampler("gaussian")().fit(codes)
    z = s.sample(10000, generator=torch.Generator().manual_seed(1))
    assert z.dtype == torch.float32 and z.shape == (10000, 3)
    torch.testing.assert_close(z.mean(0), torch.tensor([1.0, -2.0, 3.0]), atol=0.06, rtol=0)
    torch.testing.assert_close(torch.cov(z.T), cov, atol=0.1, rtol=0)


def test_gmm_samples_components_by_weight_and_reproducibly():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(600, 2, generator=gen) * 0.1 + torch.tensor([-5.0, 0.0])
    b = torch.randn(1400, 2, generator=gen) * 0.1 + torch.tensor([5.0, 0.0])
    cls = get_sampler("gmm")
    s = cls().fit(torch.cat([a, b]))
    z = s.sample(10000, generator=torch.Generator().manual_seed(3))
    assert abs(float((z[:, 0] > 0).float().mean()) - 0.7) < 0.03      # mixture weights
    assert float(z[:, 1].abs().max()) < 1.5                              # every component is tight
    again = s.sample(10000, generator=torch.Generator().manual_seed(3))
    assert torch.equal(z, again)
    # The state round-trips through safetensors and samples the same.
    restored = cls.from_state(s.state(), s.dim)
    seeded = lambda: torch.Generator().manual_seed(4)  # noqa: E731
    assert torch.equal(restored.sample(100, seeded()), s.sample(100, seeded()))
    # Refitting with the same seed gives the same sampler.
    assert torch.equal(cls().fit(torch.cat([a, b])).state()["means"], s.state()["means"])


# ------------------------------------------------------------------------------------------ in a run

def test_gmm_is_fitted_once_saved_and_reused(run, tmp_path):
    path = sampler_path(run, "gmm")
    assert path == run / "sampler-gmm.safetensors" and not path.exists()
    first = images(run, tmp_path, "a", "--sampler", "gmm", "--n", "12", "--seed", "1")
    assert first.shape == (12, 1, 28, 28) and 0 <= first.min() and first.max() <= 1
    assert path.is_file()
    saved = load_file(str(path))  # plain safetensors: tensors only
    assert set(saved) == {"weights", "means", "cholesky"} and saved["means"].shape[1] == 4
    stamp = path.stat().st_mtime_ns
    assert torch.equal(images(run, tmp_path, "b", "--sampler", "gmm", "--n", "12", "--seed", "1"), first)
    assert path.stat().st_mtime_ns == stamp  # reused, not refitted
    assert not torch.equal(images(run, tmp_path, "c", "--sampler", "gmm", "--n", "12", "--seed", "2"), first)
    path.unlink()  # missing: refitted, to the same sampler (fitting is seeded)
    assert torch.equal(images(run, tmp_path, "d", "--sampler", "gmm", "--n", "12", "--seed", "1"), first)
    assert path.is_file()
    out = assert_ok(invoke("generate", run, "--sampler", "gmm", "--n", "9", "--out", tmp_path / "g.png"))
    assert is_png(tmp_path / "g.png") and "fitted the gmm sampler" not in out


def test_the_saved_sampler_is_what_samples_and_stale_ones_are_refitted(run):
    net = zoo.load(run)
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    real = latent_samples(net, sampler="gaussian", n=500, generator=gen())
    path = sampler_path(run, "gaussian")
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        meta = fh.metadata()
    meta.pop("zoo_sha256")  # files written by other tools carry no checksum of zoo's
    save_file({"mean": torch.full((4,), 50.0, dtype=torch.float64), "cholesky": torch.eye(4, dtype=torch.float64)},
              str(path), metadata=meta)
    moved = latent_samples(net, sampler="gaussian", n=500, generator=gen())
    assert abs(float(moved.mean()) - 50) < 0.5  # read from the file
    save_file({"mean": torch.full((4,), 50.0, dtype=torch.float64), "cholesky": torch.eye(4, dtype=torch.float64)},
              str(path), metadata={**meta, "weights_sha256": "0" * 64})
    torch.testing.assert_close(latent_samples(net, sampler="gaussian", n=500, generator=gen()), real)  # refitted
    path.write_bytes(b"not a safetensors file")
    torch.testing.assert_close(latent_samples(net, sampler="gaussian", n=500, generator=gen()), real)  # refitted
    # The fitted Gaussian has the training codes' mean.
    codes = train_codes(run)
    big = latent_samples(net, sampler="gaussian", n=20000, generator=gen())
    torch.testing.assert_close(big.mean(0), codes.mean(0), atol=4 * float(codes.std(0).max()) / 141 + 1e-4, rtol=0)


def test_gaussian_gmm_and_standard_normal_all_generate(run, tmp_path):
    for name in ("gaussian", "gmm", "standard-normal"):
        x = images(run, tmp_path, name, "--sampler", name, "--n", "8", "--seed", "5")
        assert x.shape == (8, 1, 28, 28) and torch.isfinite(x).all()
        assert torch.equal(x, images(run, tmp_path, name + "2", "--sampler", name, "--n", "8", "--seed", "5"))
    assert not sampler_path(run, "standard-normal").exists()  # nothing to fit, nothing saved
    net = zoo.load(run)
    z = latent_samples(net, sampler="standard-normal", n=4000, generator=torch.Generator().manual_seed(0))
    assert z.shape == (4000, 4) and abs(float(z.mean())) < 0.05 and abs(float(z.std()) - 1) < 0.05


def test_unknown_sampler_is_a_clean_error(run):
    assert_clean_error(invoke("generate", run, "--sampler", "gmn", "--n", "4"), "unknown sampler 'gmn'", "gmm")


# ------------------------------------------------------------------------------------------ --class

def test_generate_from_a_class_mean(run, tmp_path):
    net = zoo.load(run)
    data = zoo.load_dataset("digits")
    with torch.no_grad():
        z = net.encode(data.test_x.float() / 255.0)
        mean = z[data.test_y == 7].mean(0)
        expected = net.decode(mean[None])[0]
    said = assert_ok(invoke("generate", run, "--out", tmp_path / "seven.safetensors", "--class", "7", "--n", "4"))
    assert "every image is the decoded mean code of class 7: 4 times the same image; --spread 0.5" in said
    x = weights(tmp_path / "seven.safetensors")["images"]
    assert all(torch.allclose(x[i], expected, atol=1e-5) for i in range(4))  # no noise: the decoded class mean
    noisy = images(run, tmp_path, "noisy", "--class", "7", "--n", "4", "--spread", "0.5", "--seed", "1")
    assert "the same image" not in assert_ok(invoke("generate", run, "--class", "7", "--n", "4", "--spread", "0.5",
                                                    "--out", tmp_path / "noisy3.safetensors"))
    assert not torch.allclose(noisy[0], noisy[1])
    assert torch.equal(noisy, images(run, tmp_path, "noisy2", "--class", "7", "--n", "4", "--spread", "0.5",
                                     "--seed", "1"))
    # The spread is the class's own per-dimension std, scaled.
    codes = latent_samples(net, class_label="7", spread=0.5, n=20000, generator=torch.Generator().manual_seed(0))
    std = z[data.test_y == 7].std(0)
    torch.testing.assert_close(codes.std(0), 0.5 * std, rtol=0.05, atol=1e-6)
    torch.testing.assert_close(codes.mean(0), mean, atol=float(std.max()) * 0.05, rtol=0)


def test_class_errors(run):
    assert_clean_error(invoke("generate", run, "--class", "11", "--n", "2"), "class 11 is out of range")
    assert_clean_error(invoke("generate", run, "--class", "9" * 23, "--n", "2"),
                       "class 99999999...9999 is out of range")  # it said 'class 10'
    assert_clean_error(invoke("generate", run, "--class", "seven", "--n", "2"), "unknown class 'seven'")
    assert_clean_error(invoke("generate", run, "--class", "7", "--sampler", "gmm"), "not both")
    assert_clean_error(invoke("generate", run, "--sampler", "gmm", "--spread", "0.3"), "--class")
    assert_clean_error(invoke("generate", run, "--class", "7", "--spread", "-1"), "0 or more")
    assert_clean_error(invoke("generate", run, "--class", "7", "--noise-scale", "0.5"),
                       "--noise-scale is now --spread", "--spread 0.5")  # zoo 0.1's name


def test_a_damaged_sampler_file_is_fitted_again_and_the_user_is_told(run, tmp_path):
    images(run, tmp_path, "a", "--sampler", "gmm", "--n", "4")
    path = sampler_path(run, "gmm")
    path.write_bytes(path.read_bytes()[:-40])  # cut short
    out = assert_ok(invoke("generate", run, "--sampler", "gmm", "--n", "4", "--out", tmp_path / "b.png"))
    assert f"note: {path} is truncated or corrupt" in out and "the gmm sampler is fitted again" in out
    assert out.count("is truncated or corrupt") == 1  # the run's own folder is where its outputs go: read once
    assert "fitted the gmm sampler" in out and load_file(str(path))["means"].shape[1] == 4


def test_a_sampler_file_of_another_kind_is_said_before_it_is_fitted_again_in_its_place(run, tmp_path):
    images(run, tmp_path, "a", "--sampler", "gaussian", "--n", "4")
    path = sampler_path(run, "gmm")
    path.write_bytes(sampler_path(run, "gaussian").read_bytes())  # a gaussian one under the gmm's name
    out = assert_ok(invoke("generate", run, "--sampler", "gmm", "--n", "4", "--out", tmp_path / "b.png"))
    assert f"note: {path} holds a 'gaussian' sampler, not a 'gmm' one; the gmm sampler is fitted again" in out
    assert "fitted the gmm sampler" in out and "means" in load_file(str(path))


def test_a_gmm_fitted_on_too_few_codes_for_its_components_says_so():
    few = get_sampler("gmm")().fit(torch.randn(7, 2, generator=torch.Generator().manual_seed(0)))
    assert few.weights.shape == (3,)
    assert few.fit_warning().startswith("the gmm sampler has 3 components, not 10")
    assert get_sampler("gmm")().fit(torch.randn(40, 2)).fit_warning() == ""


@pytest.mark.parametrize("name", ["gaussian", "gmm", "maf", "two-stage"])
def test_a_sampler_fitted_on_nan_codes_says_the_codes_are_wrong_not_that_the_sampler_has_a_bug(name):
    codes = torch.randn(40, 3, generator=torch.Generator().manual_seed(0))
    codes[5, 1] = float("nan")
    with pytest.raises(RunError, match="NaN or infinite") as caught:
        get_sampler(name)().fit(codes)
    assert not isinstance(caught.value, PluginError)


def test_each_way_of_drawing_keeps_its_own_grid_and_a_push_publishes_them_with_the_run(vae_copy, tmp_path):
    said = {}
    for args, name in ((["--n", "4"], "samples.png"), (["--sampler", "gmm", "--n", "4"], "samples-gmm.png"),
                       (["--sampler", "gaussian", "--n", "4"], "samples-gaussian.png"),
                       (["--class", "7", "--n", "4"], "samples-class-7.png")):
        said[name] = assert_ok(invoke("generate", vae_copy, *args))
        assert f"wrote {vae_copy / name}" in said[name]
    grids = {name: (vae_copy / name).read_bytes() for name in said}
    assert all(is_png(vae_copy / name) for name in grids) and len(set(grids.values())) == 4  # none replaced
    entry = tmp_path / "hub" / "vae"
    assert_ok(invoke("push", vae_copy, f"file://{entry}"))
    assert {name: (entry / name).read_bytes() for name in grids} == grids
    assert "![samples-gmm.png](samples-gmm.png)" in (entry / "README.md").read_text()
    pulled = Path(assert_ok(invoke("pull", f"file://{entry}")).strip().splitlines()[-1])
    assert {name: (pulled / name).read_bytes() for name in grids} == grids


def test_a_class_given_as_a_one_number_tensor_is_that_class():
    """torch.tensor(3) was 'unknown class 'tensor(3)'', beside a list of classes holding 3."""
    import torch

    from zoo.analysis.latent_samplers import resolve_class

    assert resolve_class(torch.tensor(3), [str(i) for i in range(10)]) == 3


def test_a_sampler_fitted_on_another_folders_codes_is_not_kept_for_the_run(tmp_path):
    """--data-dir of a wrong folder (5 images) fitted the sampler on its codes and saved it into the run: every
    later call, on the right folder, used that 5-code sampler without a word."""
    from PIL import Image

    from conftest import TINY, quiet

    def folder(name: str, n: int) -> Path:
        (tmp_path / name / "pics").mkdir(parents=True)
        for i in range(n):
            Image.new("L", (28, 28), (37 * i) % 256).save(tmp_path / name / "pics" / f"{i}.png")
        return tmp_path / name / "pics"

    right, wrong = folder("right", 60), folder("wrong", 6)
    zoo.train("convae", dataset=f"folder:{right}", epochs=1, out=tmp_path / "run", log=quiet, progress=False, **TINY)
    drawn = ("generate", tmp_path / "run", "--sampler", "gaussian", "--n", "4")
    out = assert_ok(invoke(*drawn, "--out", tmp_path / "a.png", "--data-dir", wrong))
    assert "not saved: fitted on other images than the run's" in out
    assert not sampler_path(tmp_path / "run", "gaussian").exists()
    out = assert_ok(invoke(*drawn, "--out", tmp_path / "b.png"))
    assert "(not saved" not in out and sampler_path(tmp_path / "run", "gaussian").is_file()  # the run's own codes
