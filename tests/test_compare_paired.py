"""`zoo eval` keeps each image's metrics (eval-images.safetensors) and `zoo compare`, sorted by a test metric,
gives its standard error and the paired difference of runs measured on the same images, image by image;
runs measured on other images, files of another evaluation and damaged files are left out with a note."""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
from pathlib import Path

import pytest
from conftest import TINY, assert_ok, invoke, real_data, write_idx_set

import zoo
from zoo import registry
from zoo.console import quiet
from zoo.runs.checkpoint import load_tensors

IMAGES_FILE = "eval-images.safetensors"
NLL = "nll_iwae_k5_nats"


@pytest.fixture
def pair_of_runs(vae_copy, tmp_path) -> tuple[Path, Path]:
    """The shared 1-epoch VAE and a second one trained with another seed, both evaluated with K = 5, each
    image's metrics also written to RUN.csv."""
    other = tmp_path / "other"
    zoo.train("vae", dataset="digits", epochs=1, latent_dim=2, seed=7, out=other, log=quiet, progress=False, **TINY)
    for run in (vae_copy, other):
        assert_ok(invoke("eval", run, "--iwae-k", "5", "--per-image", f"{run}.csv", "--no-progress"))
    return vae_copy, other


def per_image(run: Path) -> list[float]:
    with open(f"{run}.csv", newline="") as fh:
        return [float(row[NLL]) for row in csv.DictReader(fh)]


def compare_json(*args) -> dict:
    result = invoke("compare", *args, "--json")
    assert_ok(result)
    return json.loads(result.stdout)


def test_eval_keeps_each_images_metrics_whose_means_are_eval_jsons(vae_copy):
    assert_ok(invoke("eval", vae_copy, "--iwae-k", "5", "--no-progress"))
    saved = json.loads((vae_copy / "eval.json").read_text())
    values, _ = load_tensors(vae_copy / IMAGES_FILE)
    assert set(values) == set(saved["metrics"])
    for name, mean in saved["metrics"].items():
        assert values[name].shape == (saved["images"],)
        assert float(values[name].mean()) == pytest.approx(mean, rel=1e-12)
        se = float(values[name].std()) / math.sqrt(saved["images"])
        assert se == pytest.approx(saved["standard_errors"][name], rel=1e-12)


def test_the_paired_difference_is_the_mean_of_the_image_by_image_differences_with_their_standard_error(pair_of_runs):
    a, b = pair_of_runs
    result = compare_json(a, b, "--sort", f"test_{NLL}")
    first, second = result["runs"]
    assert result["paired_reference"] == first["name"]
    assert first["paired"] is None
    ref, other = (a, b) if first["name"] == str(a) else (b, a)
    diffs = [y - x for x, y in zip(per_image(ref), per_image(other))]
    n = len(diffs)
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    assert second["paired"]["images"] == n
    assert second["paired"]["difference"] == pytest.approx(mean, rel=1e-9)
    assert second["paired"]["standard_error"] == pytest.approx(sd / math.sqrt(n), rel=1e-9)
    # sorted ascending: the second run's bound is the larger, by the paired difference's mean
    assert second["paired"]["difference"] == pytest.approx(
        second["test_metrics"][NLL] - first["test_metrics"][NLL], rel=1e-9)
    assert second["paired"]["difference"] > 0
    assert first["test_standard_errors"][NLL] > second["paired"]["standard_error"] / 10


def test_the_table_shows_the_standard_error_and_the_paired_column_beside_the_sort_metric(pair_of_runs):
    a, b = pair_of_runs
    out = assert_ok(invoke("compare", a, b, "--sort", f"test_{NLL}"))
    header = next(line for line in out.splitlines() if line.startswith("run "))
    columns = header.split()
    assert columns[columns.index(f"test_{NLL}") + 1:][:2] == ["paired", "Δ"]
    rows = [line for line in out.splitlines() if line.startswith((str(a), str(b)))]
    assert "reference" in rows[0] and rows[0].count("±") == 1
    assert rows[1].count("±") == 2
    assert f"paired Δ: test_{NLL} minus" in out and "test images, ± its standard error" in out


def test_sorted_by_a_validation_metric_the_table_has_no_paired_column(pair_of_runs):
    out = assert_ok(invoke("compare", *pair_of_runs))
    assert "paired" not in out and "±" not in out


