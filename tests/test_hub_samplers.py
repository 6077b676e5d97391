"""A run's latent samplers fitted on its weights travel with it through a hub (a folder hub, and the
Hugging Face Hub's API on a loopback server): a pulled copy samples through them without fitting again.
Stale or damaged ones stay behind, said; an oversized one is skipped on the way in."""

from __future__ import annotations

from pathlib import Path

import pytest

import zoo
from conftest import assert_ok, invoke, is_png, quiet, run_zoo
from hubserver import HubServer
from zoo import hub as zhub
from zoo.hub import limits

GMM = "sampler-gmm.safetensors"


@pytest.fixture
def fitted_run(run_copy) -> Path:
    """The tiny digits run with a gmm sampler fitted on its training codes (saved in the run)."""
    assert_ok(invoke("generate", run_copy, "--sampler", "gmm", "--n", "4"))
    assert (run_copy / GMM).is_file()
    return run_copy


def test_a_sampler_fitted_on_the_weights_travels_through_a_folder_hub_and_is_not_refitted(fitted_run, tmp_path):
    dest = tmp_path / "hub" / "digits"
    pushed = zhub.push(fitted_run, f"file://{dest}")
    assert GMM in pushed.files and (dest / GMM).read_bytes() == (fitted_run / GMM).read_bytes()
    assert f"zoo generate file://{dest} --sampler gmm" in (dest / "README.md").read_text()  # the card says so
    result = invoke("generate", f"file://{dest}", "--sampler", "gmm", "--n", "4", "--out", tmp_path / "s.png")
    assert_ok(result)
    assert is_png(tmp_path / "s.png")
    assert "fitted the gmm sampler" not in result.stderr, result.stderr  # read from the pulled copy
    assert not list(Path.cwd().glob("zoo-outputs/*/sampler-*"))


def test_a_sampler_of_weights_trained_on_since_is_not_pushed(fitted_run, tmp_path):
    zoo.train(resume=fitted_run, epochs=3, log=quiet, progress=False)
    result = invoke("push", fitted_run, f"file://{tmp_path / 'hub'}")
    assert_ok(result)
    assert f"{GMM} is not pushed: it was fitted on other weights" in result.stderr
    assert not (tmp_path / "hub" / GMM).exists()


def test_a_sampler_of_another_run_is_not_pushed_and_said_to_be_another_runs(fitted_run, vae_copy, tmp_path):
    assert_ok(invoke("generate", vae_copy, "--sampler", "gmm", "--n", "4"))
    (fitted_run / GMM).write_bytes((vae_copy / GMM).read_bytes())  # copied over from another run
    result = invoke("push", fitted_run, f"file://{tmp_path / 'hub'}")
    assert_ok(result)
    assert f"{GMM} is not pushed: it was fitted on another run's codes (vae created " in result.stderr
    assert not (tmp_path / "hub" / GMM).exists()


def test_a_damaged_sampler_is_not_pushed_and_the_push_goes_on(fitted_run, tmp_path):
    data = bytearray((fitted_run / GMM).read_bytes())
    data[-2] ^= 0xFF
    (fitted_run / GMM).write_bytes(bytes(data))
    result = invoke("push", fitted_run, f"file://{tmp_path / 'hub'}")
    assert_ok(result)
    assert f"{GMM} is not pushed" in result.stderr
    assert (tmp_path / "hub" / "model.safetensors").is_file() and not (tmp_path / "hub" / GMM).exists()


def test_a_sampler_over_its_cap_is_skipped_and_the_model_still_loads(fitted_run, tmp_path, monkeypatch, capsys):
    dest = tmp_path / "hub" / "digits"
    zhub.push(fitted_run, f"file://{dest}")
    monkeypatch.setattr(limits, "SAMPLER_CAP", 100)
    run = zoo.load(f"file://{dest}")
    assert "a fitted latent sampler" in capsys.readouterr().err
    assert not (run.folder / GMM).exists() and (run.folder / "model.safetensors").is_file()


def test_only_sampler_files_join_the_files_a_hub_location_gives(tmp_path):
    names = ["config.json", "model.safetensors", GMM, "sampler-two-stage.safetensors", "sampler-gmm.bin",
             "samplers.safetensors", "notes-sampler-gmm.safetensors", "checkpoint.safetensors"]
    assert zhub.select_files(names, "here") == ["config.json", "model.safetensors", GMM,
                                                "sampler-two-stage.safetensors"]


def test_a_sampler_travels_through_the_hugging_face_hub(fitted_run, tmp_path, monkeypatch):
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    with HubServer() as server:
        env = {"HF_ENDPOINT": server.url, "HF_HUB_OFFLINE": "0", "ZOO_OFFLINE": "0", "HF_TOKEN": "t",
               "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
        assert_ok(run_zoo("push", fitted_run, "hf://zoo-test/digits-gmm", env=env, timeout=60))
        assert server.files("zoo-test/digits-gmm")[GMM] == (fitted_run / GMM).read_bytes()
        result = run_zoo("generate", "hf://zoo-test/digits-gmm", "--sampler", "gmm", "--n", "4",
                         "--out", tmp_path / "s.png", env=env, timeout=90)
    assert_ok(result)
    assert is_png(tmp_path / "s.png") and "fitted the gmm sampler" not in result.stderr, result.stderr


def test_a_runs_own_card_shows_its_fitted_samplers_once_rewritten(fitted_run):
    assert_ok(invoke("eval", fitted_run))  # rewrites the card, as the end of a training does
    assert f"zoo generate {fitted_run} --sampler gmm --n 64" in (fitted_run / "README.md").read_text()


def test_a_pulled_sampler_of_another_run_is_not_used_and_one_fitted_on_this_runs_codes_instead(folder_hub, vae_copy):
    """zoo's copy of a published entry is never changed: the user is not told to delete a file in zoo's cache."""
    assert_ok(invoke("generate", vae_copy, "--sampler", "gmm", "--n", "4"))
    (folder_hub / GMM).write_bytes((vae_copy / GMM).read_bytes())  # an entry assembled by hand, wrongly
    result = invoke("generate", folder_hub.as_uri(), "--sampler", "gmm", "--n", "4")
    out = assert_ok(result)
    assert "the 'gmm' sampler published with these weights was fitted on another run's codes (vae created " in out
    assert "fitted the gmm sampler" in out and "rm " not in out
    assert (folder_hub / GMM).read_bytes() == (vae_copy / GMM).read_bytes()
    assert list(Path.cwd().glob(f"zoo-outputs/*/{GMM}"))  # this run's own, kept with its outputs
