"""The hub: push and pull through huggingface-hub's real client talking HTTP to a Hub-compatible server on
loopback (tests/hubserver.py), folder hubs, catalogued pretrained weights, and every refusal.

huggingface-hub reads HF_ENDPOINT, HF_HUB_OFFLINE and its time-outs when it is imported, so everything
that talks to the server runs in a subprocess (`python -m zoo ...`) with those set; folder hubs and the
catalogue are tested in-process. Every network wait is bounded by a 2 s time-out."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from safetensors.torch import save_file

import zoo
from conftest import assert_clean_error, assert_ok, assert_same_tensors, invoke, is_png, run_zoo, weights
from hubserver import HubServer
from zoo import hub as zhub
from zoo.api import generate
from zoo.errors import RunError

REPO_ID = "zoo-test/digits-ae"
LIMIT = "2"  # seconds: HF_HUB_ETAG_TIMEOUT and HF_HUB_DOWNLOAD_TIMEOUT


@pytest.fixture
def server():
    with HubServer() as hub:
        yield hub


@pytest.fixture
def hf_env(server, monkeypatch):
    """The environment of a zoo process that talks to `server` (the test's own caches come from conftest)."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    return {"HF_ENDPOINT": server.url, "HF_HUB_OFFLINE": "0", "ZOO_OFFLINE": "0", "HF_HUB_ETAG_TIMEOUT": LIMIT,
            "HF_HUB_DOWNLOAD_TIMEOUT": LIMIT, "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}


def last_line(result) -> str:
    assert_ok(result)
    return result.stdout.strip().splitlines()[-1]


def run_bytes(run: Path, *extra: str) -> dict[str, bytes]:
    return {name: (Path(run) / name).read_bytes() for name in ("config.json", "model.safetensors", *extra)}


def hf_cache(tmp_path: Path) -> Path:
    return tmp_path / "xdg-cache" / "huggingface" / "hub"


# ------------------------------------------------------------------------------------------ the Hugging Face Hub

def test_push_pull_pinned_revision_and_offline_load(server, hf_env, run_copy, tmp_path):
    env = {**hf_env, "HF_TOKEN": "zoo-secret"}
    v1 = run_bytes(run_copy)
    first = last_line(run_zoo("push", run_copy, f"hf://{REPO_ID}", "--private", env=env, timeout=60))
    sha1 = re.fullmatch(rf"hf://{REPO_ID}@([0-9a-f]{{40}})", first)[1]

    repo = server.repos[REPO_ID]
    assert repo.private and repo.branches["main"] == sha1
    assert "Bearer zoo-secret" in server.authorizations
    files = server.files(REPO_ID)
    assert {"config.json", "model.safetensors", "README.md", "reconstructions.png", "loss.png"} <= set(files)
    assert "checkpoint.safetensors" not in files and "metrics.jsonl" in files  # the training log, not the resume state
    assert files["model.safetensors"] == v1["model.safetensors"] and files["config.json"] == v1["config.json"]
    card = files["README.md"].decode()
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["library_name"] == "zoo" and meta["license"] and "convae" in meta["tags"]
    assert meta["datasets"] == ["digits"] and "val_loss" in meta["zoo"]["training_metrics"]
    assert f'zoo.load("hf://{REPO_ID}")' in card and "![reconstructions.png](reconstructions.png)" in card
    assert "## Training configuration" in card and "## Training metrics" in card

    # A second version, then pull: main is the new one, the first commit still gives the first.
    state = weights(run_copy / "model.safetensors")
    save_file({k: v + 1 for k, v in state.items()}, str(run_copy / "model.safetensors"))
    v2 = run_bytes(run_copy)
    second = last_line(run_zoo("push", run_copy, f"hf://{REPO_ID}", env=env, timeout=60))
    sha2 = second.rsplit("@", 1)[1]
    assert sha2 != sha1 and server.files(REPO_ID)["model.safetensors"] == v2["model.safetensors"]

    assert_clean_error(run_zoo("pull", f"hf://{REPO_ID}", env=hf_env, timeout=30),  # private: needs the token
                       f"repository {REPO_ID} not found", "HF_TOKEN")
    latest = Path(last_line(run_zoo("pull", f"hf://{REPO_ID}", env=env, timeout=30)))
    assert run_bytes(latest) == v2 and latest.name == sha2
    pinned = Path(last_line(run_zoo("pull", f"hf://{REPO_ID}@{sha1}", env=env, timeout=30)))
    assert run_bytes(pinned) == v1 and pinned.name == sha1
    assert (pinned / "README.md").is_file() and (pinned / "reconstructions.png").is_file()
    assert zhub.is_managed(pinned)

    # Offline, with the server gone: what was pulled loads, by commit and by branch.
    server.stop()
    offline = {**env, "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "samples.png"
    assert_ok(run_zoo("generate", f"hf://{REPO_ID}@{sha1}", "--sampler", "standard-normal", "--n", "4",
                      "--out", out, env=offline, timeout=90))
    assert is_png(out)
    assert Path(last_line(run_zoo("pull", f"hf://{REPO_ID}", env=offline, timeout=30))) == latest
    assert_clean_error(run_zoo("pull", "hf://zoo-test/never-pulled", env=offline, timeout=30),
                       "not in the local cache", "offline")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


FAILURES = {
    # id: (the repository's files from the run's, server mode, source, expected fragments)
    "missing-repo": (None, "ok", "hf://zoo-test/nope", ["repository zoo-test/nope not found"]),
    "missing-revision": (None, "ok", f"hf://{REPO_ID}@v9", [f"revision 'v9' not found in {REPO_ID}"]),
    "server-error": (None, "error500", f"hf://{REPO_ID}", ["server error (500)"]),
    "hanging-server": (None, "hang", f"hf://{REPO_ID}", ["did not answer within 2 s"]),
    "network-down": (None, "down", f"hf://{REPO_ID}", ["cannot reach the hub"]),
    "offline": (None, "offline", f"hf://{REPO_ID}", ["not in the local cache", "offline"]),
    "pickle-only": (lambda f: {"config.json": f["config.json"], "pytorch_model.bin": b"\x80\x04pickle"}, "ok",
                    f"hf://{REPO_ID}", ["pytorch_model.bin", "zoo only loads safetensors"]),
    "unsafe-names": (lambda f: {**f, "../../escape.safetensors": b"x", "sub\\evil.png": b"x"}, "ok",
                     f"hf://{REPO_ID}", ["unsafe file names", "../../escape.safetensors"]),
    "corrupt-weights": (lambda f: {**f, "model.safetensors": b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all"},
                        "ok", f"hf://{REPO_ID}", ["not a valid safetensors file"]),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_hub_failures_end_in_one_clear_message(case, server, hf_env, digits_run, tmp_path):
    change, mode, source, fragments = FAILURES[case]
    files = run_bytes(digits_run)
    server.seed(REPO_ID, change(files) if change else files)
    env = dict(hf_env)
    if mode == "down":
        env["HF_ENDPOINT"] = f"http://127.0.0.1:{_closed_port()}"
    elif mode == "offline":
        env["HF_HUB_OFFLINE"] = "1"
    else:
        server.mode = mode
    start = time.monotonic()
    result = run_zoo("pull", source, env=env, timeout=60)
    assert_clean_error(result, *fragments)
    assert time.monotonic() - start < 30
    assert not list((tmp_path / "xdg-cache" / "zoo" / "hub").rglob("verified/*.json"))  # nothing recorded as good
    if case in ("pickle-only", "unsafe-names"):  # refused before anything was downloaded
        assert not [p for p in hf_cache(tmp_path).rglob("*") if p.is_file() and "snapshots" in p.parts]


def test_interrupted_download_leaves_nothing_that_loads(server, hf_env, digits_run, tmp_path):
    server.seed(REPO_ID, run_bytes(digits_run))
    server.short_get = {"model.safetensors"}  # the body ends half-way
    assert_clean_error(run_zoo("pull", f"hf://{REPO_ID}", env=hf_env, timeout=60), "download ended early")
    cache = hf_cache(tmp_path)
    assert not list(cache.rglob("model.safetensors")) and not list(cache.rglob("*.incomplete"))
    assert_clean_error(run_zoo("pull", f"hf://{REPO_ID}", env={**hf_env, "HF_HUB_OFFLINE": "1"}, timeout=30),
                       "not in the local cache")
    server.short_get = set()
    folder = Path(last_line(run_zoo("pull", f"hf://{REPO_ID}", env=hf_env, timeout=30)))
    assert run_bytes(folder) == run_bytes(digits_run)


def test_cached_file_changed_after_download_is_refused_offline_and_fetched_again_online(server, hf_env, digits_run):
    server.seed(REPO_ID, run_bytes(digits_run))
    folder = Path(last_line(run_zoo("pull", f"hf://{REPO_ID}", env=hf_env, timeout=30)))
    blob = (folder / "model.safetensors").resolve()
    blob.write_bytes(blob.read_bytes()[:-8] + b"tampered")
    assert_clean_error(run_zoo("pull", f"hf://{REPO_ID}", env={**hf_env, "HF_HUB_OFFLINE": "1"}, timeout=30),
                       "changed after zoo verified it")
    again = Path(last_line(run_zoo("pull", f"hf://{REPO_ID}", env=hf_env, timeout=30)))
    assert run_bytes(again) == run_bytes(digits_run)
    server.mode = "error500"  # the hub in trouble: the copy verified before stands in, with a note
    result = run_zoo("pull", f"hf://{REPO_ID}", env=hf_env, timeout=30)
    assert Path(last_line(result)) == again and "server error (500); using the copy verified before" in result.stderr


def test_a_config_naming_an_unknown_plugin_is_refused_through_the_hub(server, hf_env, digits_run, tmp_path):
    files = run_bytes(digits_run)
    files["config.json"] = files["config.json"].replace(b'"model": "convae"', b'"model": "nosuchmodel"', 1)
    server.seed("zoo-test/foreign", files)
    result = run_zoo("generate", "hf://zoo-test/foreign", "--sampler", "standard-normal", "--n", "4",
                     "--out", tmp_path / "x.png", env=hf_env, timeout=90)
    assert_clean_error(result, "'nosuchmodel'", "not installed")


def test_a_second_push_removes_what_the_first_left_and_it_leaves_out_but_not_the_repositorys_own_files(
        server, hf_env, run_copy):
    env = {**hf_env, "HF_TOKEN": "zoo-secret"}
    assert_ok(invoke("eval", run_copy))
    assert_ok(invoke("generate", run_copy, "--sampler", "gmm", "--n", "4"))
    assert_ok(run_zoo("push", run_copy, f"hf://{REPO_ID}", env=env, timeout=60))
    assert {"eval.json", "sampler-gmm.safetensors", "samples-gmm.png"} <= set(server.files(REPO_ID))
    server.seed(REPO_ID, {**server.files(REPO_ID), "NOTES.md": b"the team's own notes"})
    assert_ok(invoke("train", "--resume", run_copy, "--epochs", "3", "--no-progress"))  # other weights now
    result = run_zoo("push", run_copy, f"hf://{REPO_ID}", env=env, timeout=60)
    out = assert_ok(result)
    assert "note: removed from hf://zoo-test/digits-ae@main what an earlier push left and this one does not hold: " \
           "eval-images.safetensors, eval.json, sampler-gmm.safetensors, samples-gmm.png" in out
    files = server.files(REPO_ID)
    assert not {"eval.json", "eval-images.safetensors", "sampler-gmm.safetensors", "samples-gmm.png"} & set(files)
    assert files["NOTES.md"] == b"the team's own notes" and ".gitattributes" in files  # not zoo's: they stay
    assert files["model.safetensors"] == (run_copy / "model.safetensors").read_bytes()


def test_one_commit_named_by_branch_by_commit_or_by_its_cached_path_keeps_its_results_in_one_folder(
        server, hf_env, digits_run):
    """An hours-long bound measured on hf://REPO is found again (not measured again) under hf://REPO@main, the
    commit, and the path `zoo pull` prints: all four are the same weights."""
    env = {**hf_env, "HF_TOKEN": "zoo-secret"}
    commit = last_line(run_zoo("push", digits_run, f"hf://{REPO_ID}", env=env, timeout=60)).rsplit("@", 1)[1]
    cached = last_line(run_zoo("pull", f"hf://{REPO_ID}", env=env, timeout=30))
    for source in (f"hf://{REPO_ID}", f"hf://{REPO_ID}@main", f"hf://{REPO_ID}@{commit}", cached):
        assert_ok(run_zoo("eval", source, "--limit", "20", env=env, timeout=90))
    folders = sorted(p.name for p in (Path.cwd() / "zoo-outputs").iterdir())
    assert folders == [f"zoo-test--digits-ae@{commit[:12]}"]


def test_push_to_a_hanging_hub_times_out_cleanly(server, hf_env, digits_run):
    server.mode = "hang"
    start = time.monotonic()
    result = run_zoo("push", digits_run, f"hf://{REPO_ID}", env=hf_env, timeout=90)
    assert_clean_error(result, "cannot push to", "did not answer within 2 s")
    assert time.monotonic() - start < 45



@pytest.mark.parametrize("flag", ["HF_HUB_OFFLINE", "ZOO_OFFLINE"])
def test_a_push_offline_says_it_needs_the_network_and_not_that_a_pull_would_help(server, hf_env, digits_run, flag):
    result = run_zoo("push", digits_run, f"hf://{REPO_ID}", env={**hf_env, flag: "1"}, timeout=60)
    said = assert_clean_error(result, f"cannot push to hf://{REPO_ID}: zoo is offline", "Unset them")
    assert "zoo pull" not in said and REPO_ID not in server.repos  # nothing was asked of the hub


def test_a_hub_that_stalls_mid_pull_ends_the_pull_within_the_limit_in_one_message(server, hf_env, digits_run):
    """huggingface-hub would try a stalled file's metadata again with 60 s and five more tries: minutes."""
    env = {**hf_env, "HF_TOKEN": "zoo-secret"}
    assert_ok(run_zoo("push", digits_run, f"hf://{REPO_ID}", env=env, timeout=60))
    server.mode = "hang-files"  # the repository's listing answers, its files do not
    start = time.monotonic()
    result = run_zoo("pull", f"hf://{REPO_ID}", env=env, timeout=90)
    assert_clean_error(result, f"cannot fetch hf://{REPO_ID}", "did not answer within 2 s")
    assert "Retrying" not in result.stderr and time.monotonic() - start < 20
    server.released.set()


# ------------------------------------------------------------------------------------------ folder hubs

def test_folder_hub_push_pull_load(digits_run, run_copy, tmp_path):
    dest = tmp_path / "team" / "hub" / "digits"
    pushed = zhub.push(digits_run, f"file://{dest}")
    assert pushed.location == f"file://{dest}"
    assert sorted(p.name for p in dest.iterdir()) == [".zoo-pushed.json", "README.md", "config.json", "loss.png",
                                                      "metrics.jsonl", "model.safetensors", "reconstructions.png"]
    assert [p.name for p in dest.parent.iterdir()] == ["digits"]  # no temporary folder left behind
    assert yaml.safe_load((dest / "README.md").read_text().split("---\n")[1])["library_name"] == "zoo"

    run = zoo.load(f"file://{dest}")
    assert_same_tensors(run.model.state_dict(), weights(digits_run / "model.safetensors"))
    assert run.folder != dest and zhub.is_managed(run.folder) and not zhub.is_managed(digits_run)
    # default outputs go to ./zoo-outputs/NAME, not into the cache copy or the shared folder
    written = generate(f"file://{dest}", n=4, sampler="standard-normal")
    assert written.parent.parent == Path.cwd() / "zoo-outputs" and is_png(written)
    assert re.fullmatch(r"digits-[0-9a-f]{8}", written.parent.name)  # the entry's name and where it is
    assert not (run.folder / written.name).exists() and not (dest / written.name).exists()

    # A second push replaces the folder as a whole; loading it gives the new weights.
    state = weights(run_copy / "model.safetensors")
    save_file({k: v * 0 for k, v in state.items()}, str(run_copy / "model.safetensors"))
    out = assert_ok(invoke("push", run_copy, f"file://{dest}"))
    assert f"file://{dest}" in out
    assert_same_tensors(zoo.load(f"file://{dest}").model.state_dict(), weights(run_copy / "model.safetensors"))
    folder = Path(assert_ok(invoke("pull", f"file://{dest}")).strip().splitlines()[-1])
    assert zhub.is_managed(folder) and run_bytes(folder) == run_bytes(run_copy)

    # the path `zoo pull` prints is zoo's copy, not the user's run: results on it go to ./zoo-outputs too
    before = run_bytes(folder)
    result = invoke("eval", folder)
    assert_ok(result)
    assert f"{folder} is a copy zoo manages" in result.output
    assert len(list(Path.cwd().glob(f"zoo-outputs/{folder.name}-*/eval.json"))) == 1
    assert run_bytes(folder) == before and not (folder / "eval.json").exists()
    (Path.cwd() / "link").symlink_to(folder)  # a link is named by the folder it names
    assert_ok(invoke("eval", "link"))
    assert not (Path.cwd() / "zoo-outputs" / "link").exists()
    names, cwd = sorted(p.name for p in folder.iterdir()), Path.cwd()
    os.chdir(folder)  # from inside the copy, nowhere is the user's to write
    try:
        assert_clean_error(invoke("eval", "."), "is inside a folder zoo manages", code=1)
    finally:
        os.chdir(cwd)
    assert sorted(p.name for p in folder.iterdir()) == names


def _folder(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir(parents=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


def test_folder_hub_refusals(digits_run, tmp_path):
    good = run_bytes(digits_run)
    cases = {
        "pickle": ({"config.json": good["config.json"], "model.pt": b"\x80\x04"}, "zoo only loads safetensors"),
        "ckpt": ({"config.json": good["config.json"], "last.ckpt": b"PK"}, "last.ckpt"),
        "no-config": ({"model.safetensors": good["model.safetensors"]}, "has no config.json"),
        "corrupt": ({**good, "model.safetensors": good["model.safetensors"][:100]}, "truncated"),
        "backslash": ({**good, "a\\b.png": b"x"}, "unsafe file names"),
    }
    for case, (files, fragment) in cases.items():
        with pytest.raises(zhub.HubError, match=re.escape(fragment)):
            zhub.resolve(f"file://{_folder(tmp_path / case, files)}")
    with pytest.raises(zhub.HubError, match="no folder hub at"):
        zoo.load(f"file://{tmp_path / 'nothing-here'}")

    foreign = _folder(tmp_path / "foreign", {**good, "config.json": good["config.json"].replace(
        b'"model": "convae"', b'"model": "nosuchmodel"', 1)})
    with pytest.raises(RunError, match="'nosuchmodel', which is not installed"):
        zoo.load(f"file://{foreign}")
    unknown_key = _folder(tmp_path / "unknown-key", {**good, "config.json": good["config.json"].replace(
        b'"latent_dim"', b'"latent_dimm"', 1)})
    with pytest.raises(zhub.HubError, match="does not describe a convae that zoo builds .*latent_dimm"):
        zoo.load(f"file://{unknown_key}")  # an edited config.json is not fetched as a verified copy
    assert_clean_error(invoke("pull", f"file://{tmp_path / 'pickle'}"), "zoo only loads safetensors")

    # push never replaces a folder that is not a zoo model, and needs a finished run
    other = _folder(tmp_path / "photos", {"cat.jpg": b"\xff\xd8"})
    assert_clean_error(invoke("push", digits_run, f"file://{other}"), "not a folder hub that `zoo push` made")
    assert (other / "cat.jpg").is_file()
    half = _folder(tmp_path / "half-run", {"config.json": good["config.json"]})
    assert_clean_error(invoke("push", half, f"file://{tmp_path / 'dest'}"), "has no model.safetensors")
    assert_clean_error(invoke("push", digits_run, f"file://{tmp_path / 'dest'}", "--revision", "v2"),
                       "keeps one version")


@pytest.mark.parametrize("source, fragment", [
    ("hf://just-a-name", "not a Hugging Face Hub location"),
    ("hf://org/name@../main", "is not a revision"),
    ("hf://org/../name", "not a Hugging Face Hub location"),
    ("file://", "not a folder hub location"),
    ("s3://bucket/x", "not a hub location"),
])
def test_malformed_locations(source, fragment):
    with pytest.raises(zhub.HubError, match=re.escape(fragment)):
        zhub.parse(source)


def test_a_percent_encoded_file_uri_names_the_folder_it_encodes(digits_run, tmp_path):
    dest = tmp_path / "team hub" / "digits"
    assert "%20" in dest.as_uri()  # what Path.as_uri() and a browser's address bar give
    zhub.push(digits_run, dest.as_uri())
    assert (dest / "model.safetensors").is_file() and not (tmp_path / "team%20hub").exists()
    assert_same_tensors(zoo.load(dest.as_uri()).model.state_dict(), weights(digits_run / "model.safetensors"))
    odd = tmp_path / "v@1 50%"  # the location push prints loads the folder it wrote, whatever its name holds
    pushed = zhub.push(digits_run, odd.as_uri())
    assert (odd / "model.safetensors").is_file() and zoo.load(pushed.location).folder != odd
    with pytest.raises(zhub.HubError, match="NUL character"):
        zhub.parse("file:///tmp/a%00b")


def test_file_names_a_hub_may_list():
    assert all(zhub.safe_name(n) for n in ("model.safetensors", "images/a.png", "v1.2.json"))
    assert not any(zhub.safe_name(n) for n in ("../x", "a/../../x", "/etc/passwd", "a\\b", "C:evil", "", "a\nb", 3))
    assert zhub.select_files(["config.json", "model.safetensors", "pytorch_model.bin", "README.md", "x.txt"],
                             "here") == ["config.json", "model.safetensors", "README.md"]


# ------------------------------------------------------------------------------------------ the catalogue

@pytest.fixture
def catalogue(tmp_path, monkeypatch):
    """Add [weights.NAME] tables to a catalogue file of the user's ($ZOO_CATALOG); returns its path."""
    path = tmp_path / "my-catalogue.toml"
    path.write_text("")
    monkeypatch.setenv("ZOO_CATALOG", str(path))

    def add(name: str, **entry):
        metrics = entry.pop("metrics", {})
        lines = [f"\n[weights.{name}]"] + [f"{k} = {_toml(v)}" for k, v in entry.items()]
        if metrics:
            lines += [f"[weights.{name}.metrics]"] + [f"{k} = {_toml(v)}" for k, v in metrics.items()]
        with open(path, "a") as fh:
            fh.write("\n".join(lines) + "\n")
        return path

    return add


def _toml(value) -> str:
    return f'"{value}"' if isinstance(value, (str, Path)) else repr(value)


def test_a_users_catalogued_folder_is_verified_listed_and_described(catalogue, digits_run, tmp_path):
    bundled = Path(shutil.copytree(digits_run, tmp_path / "bundled"))
    digest = zhub.file_sha256(bundled / "model.safetensors")
    catalogue("digits-ae", model="convae", dataset="digits", path=bundled, sha256=digest,
              command="zoo train convae --dataset digits --epochs 2", metrics={"mse": 0.0123, "psnr": 19.5})

    assert_same_tensors(zoo.load("digits-ae").model.state_dict(), weights(digits_run / "model.safetensors"))
    assert zhub.pull("digits-ae")["how"] == "local"  # not "bundled with zoo": the user's own entry
    listing = assert_ok(invoke("pretrained"))
    assert re.search(r"digits-ae\s+convae\s+digits\s+local\s+mse 0.01230, psnr 19.50", listing), listing
    info = assert_ok(invoke("pretrained", "digits-ae"))
    assert digest in info and "zoo train convae --dataset digits" in info and "0.0123" in info
    assert f"where: {bundled}" in info and "(in $ZOO_CATALOG)" in info and "bundled with zoo" not in info
    assert_clean_error(invoke("pretrained", "--model", "tinyae"), "unknown model 'tinyae'")  # not an empty list
    assert zhub.catalogue_info("digits-ae")["available"] == "local"
    assert_clean_error(invoke("pretrained", "digits-ea"), "no pretrained weights named 'digits-ea'", "digits-ae")

    (bundled / "model.safetensors").write_bytes(b"\0" * 16)
    with pytest.raises(zhub.HubError, match="do not match their catalogued sha256"):
        zoo.load("digits-ae")
    assert_clean_error(invoke("pull", "digits-ae"), "do not match their catalogued sha256")


def test_a_catalogue_entry_naming_another_model_or_dataset_than_its_weights_is_refused(catalogue, digits_run, tmp_path):
    bundled = Path(shutil.copytree(digits_run, tmp_path / "bundled"))
    catalogue("digits-mislabelled", model="vae", dataset="digits", path=bundled,
              sha256=zhub.file_sha256(bundled / "model.safetensors"))
    catalogue("digits-on-mnist", model="convae", dataset="mnist", path=bundled)
    with pytest.raises(RunError, match="catalogues 'digits-mislabelled' with model 'vae', but its config.json says "
                                       "'convae'"):
        zoo.load("digits-mislabelled")
    # zoo info would describe MNIST weights while every command evaluated digits ones
    assert_clean_error(invoke("eval", "digits-on-mnist"), "with dataset 'mnist', but its config.json says 'digits'",
                       "$ZOO_CATALOG")


def test_catalogue_name_on_a_folder_hub_is_pulled_on_first_use_and_checked(catalogue, digits_run, tmp_path):
    dest = tmp_path / "shared" / "digits-ae"
    zhub.push(digits_run, f"file://{dest}")
    digest = zhub.file_sha256(digits_run / "model.safetensors")
    catalogue("digits-ae", model="convae", dataset="digits", hub=f"file://{dest}", sha256=digest)
    catalogue("digits-ae-bad", model="convae", dataset="digits", hub=f"file://{dest}", sha256="0" * 64)
    catalogue("digits-ae-nowhere", model="convae", dataset="digits", path=tmp_path / "gone", sha256=digest)

    assert zhub.catalogue_info("digits-ae")["available"] == "hub"
    assert_same_tensors(zoo.load("digits-ae").model.state_dict(), weights(digits_run / "model.safetensors"))
    info = zhub.catalogue_info("digits-ae")
    assert info["available"] == "cached" and zhub.is_managed(info["cached"])
    with pytest.raises(zhub.HubError, match="do not match their catalogued sha256"):
        zoo.load("digits-ae-bad")
    with pytest.raises(zhub.HubError, match="the weights of 'digits-ae-nowhere' are missing") as refused:
        zoo.load("digits-ae-nowhere")
    assert "take it out of $ZOO_CATALOG" in refused.value.hint  # not "Reinstall zoo": the entry is the user's
    assert zhub.catalogue_info("digits-ae-nowhere")["available"] == "missing"


def test_catalogue_name_on_the_hugging_face_hub_is_checked_by_sha256(catalogue, server, hf_env, digits_run):
    sha = server.seed(REPO_ID, run_bytes(digits_run))
    digest = zhub.file_sha256(digits_run / "model.safetensors")
    catalogue("digits-ae", model="convae", dataset="digits", hub=f"hf://{REPO_ID}@{sha}", sha256=digest)
    path = catalogue("digits-ae-bad", model="convae", dataset="digits", hub=f"hf://{REPO_ID}", sha256="f" * 64)

    def pull(name):
        return subprocess.run([sys.executable, "-m", "zoo.cli.main", "pull", name], capture_output=True, text=True,
                              timeout=30, env={**os.environ, **hf_env, "ZOO_CATALOG": str(path)})

    folder = Path(last_line(pull("digits-ae")))
    assert folder.name == sha and run_bytes(folder) == run_bytes(digits_run)
    assert_clean_error(pull("digits-ae-bad"), "the weights of 'digits-ae-bad'", "do not match their catalogued sha256")


def test_a_push_publishes_no_local_data_folder_nor_tracking_store(tmp_path):
    """data_dir, recorded absolute (/home/alice/...), went out in the pushed config.json and its model card; so did
    the MLflow store and TensorBoard folder, where an evaluation of the pulled weights then logged."""
    import json

    from conftest import TINY_SET, write_idx_set

    private = tmp_path / "home" / "alice" / "datasets"
    write_idx_set(private / "mnist", n_train=40, n_test=12)
    run = tmp_path / "run"
    stores = {"mlflow_uri": f"sqlite:///{tmp_path}/home/alice/mlflow.db", "tensorboard_dir": str(private.parent / "tb")}
    assert_ok(invoke("train", "convae", "--dataset", "mnist", "--data-dir", private, "--epochs", "1", "--out", run,
                     *TINY_SET, *[f"--set={k}={v}" for k, v in stores.items()]))
    assert json.loads((run / "config.json").read_text())["train"]["data_dir"] == str(private)  # kept locally
    dest = tmp_path / "hub" / "mine"
    assert_ok(invoke("push", run, f"file://{dest}"))
    for name in ("config.json", "README.md"):
        assert "alice" not in (dest / name).read_text(), name
    train = json.loads((dest / "config.json").read_text())["train"]
    assert train["data_dir"] == train["mlflow_uri"] == train["tensorboard_dir"] == ""
    assert_same_tensors(zoo.load(f"file://{dest}").model.state_dict(), weights(run / "model.safetensors"))


def test_the_card_of_an_entry_whose_path_has_spaces_or_accents_is_titled_with_its_name(digits_run, tmp_path):
    dest = tmp_path / "hub" / "my entry ü"
    zhub.push(digits_run, dest.as_uri())  # file:///.../my%20entry%20%C3%BC
    card = (dest / "README.md").read_text()
    assert "# my entry ü: `convae` trained on digits" in card and "%20" not in card.split("## Use it")[0]
    own = Path(shutil.copytree(digits_run, tmp_path / "ab%41"))  # a folder's own name is not a URL's
    from zoo.runs.modelcard import write_card
    assert "# ab%41: `convae` trained on digits" in write_card(own).read_text()


@pytest.mark.parametrize("env, said", [
    ({"ZOO_OFFLINE": "false", "HF_HUB_OFFLINE": "0"}, "cannot reach"),  # off, as false says (it turned zoo offline)
    ({"ZOO_OFFLINE": "maybe"}, "ZOO_OFFLINE='maybe' is neither on nor off"),
    ({"ZOO_OFFLINE": "0", "HF_HUB_DOWNLOAD_TIMEOUT": "1.5"}, "HF_HUB_DOWNLOAD_TIMEOUT='1.5' is not a whole number"),
    ({"ZOO_OFFLINE": "0", "HF_HUB_ETAG_TIMEOUT": "abc"}, "HF_HUB_ETAG_TIMEOUT='abc' is not a whole number"),
])
def test_the_environments_switches_and_time_outs_are_read_one_way_or_refused_in_one_message(env, said, tmp_path):
    """ZOO_OFFLINE=false meant offline; a time-out huggingface-hub cannot read was a traceback on its import."""
    closed = "http://127.0.0.1:9"  # nothing listens: an online pull fails fast
    result = run_zoo("pull", "hf://my-org/nothing", env={"HF_ENDPOINT": closed, "HF_HUB_ETAG_TIMEOUT": "2",
                                                          "HF_HUB_DOWNLOAD_TIMEOUT": "2", **env}, timeout=60)
    assert_clean_error(result, said)