def test_the_csv_carries_the_standard_errors_and_the_paired_difference(pair_of_runs):
    result = invoke("compare", *pair_of_runs, "--sort", f"test_{NLL}", "--csv")
    rows = list(csv.DictReader(io.StringIO(assert_ok(result) and result.stdout)))
    as_json = compare_json(*pair_of_runs, "--sort", f"test_{NLL}")["runs"]
    assert rows[0]["paired_difference"] == "" and float(rows[1]["paired_difference"]) == pytest.approx(
        as_json[1]["paired"]["difference"])
    assert float(rows[1]["paired_standard_error"]) == pytest.approx(as_json[1]["paired"]["standard_error"])
    assert float(rows[0][f"test_{NLL}_se"]) == pytest.approx(as_json[0]["test_standard_errors"][NLL])


def test_runs_measured_on_other_images_are_not_paired_and_the_note_says_why(pair_of_runs):
    a, b = pair_of_runs
    (b / "eval.json").unlink()  # else kept: a part of the test split does not replace the whole's eval.json
    assert_ok(invoke("eval", b, "--iwae-k", "5", "--limit", "100", "--no-progress"))
    result = compare_json(a, b, "--sort", f"test_{NLL}")
    assert result["paired_reference"] is None
    assert all(r["paired"] is None for r in result["runs"])
    first, second = result["runs"]
    assert f"measured on other test images than {first['name']} (another split, --limit, or images added to its " \
           "folder): no paired difference" in second["notes"]
    assert not any("other test images" in n for n in first["notes"])
    assert "paired" not in assert_ok(invoke("compare", a, b, "--sort", f"test_{NLL}")).split("notes:")[0]


def test_of_three_runs_the_two_on_the_same_images_pair_and_the_third_is_named(pair_of_runs, tmp_path):
    a, b = pair_of_runs
    c = Path(shutil.copytree(a, tmp_path / "third"))
    (c / "eval.json").unlink()
    assert_ok(invoke("eval", c, "--iwae-k", "5", "--limit", "50", "--no-progress"))
    result = compare_json(a, b, c, "--sort", f"test_{NLL}")
    by_name = {r["name"]: r for r in result["runs"]}
    assert result["paired_reference"] in (str(a), str(b))
    assert by_name[str(c)]["paired"] is None
    assert any("measured on other test images than" in n for n in by_name[str(c)]["notes"])
    assert sum(r["paired"] is not None for r in result["runs"]) == 1


def test_a_run_without_the_figure_does_not_unpair_the_runs_that_have_it(pair_of_runs, tmp_path):
    """A GAN, or a run of other pixels not yet evaluated, listed beside two VAEs on the same images took their
    paired Δ away, the caveat blaming the whole table ('binarize differs') for a figure it had not."""
    a, b = pair_of_runs
    unmeasured = tmp_path / "binary"
    zoo.train("vae", dataset="digits", epochs=1, latent_dim=2, binarize="dynamic", out=unmeasured, log=quiet,
              progress=False, **TINY)
    result = zoo.compare([a, b, unmeasured], f"test_{NLL}")
    assert result.caveat is None and result.reference is not None
    assert sum(r.paired is not None for r in result.runs) == 1 and result.runs[-1].folder == unmeasured


def test_an_images_file_of_another_evaluation_is_ignored_with_a_note(pair_of_runs, tmp_path):
    a, b = pair_of_runs
    kept = tmp_path / "k5.safetensors"
    shutil.copy(b / IMAGES_FILE, kept)
    (b / "eval.json").unlink()
    assert_ok(invoke("eval", b, "--iwae-k", "5", "--limit", "300", "--no-progress"))
    shutil.copy(kept, b / IMAGES_FILE)  # eval.json now holds the 300-image evaluation
    result = compare_json(a, b, "--sort", f"test_{NLL}")
    notes = next(r["notes"] for r in result["runs"] if r["name"] == str(b))
    assert any("is not from the evaluation eval.json holds" in n for n in notes)
    assert result["paired_reference"] is None
    assert next(r for r in result["runs"] if r["name"] == str(b))["test_metrics"]  # the metrics themselves stay


def test_a_damaged_images_file_is_ignored_with_a_note_and_left_as_it_was(pair_of_runs):
    a, b = pair_of_runs
    path = b / IMAGES_FILE
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    result = compare_json(a, b, "--sort", f"test_{NLL}")
    notes = next(r["notes"] for r in result["runs"] if r["name"] == str(b))
    assert any(IMAGES_FILE in n and "cannot be read" in n for n in notes)
    assert result["paired_reference"] is None
    assert path.read_bytes() == bytes(data)


