"""hfhub22: a push replaces only what zoo published, never publicly where --private was asked, and its card loads
the branch it went to; a hub that lists no checksums is not called verified; failures name what failed."""

from __future__ import annotations

import json
import os
import re

import pytest

import test_hub
from conftest import assert_clean_error, assert_ok, invoke, run_zoo
from test_hub import hf_cache
from zoo.hub import Location, hf

server, hf_env = test_hub.server, test_hub.hf_env  # the loopback hub's fixtures

THEIRS = {"config.json": json.dumps({"architectures": ["BertModel"], "model_type": "bert"}).encode(),
          "model.safetensors": b"their weights", "README.md": b"# their model\n", "eval.json": b'{"their": 1}',
          "samples.png": b"\x89PNG their samples", "train.py": b"print(1)\n"}


def push(run, where, env, *extra):
    return run_zoo("push", run, where, *extra, env={**env, "HF_TOKEN": "zoo-secret"}, timeout=90)


# ------------------------------------------------------------------------------------------ 1: another's repository

@pytest.mark.parametrize("files", [THEIRS, {k: v for k, v in THEIRS.items() if k != "config.json"}],
                         ids=["another-librarys-model", "files-without-a-config"])
def test_a_push_refuses_a_repository_zoo_did_not_push_to_and_changes_nothing(server, hf_env, digits_run, files):
    server.seed("other/lab", files)
    before = server.repos["other/lab"].branches["main"]
    assert_clean_error(push(digits_run, "hf://other/lab", hf_env), "hf://other/lab@main holds files zoo did not push",
                       "refusing to replace them", "hf://ORG/ANOTHER-NAME")
    assert server.repos["other/lab"].branches["main"] == before  # no commit


def test_a_push_to_a_new_branch_of_another_librarys_repository_says_the_branch_starts_from_main(server, hf_env,
                                                                                              digits_run):
    """The refusal named main only: the branch asked for was not said, nor why main's files decide."""
    server.seed("other/lab", THEIRS)
    assert_clean_error(push(digits_run, "hf://other/lab", hf_env, "--revision", "zoo"),
                       "hf://other/lab@zoo (a new branch: it starts from main, and main) holds files zoo did not push")
    assert set(server.repos["other/lab"].branches) == {"main"}  # no branch made


def test_a_push_onto_a_repository_holding_only_a_readme_replaces_it(server, hf_env, digits_run):
    server.seed("me/new", {"README.md": b"# made on the Hub's page\n"})
    assert_ok(push(digits_run, "hf://me/new", hf_env))
    assert "model.safetensors" in server.files("me/new")


# ------------------------------------------------------------------------------------------ 2: --private

def test_a_private_push_to_an_existing_public_repository_is_refused_before_any_upload(server, hf_env, digits_run):
    assert_ok(push(digits_run, "hf://me/pub", hf_env))
    before = server.repos["me/pub"].branches["main"]
    assert_clean_error(push(digits_run, "hf://me/pub", hf_env, "--private", "-m", "again"),
                       "hf://me/pub exists and is public: --private cannot make it private", "update_repo_settings")
    assert server.repos["me/pub"].branches["main"] == before and not server.repos["me/pub"].private


# ------------------------------------------------------------------------------------------ 3: a branch

def test_a_push_to_a_branch_publishes_a_card_whose_commands_load_that_branch(server, hf_env, digits_run):
    assert_ok(push(digits_run, "hf://me/ae", hf_env))
    result = push(digits_run, "hf://me/ae", hf_env, "--revision", "dev")
    assert "note: committed to branch dev of hf://me/ae (its main branch is unchanged)" in assert_ok(result)
    assert re.search(r"pushed .* to hf://me/ae \(branch dev, commit [0-9a-f]{40}\)", result.stdout + result.stderr)
    card = server.files("me/ae", "dev")["README.md"].decode()
    assert 'zoo.load("hf://me/ae@dev")' in card and "zoo pull hf://me/ae@dev" in card
    assert "zoo eval hf://me/ae@dev" in card and not re.search(r"hf://me/ae(?!@dev)", card)
    assert "# ae: " in card  # its title names the model, not the branch
    assert "hf://me/ae@dev" not in server.files("me/ae", "main")["README.md"].decode()


# ------------------------------------------------------------------------------------------ 7: another run

def test_pushing_another_run_over_a_zoo_repository_says_so(server, hf_env, digits_run, digits_vae_run):
    assert "held a push of another run" not in assert_ok(push(digits_run, "hf://me/x", hf_env))
    assert "held a push of another run" not in assert_ok(push(digits_run, "hf://me/x", hf_env, "-m", "again"))
    created = json.loads((digits_run / "config.json").read_text())["created"]
    out = assert_ok(push(digits_vae_run, "hf://me/x", hf_env))
    assert f"note: hf://me/x@main held a push of another run (a convae run trained {created}): replaced" in out


# ------------------------------------------------------------------------------------------ 4: no checksums

