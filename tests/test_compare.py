"""`zoo compare RUN...` (issue 16) on real runs: three tiny ConvAEs trained on digits that differ in
latent_dim and lr, a catalogued model without a training log, and a run pulled from a folder hub."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY, assert_clean_error, assert_ok, invoke, is_png, read_config, read_metrics, write_idx_set

import zoo
import zoo.cli.compare  # noqa: F401  (adds `zoo compare` to the command group)
from zoo.console import quiet

DIFFERING = {"latent_dim", "lr"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Three finished 2-epoch runs: a (latent 4), b (latent 8), c (latent 8, lr 0.01). Read-only."""
    root = tmp_path_factory.mktemp("compare-runs")
    settings = {"a": {"latent_dim": 4}, "b": {"latent_dim": 8}, "c": {"latent_dim": 8, "lr": 0.01}}
    for name, keys in settings.items():
        zoo.train("convae", dataset="digits", epochs=2, out=root / name, log=quiet, progress=False, **TINY, **keys)
    return {name: root / name for name in settings}


def best_row(run: Path) -> dict:
    rows = read_metrics(run)
    return [r for r in rows if r.get("best")][-1]


def by_val_loss(runs: dict[str, Path]) -> list[str]:
    return sorted(runs, key=lambda name: best_row(runs[name])["val_loss"])


def compare_json(*args) -> dict:
    result = invoke("compare", *args, "--json")
    assert_ok(result)
    return json.loads(result.stdout)


# ------------------------------------------------------------------------------------------ the table

def test_table_has_a_column_for_exactly_the_differing_keys_and_counts_the_equal_ones(runs):
    out = assert_ok(invoke("compare", *runs.values()))
    config = read_config(runs["a"])
    every_key = set(config["config"]) | set(config["train"])
    assert f"{len(every_key) - len(DIFFERING)} config keys equal in all runs" in out
    header = next(line for line in out.splitlines() if line.startswith("run "))
    columns = header.split()
    assert columns[:2] == ["run", "model"]
    assert set(columns) & every_key == DIFFERING
    assert {"best_epoch", "trained", "seconds", "val_loss", "val_mse"} <= set(columns)


def test_a_key_an_older_runs_config_lacks_is_compared_at_the_default_its_model_takes():
    """hvae-mnist's config.json predates pixel_layers: the one setting that tells it from convhvae-mnist
    was counted among '2 only some runs have', and no column showed it."""
    data = json.loads(assert_ok(invoke("compare", "convhvae-mnist", "hvae-mnist", "--json")))
    assert "pixel_layers" in data["differing_keys"] and data["partial_keys"] == []
    assert [r["config"]["pixel_layers"] for r in data["runs"]] == [4, 0]
    assert "only some runs have" not in assert_ok(invoke("compare", "convhvae-mnist", "hvae-mnist"))


def test_table_rows_are_in_ascending_val_loss_order_by_default(runs):
    out = assert_ok(invoke("compare", *runs.values()))
    assert "sorted by val_loss (ascending" in out
    rows = [line.split()[0] for line in out.splitlines() if line.startswith(str(runs["a"].parent))]
    assert rows == [str(runs[name]) for name in by_val_loss(runs)]


def test_desc_reverses_the_order_and_loss_is_read_as_val_loss(runs):
    data = compare_json(*runs.values(), "--sort", "loss", "--desc")
    assert data["sort"] == "val_loss" and data["descending"] is True
    assert [r["name"] for r in data["runs"]] == [str(runs[n]) for n in reversed(by_val_loss(runs))]


def test_sort_by_a_training_metric_orders_by_its_best_epoch_value(runs):
    data = compare_json(*runs.values(), "--sort", "train_loss")
    values = [r["sort_value"] for r in data["runs"]]
    assert values == sorted(values)
    assert values == sorted(best_row(run)["train_loss"] for run in runs.values())


def test_a_single_run_is_a_table_of_one(runs):
    out = assert_ok(invoke("compare", runs["a"]))
    assert out.startswith("1 run, sorted by val_loss")
    assert sum(line.startswith(str(runs["a"])) for line in out.splitlines()) == 1


# ------------------------------------------------------------------------------------------ json, csv, plot