def test_catalogued_models_are_compared_by_their_own_evaluations_in_zoo_outputs(tmp_path):
    write_idx_set(tmp_path / "data" / "mnist", n_train=64, n_test=40)
    for name in ("convae-mnist", "vae-mnist"):  # (a DAE's mse, of undoing its noise, is another measure)
        assert_ok(invoke("eval", name, "--data-dir", tmp_path / "data", "--no-progress"))
        assert (tmp_path / "zoo-outputs" / name / IMAGES_FILE).is_file()
    result = compare_json("convae-mnist", "vae-mnist", "--sort", "test_mse")
    assert result["paired_reference"] == result["runs"][0]["name"]
    second = result["runs"][1]
    assert second["paired"]["images"] == 40
    own = json.loads((tmp_path / "zoo-outputs" / second["name"] / "eval.json").read_text())
    assert second["test_metrics"] == own["metrics"]
    assert f"test metrics from zoo-outputs/{second['name']}/eval.json (40 test images)" in second["notes"]


def test_bundled_likelihood_models_pair_out_of_the_box_by_the_evaluations_they_ship():
    result = compare_json("iwae50-mnist", "piwae-mnist", "--sort", "test_nll_iwae_k1000_nats")
    piwae, iwae50 = result["runs"]
    assert piwae["name"] == result["paired_reference"] == "piwae-mnist"
    shipped = {r["name"]: load_tensors(registry.weights_folder(r["name"]) / IMAGES_FILE)[0]["nll_iwae_k1000_nats"]
               for r in (piwae, iwae50)}
    d = shipped["iwae50-mnist"] - shipped["piwae-mnist"]
    assert iwae50["paired"]["images"] == 10_000
    assert iwae50["paired"]["difference"] == pytest.approx(float(d.mean()), rel=1e-12)
    assert iwae50["paired"]["standard_error"] == pytest.approx(float(d.std()) / 100, rel=1e-12)
    se = float(shipped["iwae50-mnist"].std()) / 100
    assert iwae50["test_standard_errors"]["nll_iwae_k1000_nats"] == pytest.approx(se)


def test_the_users_own_evaluation_of_a_bundled_model_goes_over_the_one_it_ships(tmp_path):
    write_idx_set(tmp_path / "data" / "mnist", n_train=64, n_test=40)
    assert_ok(invoke("eval", "piwae-mnist", "--iwae-k", "2", "--data-dir", tmp_path / "data", "--no-progress"))
    row = compare_json("piwae-mnist", "--sort", "test_nll_iwae_k2_nats")["runs"][0]
    own = json.loads((tmp_path / "zoo-outputs" / "piwae-mnist" / "eval.json").read_text())
    assert {k: row["test_metrics"][k] for k in own["metrics"]} == own["metrics"]
    published = registry.weights()["piwae-mnist"]["metrics"]["nll_iwae_k1000_nats"]
    assert row["test_metrics"]["nll_iwae_k1000_nats"] == published
    assert "test metrics from zoo-outputs/piwae-mnist/eval.json (40 test images), the rest published" in row["notes"]


def test_the_users_evaluation_without_the_bound_keeps_the_shipped_bound_and_its_pairs():
    """`zoo eval iwae50-mnist` over the whole (real) test split, without --iwae-k: its figures go over the
    shipped ones, and the shipped K = 1,000 bound of the same images stays, values and all."""
    assert_ok(invoke("eval", "iwae50-mnist", "--data-dir", real_data("mnist"), "--no-progress"))
    own = json.loads((Path.cwd() / "zoo-outputs" / "iwae50-mnist" / "eval.json").read_text())
    result = compare_json("iwae50-mnist", "piwae-mnist", "--sort", "test_nll_iwae_k1000_nats")
    iwae50 = next(r for r in result["runs"] if r["name"] == "iwae50-mnist")
    assert iwae50["test_metrics"]["neg_elbo_nats"] == own["metrics"]["neg_elbo_nats"]
    shipped = json.loads((registry.weights_folder("iwae50-mnist") / "eval.json").read_text())
    assert iwae50["test_metrics"]["nll_iwae_k1000_nats"] == shipped["metrics"]["nll_iwae_k1000_nats"]
    assert iwae50["paired"]["images"] == 10_000 and result["paired_reference"] == "piwae-mnist"


def test_a_quick_look_at_a_catalogued_model_does_not_stand_in_for_its_published_metrics(tmp_path):
    published = compare_json("iwae50-mnist")["runs"][0]["test_metrics"]
    write_idx_set(tmp_path / "data" / "mnist", n_train=64, n_test=64)
    assert_ok(invoke("eval", "iwae50-mnist", "--iwae-k", "2", "--limit", "20", "--data-dir", tmp_path / "data",
                     "--no-progress"))
    row = compare_json("iwae50-mnist", "--sort", "test_nll_iwae_k1000_nats")["runs"][0]
    assert row["test_metrics"] == published and row["paired"] is None
    assert "zoo-outputs/iwae50-mnist/eval.json measured 20 test images, not the whole test split: the published " \
           "test metrics are shown" in row["notes"]
    own = tmp_path / "zoo-outputs" / "iwae50-mnist" / "eval.json"
    older = {k: v for k, v in json.loads(own.read_text()).items() if k != "limit"}  # as zoo wrote it before
    own.write_text(json.dumps(older))
    row = compare_json("iwae50-mnist", "--sort", "test_nll_iwae_k1000_nats")["runs"][0]
    assert row["test_metrics"] == published
    assert any("does not say whether it measured the whole test split" in n for n in row["notes"])


