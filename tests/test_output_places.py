"""Where results go: beside a run the user owns; for a catalogued, downloaded or read-only model, into
./zoo-outputs/NAME/, never over the user's own files in the working directory."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import TINY, assert_clean_error, assert_ok, invoke, is_png, quiet, write_idx_set

import zoo


def test_outputs_of_a_catalogued_model_go_to_its_own_folder_and_spare_the_users_files(tmp_path):
    (tmp_path / "samples.png").write_bytes(b"the user's own picture")
    out = assert_ok(invoke("generate", "gan", "--n", "4"))
    assert "using the catalogued weights 'gan-mnist' for model 'gan'" in out
    assert "outputs go to zoo-outputs/gan-mnist/" in out
    assert is_png(tmp_path / "zoo-outputs" / "gan-mnist" / "samples-prior.png")  # a GAN: not its training's name
    assert (tmp_path / "samples.png").read_bytes() == b"the user's own picture"


def test_a_catalogued_model_with_out_writes_only_there_and_says_nothing_of_zoo_outputs(tmp_path):
    out = assert_ok(invoke("generate", "gan", "--n", "4", "--out", "mine.png"))
    assert is_png(tmp_path / "mine.png")
    assert "zoo-outputs" not in out and not (tmp_path / "zoo-outputs").exists()


def test_eval_of_a_catalogued_name_writes_eval_json_in_its_output_folder(tmp_path):
    result = zoo.evaluate("convae-mnist", save=True, limit=64, data_dir=str(_tiny_mnist(tmp_path)))
    written = Path(result["written"][0])
    assert written == tmp_path / "zoo-outputs" / "convae-mnist" / "eval.json"
    assert json.loads(written.read_text())["metrics"] == result["metrics"]
    assert not list(tmp_path.glob("*eval.json"))


def _tiny_mnist(tmp_path: Path) -> Path:
    """A data folder whose `mnist` is 64 random 28×28 images: enough to evaluate a catalogued MNIST model."""
    write_idx_set(tmp_path / "data" / "mnist", n_train=64, n_test=64)
    return tmp_path / "data"


def test_latent_out_into_another_run_never_replaces_its_csv(digits_run, vae_copy, tmp_path):
    (vae_copy / "x.csv").write_text("that run's own file")
    assert_clean_error(invoke("latent", digits_run, "--n", "50", "--method", "pca", "--out", vae_copy / "x.png"),
                       "would replace x.csv of another run")
    assert (vae_copy / "x.csv").read_text() == "that run's own file" and not (vae_copy / "x.png").exists()


def test_two_folder_hub_entries_of_the_same_name_keep_their_results_apart(digits_run, tmp_path):
    first, second = tmp_path / "hub1" / "ev", tmp_path / "hub2" / "ev"
    for dest in (first, second):
        assert_ok(invoke("push", digits_run, dest.as_uri()))
    written = [Path(zoo.evaluate(dest.as_uri(), limit=20)["written"][0]) for dest in (first, second)]
    assert written[0].parent != written[1].parent and all(w.parent.name.startswith("ev-") for w in written)
    assert all(json.loads(w.read_text())["limit"] == 20 for w in written)  # the first one's not replaced
    again = Path(zoo.evaluate(first.as_uri(), limit=20)["written"][0])
    assert again == written[0]  # the same entry finds its own folder again


def test_an_entry_pushed_over_by_another_run_gets_its_own_outputs_and_the_earlier_runs_stay(digits_run, tmp_path):
    """The results and samplers zoo kept for the run an entry held (an hours-long bound) are neither written over
    nor in the way (a sampler fitted on the other run's codes) when someone publishes another run there."""
    zoo.train("convae", dataset="digits", epochs=1, out=tmp_path / "other", log=quiet, progress=False, seed=7, **TINY)
    entry = (tmp_path / "hub" / "ev").as_uri()
    assert_ok(invoke("push", digits_run, entry))
    first = Path(zoo.evaluate(entry, limit=20)["written"][0])
    assert_ok(invoke("generate", entry, "--sampler", "gaussian", "--n", "4"))
    kept = first.read_bytes()
    assert_ok(invoke("push", tmp_path / "other", entry))
    second = Path(zoo.evaluate(entry, limit=30)["written"][0])
    assert second.parent != first.parent and first.read_bytes() == kept
    assert_ok(invoke("generate", entry, "--sampler", "gaussian", "--n", "4"))  # fitted on this run's codes
    assert (first.parent / "sampler-gaussian.safetensors").is_file()
    assert_ok(invoke("push", digits_run, entry))  # the first run again: its own results again
    assert Path(zoo.evaluate(entry, limit=20)["written"][0]) == first


def test_a_run_loaded_by_a_relative_path_is_still_found_after_the_working_directory_changes(run_copy, tmp_path,
                                                                                             monkeypatch):
    run = zoo.load("run")  # relative to tmp_path, the working directory
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert run.weights_changed() is None
    written = Path(zoo.evaluate(run, save=True)["written"][0])
    assert written == run_copy / "eval.json" and not (elsewhere / "zoo-outputs").exists()


def test_results_an_earlier_zoo_kept_under_the_old_name_are_taken_up_when_they_are_of_these_weights(
        digits_run, run_copy, tmp_path, capsys):
    """Before 2026-12-06 a folder hub's entry kept its results in ./zoo-outputs/NAME (now NAME-DIGEST)."""
    entry = tmp_path / "hub" / "ev"
    assert_ok(invoke("push", digits_run, entry.as_uri()))
    new = Path(zoo.evaluate(entry.as_uri())["written"][0]).parent
    old = tmp_path / "zoo-outputs" / "ev"
    new.rename(old)  # as the earlier zoo left it
    capsys.readouterr()
    compared = zoo.compare([entry.as_uri()])  # a reader finds them, moved into place
    assert f"moved {old} to {new}" in capsys.readouterr().err
    assert not old.exists() and (new / "eval.json").is_file() and compared.runs[0].test_metrics["mse"] > 0
    other = tmp_path / "hub2" / "ev"  # of other weights: left where it is
    zoo.train("convae", dataset="digits", epochs=1, out=tmp_path / "other", log=quiet, progress=False, seed=7, **TINY)
    assert_ok(invoke("push", tmp_path / "other", other.as_uri()))
    old.mkdir()
    (old / "eval.json").write_text((new / "eval.json").read_text())
    zoo.compare([other.as_uri()])
    assert (old / "eval.json").is_file()


def test_a_folder_hub_entry_named_by_its_path_is_left_as_pushed_and_shares_its_location_s_outputs(
        digits_run, tmp_path):
    entry = tmp_path / "hub" / "ev"
    assert_ok(invoke("push", digits_run, entry.as_uri()))
    before = sorted(p.name for p in entry.iterdir())
    out = assert_ok(invoke("eval", entry))
    assert f"{entry} is a folder hub's entry" in out and sorted(p.name for p in entry.iterdir()) == before
    by_path = Path(zoo.evaluate(entry)["written"][0])
    assert by_path == Path(zoo.evaluate(entry.as_uri())["written"][0])  # one model, one outputs folder
    assert by_path.parent.parent == tmp_path / "zoo-outputs"
    assert_ok(invoke("push", digits_run, entry.as_uri()))  # the owner can still publish over it