def test_json_holds_the_differing_keys_and_the_best_epochs_numbers_from_metrics_jsonl(runs):
    data = compare_json(*runs.values())
    assert set(data["differing_keys"]) == DIFFERING and not DIFFERING & set(data["equal_keys"])
    for r in data["runs"]:
        run = Path(r["folder"])
        rows, best = read_metrics(run), best_row(run)
        config = read_config(run)
        assert r["model"] == "convae"
        assert r["config"] == {"latent_dim": config["config"]["latent_dim"], "lr": config["train"]["lr"]}
        assert r["best_epoch"] == best["epoch"] and r["epochs"] == rows[-1]["epoch"] == 2
        assert r["seconds"] == pytest.approx(sum(x["seconds"] for x in rows), abs=0.01)
        assert r["metrics"] == {k: best[k] for k in ("train_loss", "val_loss", "val_mse")}
        assert r["sort_value"] == best["val_loss"]


def test_csv_parses_with_a_row_per_run_holding_the_numbers_from_metrics_jsonl(runs):
    result = invoke("compare", *runs.values(), "--csv")
    assert_ok(result)
    table = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["name"] for row in table] == [str(runs[n]) for n in by_val_loss(runs)]
    assert {"config.latent_dim", "config.lr"} <= set(table[0]) and "config.epochs" not in table[0]
    for row in table:
        best = best_row(Path(row["folder"]))
        assert float(row["val_loss"]) == best["val_loss"] and float(row["train_loss"]) == best["train_loss"]
        assert int(row["best_epoch"]) == best["epoch"]
        assert int(row["config.latent_dim"]) == read_config(Path(row["folder"]))["config"]["latent_dim"]


def test_plot_writes_a_png_and_json_stays_alone_on_stdout(runs, tmp_path):
    result = invoke("compare", *runs.values(), "--plot", tmp_path / "curves.png", "--json")
    assert_ok(result)
    assert is_png(tmp_path / "curves.png")
    assert json.loads(result.stdout)["plot"] == str(tmp_path / "curves.png")  # "wrote ..." went to stderr


def test_the_library_function_returns_the_comparison(runs, tmp_path):
    result = zoo.compare([runs["b"], runs["a"]], "val_mse", descending=True, plot=tmp_path / "c.png")
    assert [r.folder for r in result.runs] == [runs["a"], runs["b"]]  # a has the larger val_mse
    assert result.differing == ["latent_dim"] and result.metric == "val_mse"
    assert is_png(result.plot) and len(result.runs[0].history) == 2


# ------------------------------------------------------------------------------------------ sources

def test_a_quoted_glob_expands_to_its_run_folders_and_leaves_other_matches_out(runs):
    (runs["a"].parent / "notes.txt").write_text("not a run")
    try:
        data = compare_json(f"{runs['a'].parent}/*")
    finally:
        (runs["a"].parent / "notes.txt").unlink()
    assert sorted(r["name"] for r in data["runs"]) == sorted(str(p) for p in runs.values())


def test_a_folder_named_twice_is_compared_once_with_a_note(runs):
    result = invoke("compare", runs["a"], f"{runs['a'].parent}/[a]", runs["a"], "--json")
    assert_ok(result)
    assert len(json.loads(result.stdout)["runs"]) == 1
    assert result.stderr.count(f"note: {runs['a']} is given twice: shown once") == 2  # the glob's match, then again


def test_catalogued_weights_without_metrics_jsonl_show_their_card_metrics_and_empty_cells_last(runs):
    data = compare_json(runs["a"], "iwae-mnist")
    assert [r["name"] for r in data["runs"]] == [str(runs["a"]), "iwae-mnist"]  # no val_loss: sorts last
    iwae = data["runs"][1]
    assert iwae["model"] == "iwae" and iwae["metrics"] == {} and iwae["best_epoch"] is None
    assert iwae["test_metrics"]["nll_iwae_k1000_nats"] == pytest.approx(86.0017)
    assert any("no metrics.jsonl" in note for note in iwae["notes"])
    result = invoke("compare", runs["a"], "iwae-mnist", "--csv")
    row = list(csv.DictReader(io.StringIO(result.stdout)))[1]
    assert row["val_loss"] == "" and row["best_epoch"] == "" and float(row["test_nll_iwae_k1000_nats"]) > 0
    out = assert_ok(invoke("compare", runs["a"], "iwae-mnist", "--sort", "test_mse"))
    assert "sorted by test_mse" in out


