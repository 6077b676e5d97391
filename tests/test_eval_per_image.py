"""`zoo eval` reports each metric's standard error over the images and, with --per-image FILE.csv, every
image's metrics (a likelihood model's −log p(x), an autoencoder's reconstruction error: outlier scores);
options of another kind of evaluation are refused instead of silently ignored."""

import csv
import json
import math
from pathlib import Path

import pytest

import zoo
from conftest import TINY, assert_clean_error, assert_ok, invoke


@pytest.fixture
def run(vae_copy):
    return vae_copy


def read_rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def column(rows, name):
    return [float(r[name]) for r in rows]


def test_the_per_image_csv_holds_every_test_image_whose_means_are_eval_jsons_metrics(run, tmp_path):
    scores = tmp_path / "scores.csv"
    out = assert_ok(invoke("eval", run, "--iwae-k", "5", "--per-image", scores, "--no-progress"))
    assert str(scores) in out
    saved = json.loads((run / "eval.json").read_text())
    rows = read_rows(scores)
    _, labels = zoo.load(run).data("test")
    assert len(rows) == saved["images"] == len(labels)
    assert list(rows[0])[:3] == ["index", "label", "class"]
    assert [int(r["index"]) for r in rows] == list(range(len(rows)))
    assert [int(r["label"]) for r in rows] == labels.tolist()
    assert set(list(rows[0])[3:]) == set(saved["metrics"]) and "nll_iwae_k5_nats" in saved["metrics"]
    for name, mean in saved["metrics"].items():
        assert sum(column(rows, name)) / len(rows) == pytest.approx(mean, rel=1e-9)


def test_each_metrics_standard_error_is_its_spread_over_the_images_over_root_n(run, tmp_path):
    scores = tmp_path / "scores.csv"
    out = assert_ok(invoke("eval", run, "--iwae-k", "5", "--per-image", scores, "--no-progress"))
    errors = json.loads((run / "eval.json").read_text())["standard_errors"]
    rows = read_rows(scores)
    n = len(rows)
    for name, se in errors.items():
        values = column(rows, name)
        mean = sum(values) / n
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
        assert se == pytest.approx(sd / math.sqrt(n), rel=1e-6) and se > 0
    assert f"± {errors['nll_iwae_k5_nats']:.2g}" in out and "standard error of the mean" in out


def test_per_image_with_limit_holds_the_first_n_images(run, tmp_path):
    scores = tmp_path / "first.csv"
    result = zoo.evaluate(run, limit=20, per_image=scores, save=False)
    rows = read_rows(scores)
    assert [int(r["index"]) for r in rows] == list(range(20))
    assert result["written"] == [str(scores)] and not (run / "eval.json").exists()


@pytest.mark.parametrize("name, fragment", [("scores.txt", "as CSV"), ("vae/config.json", "would replace")])
def test_a_per_image_file_zoo_cannot_write_is_refused_before_any_work(run, tmp_path, name, fragment):
    before = (run / "config.json").read_bytes()
    assert_clean_error(invoke("eval", run, "--per-image", tmp_path / name, "--no-progress"), "--per-image",
                       fragment)
    assert not (run / "eval.json").exists() and (run / "config.json").read_bytes() == before


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, where no file can be made")
def test_a_per_image_folder_where_no_file_can_be_made_is_refused_before_the_evaluation(run):
    before = sorted(p.name for p in run.iterdir())
    out = assert_clean_error(invoke("eval", run, "--iwae-k", "5", "--per-image", "/proc/scores.csv", "--no-progress"),
                             "--per-image: cannot write /proc/scores.csv", code=74)
    assert ".tmp" not in out  # named by the user's path, not by the probe's temporary file
    assert sorted(p.name for p in run.iterdir()) == before  # no eval.json, no progress


