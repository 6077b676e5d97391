"""The pretrained weights catalogued in registry.toml and bundled with the package."""

import hashlib
import shutil
from pathlib import Path

import pytest

import zoo
from conftest import assert_clean_error, assert_ok, invoke, real_data
from zoo import registry


def catalogue():
    return registry.weights()


def test_every_catalogued_bundle_is_intact_and_loads():
    assert catalogue(), "registry.toml catalogues no weights"
    for name, entry in catalogue().items():
        folder = registry.weights_folder(name)
        assert (folder / "config.json").is_file() and (folder / "README.md").is_file(), name
        digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
        assert digest == entry["sha256"], name
        assert entry.get("command", "").startswith("zoo "), name
        net = zoo.load(name)
        assert net.name == entry["model"] and net.record["train"]["dataset"] == entry["dataset"]


def test_catalogued_metrics_match_what_eval_measures_now():
    """A cheap one: the MNIST feature network's test accuracy, recomputed."""
    data_dir = real_data("mnist")
    entry = catalogue()["features-mnist"]
    result = zoo.evaluate("features-mnist", data_dir=str(data_dir), save=False)
    assert result["metrics"]["accuracy"] == pytest.approx(entry["metrics"]["accuracy"], abs=1e-4)


def test_shipped_evaluations_measured_the_bundled_weights_and_are_the_catalogues_metrics():
    """Bundled weights may ship their eval.json with each image's values (for `zoo compare`'s pairs): it
    measured these very weights on the whole test split, and the catalogue and card show its figures."""
    from zoo.runs import checkpoint as ckpt
    from zoo.runs import eval_images

    shipped = [name for name in catalogue() if (registry.weights_folder(name) / "eval.json").exists()]
    assert {"iwae-mnist", "iwae50-mnist", "piwae-mnist", "vampprior-mnist", "hvae-mnist"} <= set(shipped)
    for name in shipped:
        folder = registry.weights_folder(name)
        result, why = ckpt.read_eval(folder)
        assert why is None and result["split"] == "test" and result["limit"] is None, name
        values, why = eval_images.read(folder, result)
        assert why is None and all(v.shape == (result["images"],) for v in values.values()), name
        for metric, value in catalogue()[name]["metrics"].items():
            assert value == pytest.approx(result["metrics"][metric], rel=1e-5), (name, metric)
        assert f"nll_iwae_k1000_nats, value: {catalogue()[name]['metrics']['nll_iwae_k1000_nats']}" in \
            (folder / "README.md").read_text(), name


def test_list_pretrained_and_info_by_name():
    out = assert_ok(invoke("list", "--pretrained"))
    assert "features-mnist" in out and "bundled" in out
    out = assert_ok(invoke("info", "features-mnist"))
    assert "classifier" in out and "accuracy" in out
    assert "vae-mnist" in assert_ok(invoke("pretrained", "--model", "vae"))
    # a typo, or a weights name where a model goes, was an empty list and exit code 0
    assert_clean_error(invoke("pretrained", "--model", "vea"), "unknown model 'vea'")
    assert_clean_error(invoke("pretrained", "--model", "vae-mnist"), "is the name of catalogued weights",
                       "zoo pretrained vae-mnist")


def test_a_tampered_bundle_is_refused(tmp_path, monkeypatch):
    """A bundled file whose sha256 differs from the catalogue never loads."""
    original = registry.weights_folder("features-mnist")
    fake_pkg = tmp_path / "pkg"
    shutil.copytree(original, fake_pkg / "weights" / "features-mnist")
    weights = fake_pkg / "weights" / "features-mnist" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    monkeypatch.setattr(registry, "weights_folder", lambda name: fake_pkg / "weights" / name)
    assert_clean_error(invoke("eval", "features-mnist"), "sha256")


def test_names_of_models_presets_and_folders_are_told_apart(tmp_path, monkeypatch):
    """zoo info of a folder named like catalogued weights described the weights while every other command used the
    folder; a model's or a preset's name given where weights belong said nothing of what it is."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(Path(registry.__file__).parent / "weights" / "convae-mnist", tmp_path / "vae-mnist")
    result = invoke("info", "vae-mnist")
    assert "a convae run" in assert_ok(result) and "note: vae-mnist is the run folder here" in result.stderr
    assert_clean_error(invoke("pretrained", "vae"), "'vae' is a model, not weights", "--model vae")
    assert_clean_error(invoke("pretrained", "gan-mnist", "--model", "vae"), "weights of model 'gan', not 'vae'")
    assert_clean_error(invoke("eval", "convae-lab"), "it names a preset of model 'convae'",
                       "zoo train convae --preset convae-lab")
    shown = assert_ok(invoke("info", "convae-lab"))  # a preset is shown: its model, source and values
    assert "convae-lab: a preset of model convae" in shown and "latent_dim=4" in shown and "source: docs/" in shown
    with pytest.raises(zoo.errors.UnknownModelError, match="names a preset of model 'convae'") as refused:
        zoo.model_info("convae-lab")
    assert "Catalogued weights of that name" not in str(refused.value)
    assert_clean_error(invoke("cv", "vae", "--preset", "convae-lab", "--dataset", "digits"),
                       "preset 'convae-lab' is for model 'convae', not 'vae'", "zoo info vae lists them")
    with pytest.raises(zoo.errors.ConfigError, match="preset='' names no preset"):
        zoo.train("vae", preset="", dataset="digits", out=tmp_path / "never")