def test_a_loss_that_measures_differently_across_the_runs_is_said_with_the_metric_that_compares_them(runs, tmp_path):
    """A β-VAE's loss is rec + β·KL: sorted by it, the larger β can look worse or better for the number's sake."""
    for beta in (1.0, 4.0):
        zoo.train("vae", dataset="digits", epochs=1, out=tmp_path / f"b{beta:g}", log=quiet, progress=False,
                  beta=beta, **TINY)
    data = compare_json(tmp_path / "b1", tmp_path / "b4")
    assert data["caveat"] == "val_loss is not one measure across these runs (beta differs): --sort val_neg_elbo " \
                             "compares them alike"
    assert "note: val_loss is not one measure across these runs (runs of convae, vae)" in \
        assert_ok(invoke("compare", runs["a"], tmp_path / "b1"))
    assert compare_json(tmp_path / "b1", tmp_path / "b4", "--sort", "val_neg_elbo")["caveat"] is None
    assert compare_json(runs["a"], runs["b"])["caveat"] is None  # latent_dim changes the model, not the measure


def test_a_training_loss_weighed_by_a_warm_up_is_said_with_the_validation_loss_that_compares_them(tmp_path):
    """The KL warm-up weighs the training loss only: the longest warm-up's smallest KL weight is no better model."""
    for warmup in (0, 50):
        zoo.train("vae", dataset="digits", epochs=1, out=tmp_path / f"w{warmup}", log=quiet, progress=False,
                  kl_warmup=warmup, **TINY)
    data = compare_json(tmp_path / "w0", tmp_path / "w50", "--sort", "train_loss")
    assert data["caveat"] == "train_loss is not one measure across these runs (kl_warmup differs): --sort val_loss " \
                             "compares them alike"
    assert compare_json(tmp_path / "w0", tmp_path / "w50")["caveat"] is None  # val_loss: weighed at β in both


def test_runs_without_the_default_metric_are_said_to_be_in_the_order_given_with_a_metric_to_sort_by():
    out = assert_ok(invoke("compare", "iwae50-mnist", "iwae-mnist"))
    assert out.startswith("2 runs, in the order given (none has val_loss: --sort test_nll_iwae_k1000_nats sorts them)")
    assert out.index("iwae50-mnist  ") < out.index("iwae-mnist  ")
    assert "sorted by" not in out and "note: val_loss" not in out  # nor a caveat on a metric no run has
    out = assert_ok(invoke("compare", "iwae-mnist", "vae-mnist"))  # vae-mnist models grey levels: no bound
    assert out.startswith("2 runs, in the order given (none has val_loss: --sort test_bce sorts them)")
    out = assert_ok(invoke("compare", "vae-mnist", "gan-mnist"))  # no test metric in common
    assert out.startswith("2 runs, in the order given (none has val_loss: --sort test_bce sorts them, those "
                          "without it last)")


def test_a_run_pulled_from_a_folder_hub_is_compared_by_its_cards_training_metrics(runs, tmp_path):
    from zoo import hub

    hub.push(runs["b"], f"file://{tmp_path / 'hub' / 'b'}")
    data = compare_json(runs["a"], f"file://{tmp_path / 'hub' / 'b'}")
    pulled = next(r for r in data["runs"] if r["name"].startswith("file://"))
    assert pulled["metrics"]["val_loss"] == pytest.approx(best_row(runs["b"])["val_loss"], rel=1e-5)
    assert pulled["best_epoch"] == 2 and pulled["config"] == {"latent_dim": 8}


def test_the_catalogues_figures_a_card_lacks_are_compared_and_pushed_with_the_weights(tmp_path):
    """cvae-mnist's card holds its eval.json's figures, the catalogue also its FID; gan-mnist's card none."""
    from zoo import hub, registry

    fid = registry.weights()["cvae-mnist"]["metrics"]["classifier_fid"]
    cvae = next(r for r in compare_json("cvae-mnist", "gan-mnist")["runs"] if r["name"] == "cvae-mnist")
    assert cvae["test_metrics"]["classifier_fid"] == pytest.approx(fid)
    assert cvae["test_metrics"]["neg_elbo_nats"] == pytest.approx(registry.weights()["cvae-mnist"]["metrics"]
                                                                  ["neg_elbo_nats"])
    hub.push("gan-mnist", f"file://{tmp_path / 'hub' / 'gan'}")
    card = (tmp_path / "hub" / "gan" / "README.md").read_text()
    assert f"zoo eval file://{tmp_path / 'hub' / 'gan'} --fid" in card  # features-mnist measures it
    assert "pip install" not in card  # zoo's own model
    pulled = compare_json(f"file://{tmp_path / 'hub' / 'gan'}")["runs"][0]
    assert pulled["test_metrics"] == pytest.approx(registry.weights()["gan-mnist"]["metrics"])


