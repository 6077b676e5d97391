"""Findings fixed in the twenty-third round (the last note's weak points and the walks' findings), each through
the CLI or the public API on real run folders."""

from __future__ import annotations

from conftest import TINY_SET, assert_ok, invoke


def test_iterative_weights_with_one_pass_are_said_to_have_no_effect(tmp_path):
    """With iterative_passes 1 the loss is the plain one: a weight given for it was dropped without a word."""
    out = assert_ok(invoke("train", "convae", "--dataset", "digits", "--epochs", "1", *TINY_SET, "--set",
                           "iterative_weights=0.5", "--out", tmp_path / "a"))
    assert "note: iterative_weights=0.5 has no effect with iterative_passes 1" in out
    out = assert_ok(invoke("train", "convae", "--dataset", "digits", "--epochs", "1", *TINY_SET, "--set",
                           "iterative_weights=0.5", "--set", "iterative_passes=2", "--out", tmp_path / "b"))
    assert "has no effect" not in out