def test_a_quick_look_at_bundled_weights_on_their_test_set_is_printed_not_written(tmp_path):
    out = assert_ok(invoke("eval", "piwae-mnist", "--iwae-k", "2", "--limit", "16", "--data-dir", real_data("mnist"),
                           "--no-progress"))
    assert "piwae-mnist comes with its evaluation of the whole test split (10,000 images); this one, of 16 " \
           "test images, is printed, not written" in out and "delete it" not in out
    assert not list(tmp_path.glob("zoo-outputs/*/eval*"))


def test_overwrite_removes_the_images_file_with_the_rest_of_the_run(vae_copy):
    assert_ok(invoke("eval", vae_copy, "--iwae-k", "2", "--limit", "20", "--no-progress"))
    assert (vae_copy / IMAGES_FILE).is_file()
    zoo.train("vae", dataset="digits", epochs=1, latent_dim=2, out=vae_copy, overwrite=True, log=quiet,
              progress=False, **TINY)
    assert not (vae_copy / IMAGES_FILE).exists() and not (vae_copy / "eval.json").exists()


def test_a_pushed_run_carries_each_images_metrics_and_pairs_with_a_local_run_once_pulled(pair_of_runs, tmp_path):
    from zoo import hub

    a, b = pair_of_runs
    location = f"file://{tmp_path / 'hub' / 'b'}"
    hub.push(b, location)
    assert (tmp_path / "hub" / "b" / IMAGES_FILE).read_bytes() == (b / IMAGES_FILE).read_bytes()
    result = compare_json(a, location, "--sort", f"test_{NLL}")
    pulled = next(r for r in result["runs"] if r["name"] == location)
    local = compare_json(a, b, "--sort", f"test_{NLL}")  # the same pair, both runs here
    assert [r["paired"] for r in result["runs"]] == [r["paired"] for r in local["runs"]]
    assert any(r["paired"] for r in result["runs"])
    assert pulled["test_metrics"] == json.loads((b / "eval.json").read_text())["metrics"]


def test_a_test_figure_of_runs_measured_on_other_pixels_or_by_another_density_is_said_not_to_be_one_measure(
        tmp_path):
    """A Gaussian VAE's nats beside a Bernoulli one's gave a 'paired Δ +1964 nats', and a run on grey pixels was
    ranked among binarised ones, its unpaired figure put down to 'another dataset or --limit'."""
    runs = {}
    for name, keys in (("grey", {}), ("binary", {"binarize": "dynamic"}), ("gauss", {"likelihood": "gaussian"})):
        runs[name] = tmp_path / name
        zoo.train("vae", dataset="digits", epochs=1, latent_dim=2, out=runs[name], log=quiet, progress=False,
                  **TINY, **keys)
        assert_ok(invoke("eval", runs[name], "--iwae-k", "3", "--no-progress"))
    nll = "test_nll_iwae_k3_nats"
    both = zoo.compare([runs["grey"], runs["binary"]], nll)
    assert both.caveat == f"{nll} is not one measure across these runs (binarize differs: other test images)"
    assert both.reference is None and all(r.paired is None for r in both.runs)
    densities = zoo.compare([runs["grey"], runs["gauss"]], nll)
    assert densities.caveat == (f"{nll} is not one measure across these runs (likelihood differs: another measure): "
                                "--sort test_mse compares them alike")
    assert densities.reference is None and all(r.paired is None for r in densities.runs)  # no 'paired Δ +1964'
    assert "paired" not in assert_ok(invoke("compare", runs["grey"], runs["gauss"], "--sort", nll)).split("notes")[0]
    three = zoo.compare([runs["grey"], runs["binary"], runs["gauss"]], "test_mse")  # images differ: said; the two
    assert three.caveat is not None and three.reference.folder in (runs["grey"], runs["gauss"])  # on grey pair
    binary = next(r for r in three.runs if r.folder == runs["binary"])
    assert binary.paired is None and any("binarised against grey pixels" in n for n in binary.notes)
    assert zoo.compare([runs["grey"], runs["gauss"]], "test_mse").caveat is None  # reconstructions compare