def test_a_conditional_models_likelihood_is_said_to_be_given_the_class_and_paired_with_no_unconditional_one(
        tmp_path):
    """A cvae's −log p(x | y) was ranked against a VAE's −log p(x) with a paired difference (33 nats "better")."""
    for model in ("cvae", "vae", "iwae"):
        zoo.train(model, dataset="digits", out=tmp_path / model, log=quiet, progress=False, **{**TINY, "epochs": 1})
        zoo.evaluate(tmp_path / model, options={"iwae_k": 3})
    runs = [tmp_path / m for m in ("cvae", "vae", "iwae")]
    ranked = [Path(r["name"]).name for r in compare_json(*runs)["runs"]]  # by val_loss: its −ELBO of p(x | y)
    assert ranked[-1] == "cvae"
    for order in ((), ("--desc",)):  # its smaller figure ranked it first; it ranks after the others' p(x)
        ranked = [Path(r["name"]).name for r in compare_json(*runs, "--sort", "test_nll_iwae_k3_nats", *order)["runs"]]
        assert ranked[-1] == "cvae"
    out = assert_ok(invoke("compare", *map(str, runs), "--sort", "test_nll_iwae_k3_nats"))
    assert "class-conditional runs, of p(x | y), after the others" in out.splitlines()[0]
    rows = {Path(r["name"]).name: r for r in compare_json(*runs, "--sort", "test_nll_iwae_k3_nats")["runs"]}
    assert any("is of p(x | y), given each image's class" in note for note in rows["cvae"]["notes"])
    assert rows["cvae"]["paired"] is None and "given each image's class" not in " ".join(rows["vae"]["notes"])
    assert (rows["vae"]["paired"] is None) != (rows["iwae"]["paired"] is None)  # the two unconditional ones pair
    mse = {Path(r["name"]).name: r for r in compare_json(*runs, "--sort", "test_mse")["runs"]}
    assert "given each image's class" not in " ".join(mse["cvae"]["notes"])


def test_a_corrupt_metrics_jsonl_has_its_damaged_lines_skipped_and_counted(runs, tmp_path):
    run = Path(shutil.copytree(runs["a"], tmp_path / "damaged"))
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text(lines[0] + "\n{not json\n" + lines[1][:25] + "\n")
    data = compare_json(run)
    r = data["runs"][0]
    assert r["epochs"] == 1 and r["metrics"]["val_loss"] == json.loads(lines[0])["val_loss"]
    assert "2 damaged lines of metrics.jsonl skipped" in r["notes"]


# ------------------------------------------------------------------------------------------ bad input

def test_no_runs_is_refused_with_exit_code_2():
    assert_clean_error(invoke("compare"), "no runs to compare", "hf://ORG/NAME", code=2)


def test_a_folder_that_is_not_a_run_is_refused(runs, tmp_path):
    (tmp_path / "empty").mkdir()
    assert_clean_error(invoke("compare", runs["a"], tmp_path / "empty"), "is not a zoo run (no config.json)", code=1)
    # a folder of runs, a study folder, a cv folder: said what they are and what to give instead
    assert_clean_error(invoke("compare", runs["a"].parent), "is not a zoo run", f"such as {runs['a'].parent}/*")
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "best.toml").write_text("model = 'convae'\n")
    assert_clean_error(invoke("compare", tmp_path / "study"), "it is a zoo search study folder",
                       f"zoo train --config {tmp_path / 'study' / 'best.toml'}")
    (tmp_path / "cv").mkdir()
    (tmp_path / "cv" / "cv.json").write_text("{}")
    assert_clean_error(invoke("compare", tmp_path / "cv"), "it is a zoo cv folder")


def test_a_path_that_does_not_exist_is_refused(runs, tmp_path):
    assert_clean_error(invoke("compare", runs["a"], tmp_path / "nowhere"), "does not exist", code=1)


def test_a_glob_matching_nothing_is_refused(runs, tmp_path):
    assert_clean_error(invoke("compare", runs["a"], f"{tmp_path}/vae-*"), f"{tmp_path}/vae-* matches nothing", code=1)


def test_an_unknown_catalogued_name_is_refused_with_close_names(runs):
    assert_clean_error(invoke("compare", runs["a"], "iwae-mnst"), "neither a run folder nor a catalogued name",
                       "Did you mean: iwae-mnist", "zoo list --pretrained", code=1)


def test_a_sort_metric_no_run_has_is_refused_naming_those_that_exist(runs):
    out = assert_clean_error(invoke("compare", *runs.values(), "--sort", "accuracy"),
                             "--sort accuracy: no run has this metric", code=2)
    assert "train_loss, val_loss, val_mse" in out


def test_an_unwritable_plot_path_is_refused_with_a_storage_error(runs, tmp_path):
    (tmp_path / "file").write_text("a file, not a folder")
    assert_clean_error(invoke("compare", runs["a"], "--plot", tmp_path / "file" / "curves.png"),
                       "cannot write", "curves.png", code=74)