@pytest.mark.parametrize("args, flag", [
    (["--iwae-k", "5", "--fid"], "--iwae-k"),
    (["--limit", "3", "--fid"], "--limit"),
    (["--split", "val", "--fid"], "--split"),
    (["--sampler", "gmm"], "--sampler"),
    (["--features", "features-mnist"], "--features"),
    (["--fid-n", "200"], "--fid-n"),
    (["--baseline", "convae-mnist"], "--baseline"),
    (["--noise", "gaussian:0.2"], "--noise"),
    (["--per-image", "x.csv", "--noise-sweep"], "--per-image"),
    (["--iwae-k", "5", "--noise-sweep"], "--iwae-k"),
    (["--noise-sweep", "--fid"], "two evaluations"),
])
def test_an_option_of_another_evaluation_is_refused_not_ignored(run, args, flag):
    assert_clean_error(invoke("eval", run, *args, "--no-progress"), flag, code=2)
    assert not (run / "eval.json").exists()


def test_a_plugin_metric_that_is_not_per_image_is_refused_not_averaged_wrongly(run, monkeypatch):
    from zoo.plugins.vae import VAE

    monkeypatch.setattr(VAE, "metrics", lambda self, batch, **options: {"mse": batch.x.mean()})
    assert_clean_error(invoke("eval", run, "--no-progress"), "metric 'mse' that is not per image",
                       "one value per image")
    assert not (run / "eval.json").exists()


def test_figures_that_are_not_finite_numbers_are_refused_and_nothing_is_written(run, monkeypatch):
    """JSON has no NaN: eval.json once held a bare NaN that every reader then called a file zoo does not write."""
    from zoo.plugins.vae import VAE

    real = VAE.metrics

    def some_nan(self, batch, **options):
        out = real(self, batch, **options)
        out["mse"] = out["mse"].clone()
        out["mse"][0] = float("nan")
        return out

    monkeypatch.setattr(VAE, "metrics", some_nan)
    assert_clean_error(invoke("eval", run, "--no-progress"), "not finite numbers (NaN or infinite): mse (",
                       "a training that diverged")
    assert not (run / "eval.json").exists()


def test_a_bound_looser_than_the_models_own_elbo_is_warned_of_and_a_right_one_is_not(run, monkeypatch):
    out = assert_ok(invoke("eval", run, "--iwae-k", "5", "--no-progress"))
    assert "warning" not in out
    from zoo.plugins.vae import VAE

    real = VAE.metrics

    def loose(self, batch, iwae_k=None, **options):
        out = real(self, batch, iwae_k=iwae_k, **options)
        return {k: v + 50.0 if k.startswith("nll_iwae") else v for k, v in out.items()}

    monkeypatch.setattr(VAE, "metrics", loose)
    out = assert_ok(invoke("eval", run, "--iwae-k", "5", "--no-progress"))
    assert "above its neg_elbo_nats" in out and "one of the two is computed wrongly" in out


def test_a_limited_or_validation_evaluation_does_not_replace_the_whole_test_splits(run, tmp_path):
    assert_ok(invoke("eval", run, "--iwae-k", "5", "--no-progress"))
    kept = {name: (run / name).read_bytes() for name in ("eval.json", "eval-images.safetensors", "README.md")}
    scores = tmp_path / "first.csv"
    out = assert_ok(invoke("eval", run, "--iwae-k", "5", "--limit", "30", "--per-image", scores, "--no-progress"))
    assert "holds this model's evaluation of the whole test split" in out and "of 30 test images" in out
    assert len(read_rows(scores)) == 30  # what was asked for is still written
    out = assert_ok(invoke("eval", run, "--split", "val", "--no-progress"))
    assert "of 144 val images, is printed but not written over it" in out and "written to" not in out
    assert {name: (run / name).read_bytes() for name in kept} == kept
    assert not list(run.glob("eval-progress*"))


