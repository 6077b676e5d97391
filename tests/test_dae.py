"""The denoising autoencoder plugin and the denoise / noise-sweep commands."""

import json
from pathlib import Path

import pytest
import torch
from conftest import TINY, assert_clean_error, assert_ok, invoke, is_png, quiet

import zoo
from zoo.data.noise import parse_noise


@pytest.fixture(scope="module")
def dae_and_baseline(tmp_path_factory):
    root = tmp_path_factory.mktemp("dae")
    dae = zoo.train("dae", dataset="digits", epochs=2, noise="gaussian:0.3", lr=3e-3, out=root / "dae",
                    log=quiet, progress=False, **TINY).run_dir
    ae = zoo.train("convae", dataset="digits", epochs=2, lr=3e-3, out=root / "ae", log=quiet, progress=False,
                   **TINY).run_dir
    return dae, ae


def test_dae_is_listed_with_its_noise_key():
    info = zoo.model_info("dae")
    assert "noise" in {p["name"] for p in info["params"]}
    assert "reconstruct" in info["capabilities"]


def test_unknown_noise_is_refused_before_training(tmp_path):
    result = invoke("train", "dae", "--dataset", "digits", "--set", "noise=gausian:0.3", "--out", tmp_path / "r")
    assert_clean_error(result, "unknown noise", "gaussian")
    assert not (tmp_path / "r" / "config.json").exists()


# A DAE small enough to train in two seconds that still uses its input (the TINY one learns the mean image).
LEARNING = {"channels": [8, 16, 16], "hidden": [64], "latent_dim": 16, "activation": "elu", "lr": 3e-3,
            "batch_size": 32, "epochs": 3, "device": "cpu"}


def _mse(net, noisy, clean):
    """Per-image MSE between the model's output for `noisy` and the `clean` images,
    as zoo.analysis.metrics clamps it."""
    return (net.reconstruct(noisy).clamp(0, 1) - clean).pow(2).mean((1, 2, 3))


def test_eval_reports_denoising_and_clean_mse(tmp_path):
    """`mse` and `psnr` are measured on test images corrupted by the training noise, `clean_mse` on the clean
    images: each agrees with the same measurement done by hand, and the corrupted input costs more."""
    dae = zoo.train("dae", dataset="digits", noise="occlusion:10:1", out=tmp_path / "dae", log=quiet,
                    progress=False, **LEARNING).run_dir
    m = zoo.evaluate(dae, save=False)["metrics"]
    assert set(m) == {"mse", "bce", "psnr", "clean_mse"}
    net = zoo.load(dae)
    x = zoo.load_dataset("digits").test_x.float() / 255
    occlude = parse_noise("occlusion:10:1")
    with torch.no_grad():
        clean = _mse(net, x, x)
        noisy = torch.stack([_mse(net, occlude(x, torch.Generator().manual_seed(s)), x) for s in range(8)])
    assert m["clean_mse"] == pytest.approx(clean.mean().item(), rel=1e-5)
    # eval draws its own occlusions: the same figure within the spread of a fresh draw (about 0.3 %)
    assert m["mse"] == pytest.approx(noisy.mean().item(), rel=0.012)
    assert m["psnr"] == pytest.approx((-10 * noisy.log10()).mean().item(), rel=0.012)
    assert noisy.mean() > 1.015 * clean.mean() and m["mse"] > 1.01 * m["clean_mse"]


def test_noise_sweep_compares_with_the_baseline_on_the_same_noisy_images(dae_and_baseline):
    dae, ae = dae_and_baseline
    out = assert_ok(invoke("eval", dae, "--noise-sweep", "--baseline", ae))
    assert "gaussian:1.5" in out and "salt-pepper" in out and "occlusion" in out
    sweep = zoo.api.noise_sweep(dae, baseline=ae, save=False)
    rows = sweep["rows"]
    assert [r["factor"] for r in rows[:5]] == [1, 2, 3, 4, 5]
    noisy = [r["noisy_mse"] for r in rows[:5]]
    assert noisy == sorted(noisy)  # stronger noise, further from the clean image
    again = zoo.api.noise_sweep(dae, baseline=ae, save=False)
    assert again["rows"] == rows  # the same noisy images every time (seeded)
    assert is_png(Path(dae) / "noise_sweep.png")


