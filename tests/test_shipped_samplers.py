"""Catalogued models whose entry names a `sampler` ship it, fitted on their training codes, beside their
weights: `zoo generate NAME --sampler S` needs no training images (none are at hand in these tests), and
`zoo generate NAME` from the prior (or of a model with none) points to it."""

import pytest

from conftest import assert_clean_error, assert_ok, invoke, is_png
from zoo import registry

SHIPPED = {name: entry["sampler"] for name, entry in registry.weights().items() if "sampler" in entry}


def test_the_likelihood_models_whose_prior_samples_poorly_and_the_convaes_ship_a_sampler():
    assert SHIPPED == {"iwae-mnist": "gmm", "iwae50-mnist": "gmm", "piwae-mnist": "gmm",
                       "vampprior-mnist": "two-stage", "convae-mnist": "gmm", "convae-fashion-mnist": "maf"}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_a_shipped_sampler_draws_with_no_training_images_and_nothing_is_fitted(name, tmp_path):
    sampler = SHIPPED[name]
    assert (registry.weights_folder(name) / f"sampler-{sampler}.safetensors").is_file()
    result = invoke("generate", name, "--sampler", sampler, "--n", "4", "--out", tmp_path / "s.png")
    assert_ok(result)
    assert is_png(tmp_path / "s.png")
    assert "fitted the" not in result.stderr and "warning" not in result.stderr, result.stderr
    assert not list(tmp_path.glob("zoo-outputs/*/sampler-*"))  # read where it was shipped, not copied


def test_sampling_a_model_from_its_prior_points_to_its_shipped_sampler(tmp_path):
    result = invoke("generate", "piwae-mnist", "--n", "4", "--out", tmp_path / "p.png")
    assert_ok(result)
    assert "zoo generate piwae-mnist --sampler gmm" in result.stderr, result.stderr


def test_a_model_with_no_prior_names_its_shipped_sampler_when_asked_to_sample_by_itself(tmp_path):
    assert_clean_error(invoke("generate", "convae-fashion-mnist", "--n", "4", "--out", tmp_path / "c.png"),
                       "cannot sample by itself", "zoo generate convae-fashion-mnist --sampler maf (shipped with it")


def test_a_model_without_a_shipped_sampler_samples_its_prior_without_a_note(tmp_path):
    result = invoke("generate", "hvae-mnist", "--n", "4", "--out", tmp_path / "h.png")
    assert_ok(result)
    assert "--sampler" not in result.stderr, result.stderr


def test_info_says_which_sampler_ships_and_how_to_use_it():
    output = assert_ok(invoke("info", "iwae50-mnist"))
    assert "sampler: gmm, shipped with the weights: zoo generate iwae50-mnist --sampler gmm" in output, output
    assert 'the default iwae weights: a bare `iwae` names them (zoo eval iwae, zoo.load("iwae"))' in output
    assert "default: True" not in output


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_a_bundled_card_shows_how_to_sample_through_its_shipped_sampler(name):
    card = (registry.weights_folder(name) / "README.md").read_text()
    assert f"zoo generate {name} --sampler {SHIPPED[name]} --n 64" in card