def test_a_hub_that_lists_no_checksums_is_not_called_verified_and_damaged_weights_are_refused(
        server, hf_env, digits_run, tmp_path):
    assert_ok(push(digits_run, "hf://me/nc", hf_env))
    server.no_checksum, server.corrupt_get = True, {"model.safetensors"}
    result = run_zoo("pull", "hf://me/nc", env=hf_env, timeout=60)
    assert_clean_error(result, "model.safetensors of hf://me/nc is not intact", "nothing was kept")
    assert not list(hf_cache(tmp_path).rglob("snapshots/*/model.safetensors"))
    server.corrupt_get = set()
    out = assert_ok(run_zoo("pull", "hf://me/nc", env=hf_env, timeout=60))
    assert "lists no checksums for the files of hf://me/nc: README.md, config.json" in out
    said = [line for line in out.splitlines() if line.startswith("hf://me/nc:")][0]
    assert "verified model.safetensors;" in said and "not verified: README.md, config.json" in said
    again = [line for line in assert_ok(run_zoo("pull", "hf://me/nc", env=hf_env, timeout=60)).splitlines()
             if line.startswith("hf://me/nc:")][0]
    assert "already in the cache" in again and "verified model.safetensors;" in again and "not verified" in again


def test_a_cached_file_found_damaged_and_fetched_again_is_not_said_to_be_in_the_cache(
        server, hf_env, digits_run, tmp_path):
    assert_ok(push(digits_run, "hf://me/ae", hf_env))
    assert_ok(run_zoo("pull", "hf://me/ae", env=hf_env, timeout=60))
    blob = next(hf_cache(tmp_path).rglob("snapshots/*/model.safetensors")).resolve()
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    out = assert_ok(run_zoo("pull", "hf://me/ae", env=hf_env, timeout=60))
    assert "hf://me/ae: fetched" in out and "already in the cache" not in out


# ------------------------------------------------------------------------------------------ 5, 6: failures

def test_a_redirected_download_that_fails_names_the_host_that_failed(server, hf_env, digits_run):
    assert_ok(push(digits_run, "hf://me/f", hf_env))
    server.redirect_files = "http://127.0.0.1:1"
    out = assert_clean_error(run_zoo("pull", "hf://me/f", env=hf_env, timeout=60),
                             f"127.0.0.1:1, where the hub at {server.url} sends its downloads, cannot be reached")
    assert "Trying to resume" not in out and "Check the network and HF_ENDPOINT" not in out


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:99999", "http://[::1", "notaurl"])
def test_a_malformed_HF_ENDPOINT_is_a_usage_error(hf_env, digits_run, endpoint):
    for args in (("pull", "hf://me/x"), ("push", digits_run, "hf://me/x")):
        assert_clean_error(run_zoo(*args, env={**hf_env, "HF_ENDPOINT": endpoint}, timeout=60),
                           f"HF_ENDPOINT={endpoint!r} is not the address of a hub", code=2)


class _Answer(Exception):
    def __init__(self, status):
        super().__init__(f"Client error '{status}' for url 'http://hub/api/models/me/x'")
        self.response = type("Response", (), {"status_code": status})()


def test_a_refused_pull_asks_for_read_access_and_a_bare_404_for_the_address(hf_env):
    import huggingface_hub  # noqa: F401  (hub_error reads its errors and endpoint)

    loc = Location("hf", "me/x")
    assert hf.hub_error(_Answer(401), loc).hint.endswith("read access to it.")
    assert hf.hub_error(_Answer(403), loc, action="push to").hint.endswith("write access.")
    assert "Check HF_ENDPOINT" in hf.hub_error(_Answer(404), loc).hint


def test_an_unreadable_ZOO_HUB_MAX_BYTES_is_a_usage_error(folder_hub, monkeypatch):
    monkeypatch.setenv("ZOO_HUB_MAX_BYTES", "abc")
    result = invoke("pull", f"file://{folder_hub}")
    assert_clean_error(result, "ZOO_HUB_MAX_BYTES='abc' is not a number of bytes", code=2)



# ------------------------------------------------------------------------------------------ 8: a head's source

def test_a_head_fine_tuned_from_a_hub_branch_records_the_commit_it_was_copied_from(server, hf_env, digits_run,
                                                                                  tmp_path):
    assert_ok(push(digits_run, "hf://me/enc", hf_env))
    head = tmp_path / "head"
    assert_ok(run_zoo("finetune", "hf://me/enc", "--hidden", "8", "--epochs", "1", "--out", head, "--no-progress",
                      env=hf_env, timeout=300))
    recorded = json.loads((head / "config.json").read_text())["config"]["init_from"]
    assert re.fullmatch(r"hf://me/enc@[0-9a-f]{40}", recorded), recorded  # not the branch, which moves


def test_a_head_fine_tuned_from_a_run_loaded_off_a_hub_branch_records_the_commit_it_was_loaded_at(
        server, hf_env, digits_run, tmp_path):
    """zoo.finetune(zoo.load("hf://me/enc")) recorded the branch: only a source named by text was pinned."""
    import subprocess
    import sys

    assert_ok(push(digits_run, "hf://me/enc", hf_env))
    head = tmp_path / "head"
    script = ("import zoo\n"
              "run = zoo.load('hf://me/enc')\n"
              f"zoo.finetune(run, hidden=[8], epochs=1, progress=False, out={str(head)!r})\n"
              "print(run.source)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **hf_env})
    assert done.returncode == 0, done.stderr
    recorded = json.loads((head / "config.json").read_text())["config"]["init_from"]
    assert re.fullmatch(r"hf://me/enc@[0-9a-f]{40}", recorded), recorded
    assert done.stdout.splitlines()[-1] == "hf://me/enc"  # the caller's Run is left as it was loaded