def test_noise_sweep_says_what_the_model_was_trained_with_and_what_was_swept(dae_and_baseline):
    dae, ae = dae_and_baseline  # a DAE trained with gaussian noise; a plain autoencoder trained on clean images
    assert "(trained with gaussian:0.3)" in assert_ok(invoke("eval", dae, "--noise-sweep"))
    out = assert_ok(invoke("eval", ae, "--noise-sweep", "--noise", "gaussian:0.2"))
    assert "(trained with no noise; sweeping gaussian:0.2)" in out
    sweep = zoo.api.noise_sweep(ae, noise="gaussian:0.2", save=False)
    assert sweep["trained_noise"] is None and sweep["noise"] == "gaussian:0.2"


def test_denoise_grid_and_own_images(dae_and_baseline, tmp_path):
    dae, _ = dae_and_baseline
    assert_ok(invoke("denoise", dae, "--noise", "gaussian:0.6", "--n", "8", "--out", tmp_path / "grid.png"))
    assert is_png(tmp_path / "grid.png")
    from PIL import Image

    mine = tmp_path / "mine"
    mine.mkdir()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(mine / "a.png")
    Image.new("L", (28, 28), 128).save(mine / "b.jpg")
    assert_ok(invoke("denoise", dae, "--input", mine, "--out", tmp_path / "mine.png"))
    assert is_png(tmp_path / "mine.png")
    assert_clean_error(invoke("denoise", dae, "--input", tmp_path / "nothing-here"), "no images")


def test_sweep_of_a_plain_autoencoder_needs_a_noise(dae_and_baseline):
    _, ae = dae_and_baseline
    assert_clean_error(invoke("eval", ae, "--noise-sweep"), "--noise")
    assert_ok(invoke("eval", ae, "--noise-sweep", "--noise", "salt-pepper:0.1"))


def test_eval_of_a_denoiser_is_reproducible(dae_and_baseline):
    dae, _ = dae_and_baseline  # its metrics corrupt the test images at random: the same draws every time
    first = zoo.evaluate(dae, save=False)["metrics"]
    torch.manual_seed(123)  # whatever the caller's random state
    assert zoo.evaluate(dae, save=False)["metrics"] == first


def test_a_sweep_stops_where_the_noise_reaches_its_limit_and_says_so(dae_and_baseline):
    """A gaussian:3 sweep failed on its 4x level ('sigma must be in 0..10, got 12', a value the user never gave);
    a salt-pepper:0.5 one plotted salt-pepper:1 four times as four stronger noises."""
    _, ae = dae_and_baseline
    out = assert_ok(invoke("eval", ae, "--noise-sweep", "--noise", "gaussian:3"))
    assert "gaussian:3 × 4 is past the noise's range" in out and "the sweep stops at × 3" in out
    sweep = zoo.api.noise_sweep(ae, noise="salt-pepper:0.5", save=False)
    assert [(r["noise"], r["factor"]) for r in sweep["rows"][:3]] == [("salt-pepper:0.5", 1), ("salt-pepper:1", 2),
                                                                       ("gaussian:0.3", None)]
    assert sweep["notes"] == ["salt-pepper:0.5 × 3 is salt-pepper:1, as × 2 is (the noise grows no further): the "
                              "sweep stops at × 2"]
    assert_clean_error(invoke("eval", ae, "--noise-sweep", "--noise", "none"), "names no noise", "zoo reconstruct")


def test_a_sweep_stops_where_an_occlusion_patch_covers_the_whole_image(dae_and_baseline):
    """On 28x28 images occlusion:10:1 × 3 already blacks out the image: × 4 and × 5 (40- and 50-pixel patches)
    were plotted as stronger noises that corrupted exactly alike."""
    _, ae = dae_and_baseline
    sweep = zoo.api.noise_sweep(ae, noise="occlusion:10:1", save=False)
    swept = [r for r in sweep["rows"] if r["factor"] is not None]
    assert [r["noise"] for r in swept] == ["occlusion:10:1", "occlusion:20:1", "occlusion:30:1"]
    assert swept[-1]["noisy_mse"] > swept[0]["noisy_mse"]
    assert sweep["notes"] == ["occlusion:10:1 × 4 is occlusion:28:1 on 28×28 images, as × 3 is (the noise grows no "
                              "further): the sweep stops at × 3"]


