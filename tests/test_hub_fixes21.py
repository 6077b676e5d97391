"""The hub round trip of a user's own weights (hub21) and file names in cards (paths21 2, 5b, 6b): eval.json
judged against config.json, compare's notes on other test images, the card's notes, a folder hub out of
reach, push destinations, what a push publishes of a fine-tuned head and of a GAN's quality figures."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY_SET, assert_clean_error, assert_ok, invoke
from zoo import hub
from zoo.runs import checkpoint as ckpt
from zoo.runs.files import file_sha256
from zoo.runs.modelcard import write_card


def _edit_config(run: Path, change) -> None:
    path = run / "config.json"
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record, indent=2))


# ------------------------------------------------------------------------------------------ hub21 #2

def test_an_eval_json_is_stale_once_config_json_changes_what_it_measured(run_copy):
    assert_ok(invoke("eval", run_copy))
    assert ckpt.CONFIG_DIGEST in json.loads((run_copy / "eval.json").read_text())
    _edit_config(run_copy, lambda r: r["train"].update(data_dir="/somewhere/else"))  # where the data lie: alike
    assert ckpt.read_eval(run_copy) == (json.loads((run_copy / "eval.json").read_text()), None)
    _edit_config(run_copy, lambda r: r["train"].update(binarize="static"))
    evaluated, note = ckpt.read_eval(run_copy)
    assert evaluated is None and "config.json changed since it was measured" in note
    out = assert_ok(invoke("compare", run_copy))
    assert "config.json changed since it was measured" in out and "test_mse" not in out


def test_an_eval_json_without_the_config_digest_stays_current(run_copy):
    """An older zoo's, and the bundled weights' shipped ones: judged by their weights alone, as before."""
    assert_ok(invoke("eval", run_copy))
    record = json.loads((run_copy / "eval.json").read_text())
    del record[ckpt.CONFIG_DIGEST]
    (run_copy / "eval.json").write_text(json.dumps(record))
    _edit_config(run_copy, lambda r: r["train"].update(binarize="static"))
    assert ckpt.read_eval(run_copy) == (record, None)


# ------------------------------------------------------------------------------------------ hub21 #3

def test_compare_notes_a_limit_evaluation_beside_a_whole_test_set_one_whatever_the_sort(digits_run, tmp_path):
    whole, look = (Path(shutil.copytree(digits_run, tmp_path / n)) for n in ("whole", "look"))
    assert_ok(invoke("eval", whole))
    assert_ok(invoke("eval", look, "--limit", "50"))
    out = assert_ok(invoke("compare", look, whole))  # sorted by val_loss: the test columns are shown all the same
    assert "test_mse" in out
    assert f"{whole}: its test metrics are of other test images than {look}'s" in out  # the first of a tie: look
    assert "other test images" in assert_ok(invoke("compare", whole, look, "--sort", "val_mse"))


# ------------------------------------------------------------------------------------------ hub21 #1

def test_notes_below_the_cards_notes_line_are_kept_by_eval_and_published_by_push(run_copy, tmp_path):
    card = run_copy / "README.md"
    assert "<!-- zoo card " in card.read_text()
    with open(card, "a") as fh:
        fh.write("## My notes\nIntended use: demos only.\n")
    out = assert_ok(invoke("eval", run_copy))
    assert "note:" not in out
    assert card.read_text().endswith("## My notes\nIntended use: demos only.\n")
    assert_ok(invoke("push", run_copy, f"file://{tmp_path / 'hub' / 'e'}"))
    pushed = (tmp_path / "hub" / "e" / "README.md").read_text()
    assert pushed.endswith("## My notes\nIntended use: demos only.\n") and "## Test metrics" in pushed


def test_a_hand_edit_above_the_cards_notes_line_is_said_when_the_card_is_written_anew(run_copy, tmp_path):
    card = run_copy / "README.md"
    card.write_text(card.read_text().replace("## Use it", "## Use it\n\nMY EDIT", 1))
    out = assert_ok(invoke("push", run_copy, f"file://{tmp_path / 'hub' / 'e'}"))
    assert "was edited above its notes line" in out
    out = assert_ok(invoke("eval", run_copy))
    assert "was edited above its notes line" in out and "MY EDIT" not in card.read_text()
    assert "edited" not in assert_ok(invoke("eval", run_copy))  # the card zoo wrote, unedited


# ------------------------------------------------------------------------------------------ hub21 #4

def test_a_pulled_folder_hub_loads_from_its_copy_when_the_hub_folder_is_not_reachable(folder_hub, tmp_path,
                                                                                      monkeypatch):
    catalogue = tmp_path / "cat" / "c.toml"
    catalogue.parent.mkdir()
    sha = file_sha256(folder_hub / "model.safetensors")
    catalogue.write_text(f'[weights.mine]\nmodel = "convae"\ndataset = "digits"\nhub = "file://../shared/digits"\n'
                         f'sha256 = "{sha}"\n')
    monkeypatch.setenv("ZOO_CATALOG", str(catalogue))
    pulled = hub.pull("mine")
    assert pulled["location"] == folder_hub.as_uri()  # ../shared/digits normalised: no "/cat/.." in it
    assert Path(hub.pull(folder_hub.as_uri())["folder"]) == Path(pulled["folder"])  # one copy, however named
    folder_hub.rename(tmp_path / "shared" / "away")
    out = assert_ok(invoke("eval", "mine"))
    assert f"the folder hub {folder_hub.as_uri()} is not reachable: using its copy pulled on" in out
    assert pulled["folder"] in out.replace("\n", "")
    assert "not reachable" in assert_ok(invoke("eval", folder_hub.as_uri()))


# ------------------------------------------------------------------------------------------ hub21 #5, #6

def test_a_push_inside_another_hub_entry_or_a_run_folder_is_refused(folder_hub, digits_run, run_copy):
    assert_clean_error(invoke("push", digits_run, f"file://{folder_hub / 'inner'}"),
                       f"is inside the hub entry {folder_hub}", "Push beside it")
    assert_clean_error(invoke("push", digits_run, f"file://{run_copy / 'pub'}"),
                       f"is inside the run folder {run_copy}")
    assert not (folder_hub / "inner").exists() and not (run_copy / "pub").exists()


@pytest.mark.parametrize("code", [errno.EBUSY, errno.EXDEV])
def test_a_push_onto_a_mount_point_says_to_push_inside_it(digits_run, tmp_path, monkeypatch, code):
    from zoo.hub import folder

    def refused(new, dest):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(folder, "_swap", refused)  # what renaming a folder over a mount point gives
    dest = tmp_path / "mnt"
    assert_clean_error(invoke("push", digits_run, f"file://{dest}"), f"cannot write to {dest}: it is a mount point",
                       f"Push to a folder inside it, e.g. {(dest / 'NAME').as_uri()}")


# ------------------------------------------------------------------------------------------ hub21 #7

def test_a_pushed_head_publishes_its_encoders_source_by_name_and_still_shows_its_info(digits_run, tmp_path):
    source = Path(shutil.copytree(digits_run, tmp_path / "enc-src"))
    assert_ok(invoke("finetune", source, "--hidden", "8", "--epochs", "1", "--out", tmp_path / "head",
                     "--device", "cpu", "--no-progress"))
    out = assert_ok(invoke("push", tmp_path / "head", f"file://{tmp_path / 'hub' / 'head'}"))
    assert f"the encoder's source is named by its path on this machine, {source}" in out
    for name in ("config.json", "README.md"):
        text = (tmp_path / "hub" / "head" / name).read_text()
        assert str(source) not in text and '"init_from": "./enc-src"' in text
    config = json.loads((tmp_path / "hub" / "head" / "config.json").read_text())["config"]
    assert config["init_digest"] == json.loads((tmp_path / "head" / "config.json").read_text())["config"]["init_digest"]
    info = assert_ok(invoke("info", (tmp_path / "hub" / "head").as_uri()))  # provenance: judged of own runs only
    assert 'init_from="./enc-src"' in info and str(source) not in info
    assert "stale" not in info and "test metrics" in info  # its published evaluation still counts


# ------------------------------------------------------------------------------------------ hub21 #8

def test_compare_says_no_test_metrics_were_published_where_none_were(digits_run, tmp_path, monkeypatch):
    dest = tmp_path / "hub" / "swap"
    hub.push(digits_run, f"file://{dest}")
    (tmp_path / "c.toml").write_text(f'[weights.swap-ae]\nmodel = "convae"\ndataset = "digits"\nhub = "file://{dest}"\n')
    monkeypatch.setenv("ZOO_CATALOG", str(tmp_path / "c.toml"))
    assert_ok(invoke("eval", "swap-ae"))
    own = next(Path("zoo-outputs").glob("swap-ae*/eval.json"))
    record = json.loads(own.read_text())
    own.write_text(json.dumps({**record, ckpt.WEIGHTS_DIGEST: "0" * 64}))  # of other weights pushed there before
    out = assert_ok(invoke("compare", "swap-ae"))
    assert "is stale: measured on earlier weights" in out and "no test metrics were published to show" in out
    assert "the published test metrics are shown" not in out


# ------------------------------------------------------------------------------------------ hub21 #9

def test_resume_of_a_catalogued_name_that_names_a_run_folder_says_to_resume_it_by_its_path(run_copy, tmp_path,
                                                                                           monkeypatch):
    (tmp_path / "p.toml").write_text(f'[weights.run-ae]\nmodel = "convae"\ndataset = "digits"\npath = "{run_copy}"\n')
    monkeypatch.setenv("ZOO_CATALOG", str(tmp_path / "p.toml"))
    assert_clean_error(invoke("train", "--resume", "run-ae", "--epochs", "3"),
                       f"its entry names the run folder {run_copy.resolve()}",
                       f"zoo train --resume {run_copy.resolve()}")


# ------------------------------------------------------------------------------------------ hub21 #10

@pytest.mark.parametrize("field", ["dataset", "model"])
def test_pull_and_compare_refuse_a_catalogue_entry_whose_model_or_dataset_contradicts_config_json(
        folder_hub, tmp_path, monkeypatch, field):
    entry = {"model": "convae", "dataset": "digits", field: {"dataset": "mnist", "model": "dae"}[field]}
    (tmp_path / "w.toml").write_text(f'[weights.wds]\nmodel = "{entry["model"]}"\ndataset = "{entry["dataset"]}"\n'
                                     f'hub = "file://{folder_hub}"\n')
    monkeypatch.setenv("ZOO_CATALOG", str(tmp_path / "w.toml"))
    said = f"catalogues 'wds' with {field} '{entry[field]}', but its config.json says"
    assert_clean_error(invoke("pull", "wds"), said)
    assert_clean_error(invoke("compare", "wds"), said)


# ------------------------------------------------------------------------------------------ hub21 #11

def test_a_current_quality_json_is_pushed_quoted_on_the_card_and_compared_from_the_pulled_copy(run_copy, tmp_path):
    quality = {"images": 359, "samples_vs_test": {"fid": 1.25, "kid": 0.01, "precision": 0.5, "recall": 0.25},
               ckpt.WEIGHTS_DIGEST: ckpt.weights_digest(run_copy / "model.safetensors"),
               "feature_network": str(tmp_path / "private" / "feat")}
    (run_copy / "quality.json").write_text(json.dumps(quality))
    dest = tmp_path / "hub" / "q"
    assert_ok(invoke("push", run_copy, f"file://{dest}"))
    published = json.loads((dest / "quality.json").read_text())
    assert published["samples_vs_test"] == quality["samples_vs_test"] and published["feature_network"] == "./feat"
    card = (dest / "README.md").read_text()
    assert "## Sample quality" in card and "| classifier_fid | 1.25 |" in card and "private" not in card
    out = assert_ok(invoke("compare", dest.as_uri()))
    assert "test_classifier_fid" in out and "classifier_ figures from quality.json" in out
    (run_copy / "quality.json").write_text(json.dumps({**quality, ckpt.WEIGHTS_DIGEST: "0" * 64}))  # stale
    assert_ok(invoke("push", run_copy, f"file://{tmp_path / 'hub' / 'stale'}"))
    assert not (tmp_path / "hub" / "stale" / "quality.json").exists()


# ------------------------------------------------------------------------------------------ paths21 #2, #5b, #6b

def test_a_run_folder_named_by_bytes_that_are_not_utf8_trains_and_evaluates_without_a_traceback(tmp_path):
    name = os.fsdecode(b"caf\xe9")  # a real process: its output prints the name as the terminal would get it
    for args in (["train", "convae", "--dataset", "digits", *TINY_SET, "--epochs", "1", "--out", name],
                 ["eval", name], ["eval", name, "--per-image", "pi.csv"]):
        done = subprocess.run([sys.executable, "-m", "zoo", "--threads", "1", *args], capture_output=True,
                              cwd=tmp_path)  # bytes: the name is printed as its own bytes, which are not UTF-8
        assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr.decode(errors="replace")
    card = (tmp_path / name / "README.md").read_bytes().decode("utf-8")  # a card is UTF-8 text
    assert "caf\\udce9" in card
    assert (tmp_path / name / "eval.json").is_file() and (tmp_path / "pi.csv").is_file()


def test_a_per_image_csv_names_a_file_that_is_not_utf8_by_its_own_bytes(tmp_path):
    ckpt.atomic_write(tmp_path / "pi.csv", "index,file\n0," + os.fsdecode(b"caf\xe9.png") + "\n")
    assert (tmp_path / "pi.csv").read_bytes() == b"index,file\n0,caf\xe9.png\n"


def test_a_cards_commands_for_a_folder_named_with_a_leading_dash_are_prefixed_with_dot_slash(run_copy, tmp_path):
    run_copy.rename(tmp_path / "-x")
    card = write_card(Path("-x")).read_text()
    assert "zoo eval ./-x\n" in card and "zoo eval -x" not in card


def test_a_card_written_from_inside_its_folder_names_the_folder_not_dot(run_copy, monkeypatch):
    monkeypatch.chdir(run_copy)
    card = write_card(Path(".")).read_text()
    assert "# run: `convae` trained on digits" in card and 'zoo.load("run")' in card and "# .:" not in card
    monkeypatch.chdir(run_copy / "..")
    card = write_card(Path("run/../run")).read_text()
    assert 'zoo.load("run")' in card
