"""Findings fixed in the twenty-second round (the last note's weak points and the walks' findings), each through
the CLI or the public API on real run folders."""

from __future__ import annotations

from conftest import assert_clean_error, assert_ok, invoke


def test_an_out_into_a_folder_hubs_entry_is_refused_and_writes_nothing_there(folder_hub, tmp_path):
    before = sorted(p.name for p in folder_hub.iterdir())
    for command in (["reconstruct", folder_hub, "--n", "4"], ["latent", folder_hub, "--method", "pca"]):
        result = invoke(*command, "--out", folder_hub / "mine.png")
        assert_clean_error(result, "inside a folder hub's entry", "only zoo push writes there")
    assert sorted(p.name for p in folder_hub.iterdir()) == before
    mine = tmp_path / "mine.png"  # elsewhere it is written
    assert_ok(invoke("reconstruct", folder_hub, "--n", "4", "--out", mine))
    assert mine.is_file()