def test_a_sweep_level_draws_the_same_noise_whatever_the_other_factors(dae_and_baseline):
    """A level's seed was its place in the list: factors=(2,) drew other noise than the default sweep's × 2."""
    dae, ae = dae_and_baseline
    whole = {r["noise"]: r for r in zoo.api.noise_sweep(dae, baseline=ae, save=False)["rows"]}
    alone = zoo.api.noise_sweep(dae, baseline=ae, factors=(2,), save=False)["rows"][0]
    assert alone["noise"] == "gaussian:0.6" and alone == whole["gaussian:0.6"]


@pytest.mark.parametrize("given", [["a.png"], torch.rand(2, 1, 28, 28), 123, b"imgs", ""])
def test_denoise_refuses_an_input_that_is_no_path(dae_and_baseline, given, tmp_path, monkeypatch):
    """A list, a tensor, a number or bytes raised a TypeError; "" read the whole working folder."""
    dae, _ = dae_and_baseline
    monkeypatch.chdir(tmp_path)
    with pytest.raises(zoo.ZooError, match="input is an image file's or a folder's path") as e:
        zoo.denoise(dae, input=given, out=tmp_path / "x.png")
    assert "run.reconstruct(x)" in e.value.hint and not (tmp_path / "x.png").exists()


def test_denoisers_of_other_noises_and_a_plain_autoencoder_are_not_ranked_by_one_test_mse(dae_and_baseline,
                                                                                           tmp_path):
    """A DAE's test mse is the error of undoing its own noise: zoo compare paired σ 0.1 against σ 0.6 'image by
    image over the same test images', and set it beside a ConvAE's clean reconstruction error unremarked."""
    dae, ae = dae_and_baseline
    other = zoo.train("dae", dataset="digits", epochs=1, noise="gaussian:0.6", out=tmp_path / "dae6", log=quiet,
                      progress=False, **TINY).run_dir
    for run in (dae, ae, other):
        zoo.evaluate(run)
    noises = zoo.compare([dae, other], "test_mse")
    assert noises.caveat == ("test_mse is not one measure across these runs (noise differs: another measure): "
                             "--sort test_clean_mse compares them alike")
    assert noises.reference is None
    alike = zoo.compare([dae, other], "test_clean_mse")
    assert alike.caveat is None and alike.reference is not None
    assert "(only some runs have noise: another measure)" in zoo.compare([dae, ae], "test_mse").caveat
    assert "val_clean_mse" in zoo.load(other).training_history()[-1]


def test_eval_says_a_denoisers_figures_are_of_its_own_noise(dae_and_baseline):
    """Nothing said that a DAE's mse, bce and psnr are of noisy inputs: read beside a ConvAE's, they misled."""
    dae, ae = dae_and_baseline
    out = assert_ok(invoke("eval", dae))
    said = "mse, bce and psnr are of denoising the images corrupted with gaussian:0.3"
    assert said in out and "clean_mse of reconstructing the clean images" in out
    assert said in zoo.evaluate(dae, save=False)["metrics_note"]
    assert f"Note: {said}" in (Path(dae) / "README.md").read_text()
    assert "metrics_note" not in zoo.evaluate(ae, save=False)  # a plain autoencoder's figures say what they are


def test_a_noise_is_recorded_as_zoo_writes_it_whatever_its_spelling(tmp_path):
    """GAUSSIAN:0.3, "gaussian:" (the default level) and gaussian:0.3 were kept as typed: zoo compare showed one
    noise as three values. A bare level was 'unknown noise' without saying a kind is missing."""
    for name, spelling in (("upper", "GAUSSIAN:0.3"), ("bare", "gaussian:")):
        zoo.train("dae", dataset="digits", epochs=1, noise=spelling, out=tmp_path / name, log=quiet, progress=False,
                  **TINY)
        assert json.loads((tmp_path / name / "config.json").read_text())["config"]["noise"] == "gaussian:0.3"
    assert "noise" not in zoo.compare([tmp_path / "upper", tmp_path / "bare"]).differing
    assert_clean_error(invoke("train", "dae", "--dataset", "digits", "--set", "noise=0.3", "--out", tmp_path / "n"),
                       "a noise is KIND:LEVEL", "For example gaussian:0.3")
