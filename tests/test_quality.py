"""Classifier-feature FID and KID."""

import numpy as np
import pytest

import zoo
from conftest import TINY, quiet
from zoo.quality import frechet_distance, kernel_inception_distance


def test_frechet_distance_of_gaussians():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(20000, 4)), rng.normal(size=(20000, 4))
    assert frechet_distance(a, b) < 0.01
    shifted = rng.normal(loc=2.0, size=(20000, 4))  # mean moved by 2 in each of 4 dims: 16
    assert frechet_distance(a, shifted) == pytest.approx(16, rel=0.02)
    wide = rng.normal(scale=2.0, size=(20000, 4))  # Tr(1 + 4 - 2·2) = 1 per dim
    assert frechet_distance(a, wide) == pytest.approx(4, rel=0.05)


def test_kid_is_near_zero_for_one_distribution_and_positive_otherwise():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(3000, 8)), rng.normal(size=(3000, 8))
    same, _ = kernel_inception_distance(a, b, subsets=10, subset_size=500)
    other, _ = kernel_inception_distance(a, b + 1.0, subsets=10, subset_size=500)
    assert abs(same) < 0.05 and other > 1.0


def test_sample_quality_of_a_vae_with_a_feature_network(tmp_path):
    feats = zoo.train("classifier", dataset="digits", epochs=1, out=tmp_path / "feat", log=quiet, progress=False,
                      **TINY).run_dir
    vae = zoo.train("vae", dataset="digits", epochs=1, out=tmp_path / "vae", log=quiet, progress=False,
                    **TINY).run_dir
    result = zoo.api.sample_quality(vae, features=str(feats), n=300)
    assert result["images"] == 300
    assert result["samples_vs_test"]["fid"] > result["floor_test_vs_train"]["fid"] >= 0
    assert "not comparable to Inception" in result["note"]