def test_a_quick_look_does_not_replace_an_earlier_look_with_a_bound_or_more_images(run):
    assert_ok(invoke("eval", run, "--iwae-k", "5", "--limit", "40", "--no-progress"))
    kept = {name: (run / name).read_bytes() for name in ("eval.json", "eval-images.safetensors")}
    out = assert_ok(invoke("eval", run, "--limit", "5", "--no-progress"))
    assert "with nll_iwae_k5_nats, which this one did not measure" in out and "is printed but not written" in out
    out = assert_ok(invoke("eval", run, "--iwae-k", "5", "--limit", "20", "--no-progress"))
    assert "on 40 test images, more than this one" in out
    assert {name: (run / name).read_bytes() for name in kept} == kept
    assert_ok(invoke("eval", run, "--iwae-k", "5", "--limit", "60", "--no-progress"))  # more images: written
    assert json.loads((run / "eval.json").read_text())["images"] == 60


def test_the_card_of_a_look_at_the_first_images_names_that_slice_of_the_split(run):
    assert_ok(invoke("eval", run, "--limit", "30", "--no-progress"))
    card = (run / "README.md").read_text()
    assert 'split: "test[:30]"' in card.split("\n---\n")[0] and "(30 test images, grey levels)" in card


def test_an_evaluation_without_the_bound_keeps_the_bound_measured_before_on_the_same_weights(run):
    assert_ok(invoke("eval", run, "--iwae-k", "5", "--no-progress"))
    before = json.loads((run / "eval.json").read_text())
    out = assert_ok(invoke("eval", run, "--no-progress"))
    assert "kept nll_iwae_k5_nats from the earlier evaluation of the same weights and images" in out
    after = json.loads((run / "eval.json").read_text())
    key = "nll_iwae_k5_nats"
    assert after["metrics"][key] == before["metrics"][key]
    assert after["standard_errors"][key] == before["standard_errors"][key]
    row = json.loads(assert_ok(invoke("compare", run, "--sort", f"test_{key}", "--json")))["runs"][0]
    assert row["test_metrics"][key] == before["metrics"][key] and not row["notes"]  # its values read back whole


def test_a_bound_whose_per_image_values_were_lost_is_still_kept_by_the_next_evaluation(run):
    """A failed write of eval-images.safetensors (a full disk, a kill) or a damaged one left eval.json's bound
    with no values image by image: the next evaluation dropped the bound itself (hours at K = 5,000)."""
    assert_ok(invoke("eval", run, "--iwae-k", "5", "--no-progress"))
    key = "nll_iwae_k5_nats"
    before = json.loads((run / "eval.json").read_text())["metrics"][key]
    (run / "eval-images.safetensors").write_bytes(b"damaged")
    out = assert_ok(invoke("eval", run, "--no-progress"))
    assert f"kept {key} from the earlier evaluation" in out and f"{key} without its values image by image" in out
    after = json.loads((run / "eval.json").read_text())
    assert after["metrics"][key] == before and "mse" in after["metrics"]
    row = json.loads(assert_ok(invoke("compare", run, "--sort", "test_mse", "--json")))["runs"][0]
    assert row["test_metrics"][key] == before and not row["notes"]  # the values it has still read back


def test_the_train_split_of_a_dynamically_binarised_run_is_measured_on_binary_pixels(tmp_path):
    zoo.train("vae", dataset="digits", epochs=1, out=tmp_path / "b", binarize="dynamic", log=lambda *_: None,
              progress=False, **TINY)
    train = zoo.evaluate(tmp_path / "b", split="train", save=False)
    test = zoo.evaluate(tmp_path / "b", save=False)
    # the model outputs the same pixel probabilities for binary images of either split: their MSEs agree, where
    # grey training images (what was measured before) gave far lower ones
    assert train["pixels"] == "binarised (dynamic)"
    assert abs(train["metrics"]["mse"] - test["metrics"]["mse"]) < 0.1 * test["metrics"]["mse"]
    assert train == zoo.evaluate(tmp_path / "b", split="train", save=False)  # one fixed draw


def test_a_plugin_metric_given_as_a_python_number_is_refused_with_the_fix(run, monkeypatch):
    from zoo.plugins.vae import VAE

    monkeypatch.setattr(VAE, "metrics", lambda self, batch, **options: {"mse": 0.5})
    assert_clean_error(invoke("eval", run, "--no-progress"), "metric 'mse' that is not per image (a float",
                       "one value per image")
    assert not (run / "eval.json").exists()