def test_a_plot_path_that_is_not_png_is_refused(runs, tmp_path):
    out = assert_clean_error(invoke("compare", runs["a"], "--plot", tmp_path / "curves.jpg"), "ending in .png", code=2)
    assert f"--plot {tmp_path / 'curves.jpg'}" in out and "--out" not in out  # compare has no --out
    assert not (tmp_path / "curves.jpg").exists()


def test_a_plot_of_runs_without_curves_is_refused(tmp_path):
    assert_clean_error(invoke("compare", "iwae-mnist", "--plot", tmp_path / "c.png"), "no run has a", code=2)


def test_json_and_csv_together_are_refused():
    assert_clean_error(invoke("compare", "iwae-mnist", "--json", "--csv"), "choose one", code=2)


def test_compare_help_does_not_import_torch():
    code = ("import sys\nfrom zoo.cli.main import cli\nimport zoo.cli.compare\n"
            "try:\n    cli(['compare', '--help'], prog_name='zoo')\n"
            "except SystemExit as e:\n    assert e.code in (0, None)\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--sort METRIC" in result.stdout and result.stdout.strip().endswith("NO-TORCH")


def test_a_gans_learning_rates_are_no_metric_to_sort_by(tmp_path):
    """lr_d and lr_g (a GAN's two optimizers) were offered as metrics: --sort took them and the hint named them."""
    run = zoo.train("gan", dataset="digits", epochs=1, out=tmp_path / "gan", log=quiet, progress=False).run_dir
    assert {"lr_d", "lr_g"} <= set(read_metrics(run)[0])
    row = zoo.compare([run]).runs[0]
    assert not {k for k in row.metrics if k.startswith("lr")}
    assert_clean_error(invoke("compare", run, "--sort", "lr_d"), "lr_d")


def test_an_interrupted_run_is_said_to_be_unfinished(runs, tmp_path):
    """An interrupted run looked like one that had stopped early; only zoo info said it was unfinished."""
    class StopAfterFirst(zoo.Callback):
        def on_epoch_end(self, trainer, epoch, record):
            raise KeyboardInterrupt

    with pytest.raises(zoo.errors.Interrupted):
        zoo.train("convae", dataset="digits", epochs=3, out=tmp_path / "half", log=quiet, progress=False,
                  callbacks=[StopAfterFirst()], **TINY)
    result = zoo.compare([runs["a"], tmp_path / "half"])
    notes = {r.name: r.notes for r in result.runs}
    assert notes[str(tmp_path / "half")] == ["trained 1 of 3 epochs: interrupted (zoo train --resume continues it)"]
    assert notes[str(runs["a"])] == []


def test_runs_on_two_data_sets_pair_within_the_one_most_of_them_share(tmp_path):
    """With runs of two data sets the caveat took every paired difference away, even between runs measured on
    the same images."""
    made = {}
    for name, dataset, seed in (("d1", "digits", 0), ("d2", "digits", 1), ("m", "mnist", 0)):
        made[name] = tmp_path / name
        kw = {"data_dir": str(tmp_path / "data")} if dataset == "mnist" else {}
        if dataset == "mnist":
            write_idx_set(tmp_path / "data" / "mnist", n_train=40, n_test=12)
        zoo.train("convae", dataset=dataset, epochs=1, seed=seed, out=made[name], log=quiet, progress=False, **TINY,
                  **kw)
        zoo.evaluate(made[name])
    result = zoo.compare(list(made.values()), "test_mse")
    assert "dataset differs: other test images" in result.caveat
    assert result.reference is not None and result.reference.name in (str(made["d1"]), str(made["d2"]))
    by_name = {r.name: r for r in result.runs}
    assert sum(r.paired is not None for r in result.runs) == 1 and by_name[str(made["m"])].paired is None
    assert any("measured on other test images" in n and "another data set" in n for n in by_name[str(made["m"])].notes)


def test_runs_validated_on_other_images_are_said_not_to_share_one_validation_loss(runs, tmp_path):
    """val_fraction 0.1 against 0.3: each val_loss over other images, ranked as one measure unremarked."""
    zoo.train("convae", dataset="digits", epochs=1, val_fraction=0.3, out=tmp_path / "v3", log=quiet,
              progress=False, **TINY)
    result = zoo.compare([runs["a"], tmp_path / "v3"])
    assert result.caveat == ("val_loss is not one measure across these runs (val_fraction differs: other "
                             "validation images)")
