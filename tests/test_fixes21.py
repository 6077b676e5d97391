"""Findings fixed in the twenty-first round (review24's leftovers and the walks' findings), each through the
CLI or the public API on real run folders."""

from __future__ import annotations

import pytest
from conftest import TINY_SET, assert_ok, invoke


def train(*args) -> str:
    return assert_ok(invoke("train", "convae", "--dataset", "digits", *TINY_SET, *args))


def test_a_resume_says_a_left_out_tensorboard_only_where_a_training_logged_to_it_not_after_zoo_latent(tmp_path):
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    store = ["--set", f"mlflow_uri=sqlite:///{tmp_path / 'mlflow.db'}"]
    plain = tmp_path / "plain"
    train("--epochs", "1", "--out", plain)
    assert_ok(invoke("latent", plain, "--log", "tensorboard"))
    assert (plain / "tensorboard").is_dir()  # the projector's files, no epoch
    out = assert_ok(invoke("train", "--resume", plain, "--epochs", "2", "--log", "mlflow", *store, "--no-progress"))
    assert "leaves out" not in out
    logged = tmp_path / "logged"
    train("--epochs", "1", "--log", "tensorboard", "--out", logged)
    out = assert_ok(invoke("train", "--resume", logged, "--epochs", "2", "--log", "mlflow", *store, "--no-progress"))
    assert "this run was logged to tensorboard (tensorboard in the run folder), which --log mlflow leaves out" in out


def test_a_commands_progress_choice_reaches_the_bars_of_what_it_calls_such_as_a_samplers_fit():
    from zoo.analysis.metrics import bars_shown, progress_bar

    with bars_shown(False):
        with progress_bar(10, "fitting a sampler", unit="step") as bar:
            assert bar.disable  # --no-progress: hidden even on a terminal
        with progress_bar(10, "told otherwise", enabled=True) as bar:
            assert not bar.disable
    with bars_shown(True):
        with progress_bar(10, "fitting a sampler", unit="step") as bar:
            assert not bar.disable  # --progress: shown though stderr is no terminal here
    with progress_bar(10, "outside", unit="step") as bar:
        assert bar.disable  # back to "on a terminal" (pytest's stderr is none)


def test_a_conditional_models_tensor_file_of_uniform_classes_says_they_are_not_recorded_and_how_to_label_them(
        tmp_path):
    from safetensors import safe_open

    run = tmp_path / "cvae"
    assert_ok(invoke("train", "cvae", "--dataset", "digits", *TINY_SET, "--epochs", "1", "--out", run))
    out = assert_ok(invoke("generate", run, "--n", "4", "--out", tmp_path / "x.safetensors"))
    assert "classes of these samples, drawn uniformly, are not recorded" in out and "--per-class N" in out
    out = assert_ok(invoke("generate", run, "--per-class", "2", "--out", tmp_path / "y.safetensors"))
    assert "not recorded" not in out
    with safe_open(tmp_path / "y.safetensors", "pt") as f:
        assert f.get_tensor("images").shape[0] == 20 and f.metadata()["classes"].startswith('["0"')


def test_zoo_info_of_a_run_whose_plugin_is_installed_but_broken_says_fix_it_not_install_it(
        run_copy, brokenplug_installed):
    import json

    record = json.loads((run_copy / "config.json").read_text())
    record["model"], record["plugin"] = "ghostae", {"name": "ghostae", "package": "brokenplug", "version": "0.1"}
    (run_copy / "config.json").write_text(json.dumps(record))
    out = assert_ok(invoke("info", run_copy))
    assert "load it: not until package brokenplug loads: it is installed but failed (ImportError" in out
    assert "pip install" not in out


@pytest.mark.parametrize("named, suggested", [("gmm", "--sampler gmm (shipped with it"),
                                              ("gmmx", "--sampler gmm (or gaussian")])
def test_a_catalogued_sampler_is_suggested_only_where_it_is_installed(named, suggested, digits_run, tmp_path,
                                                                     monkeypatch):
    from conftest import assert_clean_error

    path = tmp_path / "mine.toml"
    path.write_text(f'[weights.my-ae]\nmodel = "convae"\ndataset = "digits"\npath = "{digits_run}"\n'
                    f'sampler = "{named}"\n')
    monkeypatch.setenv("ZOO_CATALOG", str(path))
    result = invoke("generate", "my-ae", "--n", "4", "--out", tmp_path / "x.png")
    assert_clean_error(result, "cannot sample by itself", suggested)
    assert "gmmx" not in result.output


# ---------------------------------------------------------------- workers21: space files and racing searches

SPACE_FIXED = '[search]\nstrategy = "random"\ntrials = 1\n[fixed]\ndataset = "digits"\nepochs = 1\n' \
              'channels = [4, 8, 8]\nhidden = [16]\ndevice = "cpu"\n[params]\n'


@pytest.mark.parametrize("params, message, hint", [
    pytest.param('optimizer = { choices = ["sgd"] }\nmomentum = { low = 0, high = 1 }',
                 "momentum: integer bounds draw whole numbers only, and momentum takes fractions",
                 "Give float bounds (low = 0.0, high = 1.0)", id="int bounds for a float key"),
    pytest.param('lr = { low = 1e-4, high = 1e-2, log = "false" }', "lr: log = 'false' is not true or false",
                 "Write log = true or log = false (no quotes)", id="a quoted boolean"),
    pytest.param("latent_dim = { low = 2, high = 4, choices = [1, 2] }",
                 "latent_dim: high, low do not go with a search of categorical values", "takes: choices",
                 id="choices beside a range"),
    pytest.param("lr = { choices = [0.001, 0.01], log = true }",
                 "lr: log does not go with a search of categorical values", "takes: choices", id="choices with log"),
    pytest.param('latent_dim = { value = 3, low = 2 }', "latent_dim: low does not go with a computed value",
                 "takes: helper, value, when", id="a value beside a bound"),
])
def test_a_space_field_that_would_be_ignored_or_misread_is_refused_before_any_trial(tmp_path, params, message, hint):
    from conftest import assert_clean_error

    space = tmp_path / "bad.toml"
    space.write_text(SPACE_FIXED + params + "\n")
    assert_clean_error(invoke("search", "convae", "--space", space, "--out", tmp_path / "s"), message, hint, code=2)
    assert not (tmp_path / "s").exists()


def test_int_bounds_with_an_explicit_int_type_still_search_whole_numbers_of_a_float_key(tmp_path):
    from zoo.search import prepare

    space = tmp_path / "ok.toml"
    space.write_text(SPACE_FIXED + 'optimizer = { choices = ["sgd"] }\n'
                     'momentum = { type = "int", low = 0, high = 1 }\n')
    prepare("convae", space, out=tmp_path / "s")


def test_a_search_refused_as_another_study_never_replaces_that_studys_space_copy(tmp_path, monkeypatch):
    """Two searches started at once on one new study: the one refused (its space differs from what the other
    recorded meanwhile) left its space.toml in the folder, and every resume of the study was refused."""
    from conftest import quiet

    from zoo.errors import ConfigError
    from zoo.search import run as search_run

    first, second = tmp_path / "a.toml", tmp_path / "b.toml"
    first.write_text(SPACE_FIXED + "latent_dim = { low = 2, high = 6 }\n")
    second.write_text(SPACE_FIXED + "latent_dim = { low = 2, high = 7 }\n")
    search_run.run_search("convae", first, out=tmp_path / "s", study="r", log=quiet)
    monkeypatch.setattr(search_run, "recorded", lambda settings: None)  # as when the other had not recorded yet
    with pytest.raises(ConfigError, match="was begun with other settings"):
        search_run.run_search("convae", second, out=tmp_path / "s", study="r", log=quiet)
    assert (tmp_path / "s" / "space.toml").read_text() == first.read_text()


# ---------------------------------------------------------------- paths21: the file system under a training

@pytest.mark.parametrize("swap", [False, True], ids=["moved away", "another run moved into its name"])
def test_a_run_folder_moved_while_it_trains_is_never_made_again_nor_another_run_in_its_name_overwritten(
        swap, tmp_path, run_copy):
    import os

    import zoo
    from zoo.training.callbacks import Callback

    live, moved = tmp_path / "live", tmp_path / "moved"
    other_weights = (run_copy / "model.safetensors").read_bytes()

    class Mover(Callback):
        def on_epoch_end(self, trainer, epoch, record):
            if epoch == 2:
                os.rename(live, moved)
                if swap:
                    os.rename(run_copy, live)

    with pytest.raises(zoo.ZooError, match="is no longer the run folder this training writes: it was moved"):
        zoo.train("convae", dataset="digits", epochs=4, out=live, callbacks=[Mover()], progress=False,
                  channels=[4, 8, 8], hidden=[16])
    assert [line.count('"epoch"') for line in (moved / "metrics.jsonl").read_text().splitlines()] == [1, 1]
    if swap:
        assert (live / "model.safetensors").read_bytes() == other_weights
    else:
        assert not live.exists()
    os.rename(moved, tmp_path / "back")
    assert_ok(invoke("train", "--resume", tmp_path / "back", "--no-progress"))  # the moved run goes on


def test_a_leading_tilde_is_the_users_home_in_run_and_output_paths_from_python_and_the_command_line(
        tmp_path, monkeypatch, digits_run):
    import shutil

    import zoo

    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir(), work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    shutil.copytree(digits_run, home / "mine")
    assert zoo.load("~/mine").folder == home / "mine"
    out = zoo.reconstruct("~/mine", n=4, out="~/pics/r.png")
    assert out == home / "pics" / "r.png" and out.is_file()
    assert_ok(invoke("reconstruct", "~/mine", "--n", "4", "--out=~/pics/s.png"))  # no shell expands --out=~
    assert (home / "pics" / "s.png").is_file()
    zoo.train("convae", dataset="digits", epochs=1, out="~/t", channels=[4, 8, 8], hidden=[16], progress=False)
    assert (home / "t" / "config.json").is_file()
    zoo.push("~/mine", f"file://{tmp_path / 'hub' / 'mine'}", log=lambda _: None)
    (home / "s.toml").write_text(SPACE_FIXED + "lr = { low = 1e-3, high = 1e-2 }\n")
    zoo.run_search("convae", "~/s.toml", out="~/st", log=lambda _: None)
    assert (home / "st" / "summary.json").is_file()
    assert not (work / "~").exists()


# ---------------------------------------------------------------- denoise21: a user's own images

def _png(path, array, mode=None):
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8), mode).save(path)
    return path


def test_zoo_denoise_never_writes_its_picture_over_an_input_image_nor_into_the_input_folder(tmp_path):
    from conftest import assert_clean_error

    scan = _png(tmp_path / "in" / "scan.png", [[0, 255] * 14] * 28)
    before = scan.read_bytes()
    assert_clean_error(invoke("denoise", "dae-mnist", "--input", scan, "--out", scan),
                       "is one of the input images", "Name the picture elsewhere with --out")
    assert_clean_error(invoke("denoise", "dae-mnist", "--input", tmp_path / "in", "--out", tmp_path / "in" / "p.png"),
                       "is inside the input folder", "Name the picture elsewhere")
    assert scan.read_bytes() == before


def test_zoo_denoise_skips_hidden_files_and_says_what_reading_the_users_images_changed(tmp_path):
    import numpy as np

    folder = tmp_path / "imgs"
    _png(folder / "grey.png", np.full((28, 28), 128))
    _png(folder / "colour.png", np.zeros((13, 7, 3)))
    (folder / "._grey.png").write_bytes(b"\x00\x05\x16\x07junk")  # macOS's AppleDouble file: no image
    _png(folder / ".ipynb_checkpoints" / "old.png", np.zeros((28, 28)))
    out = assert_ok(invoke("denoise", "dae-mnist", "--input", folder, "--out", tmp_path / "d.png"))
    assert "1 colour image(s) (colour.png) are read as grey" in out
    assert "1 image(s) are not 28×28, the model's size (e.g. colour.png: 7×13)" in out
    assert sorted(p.name for p in (tmp_path / "d_files").rglob("*")) == ["colour.png", "grey.png"]


def test_an_occlusion_count_is_bounded_and_a_count_of_0_is_one_noise_whatever_its_size(tmp_path):
    from conftest import assert_clean_error

    from zoo.data.noise import parse_noise

    assert_clean_error(invoke("denoise", "dae-mnist", "--input", _png(tmp_path / "a.png", [[0] * 28] * 28),
                              "--noise", "occlusion:5:1e9", "--out", tmp_path / "d.png"),
                       "count must be in 0..100000")
    assert parse_noise("occlusion:5:0").on((1, 28, 28)).spec == parse_noise("occlusion:25:0").on((1, 28, 28)).spec


@pytest.mark.parametrize("sets, message", [
    (["iterative_passes=3", "iterative_weights=0,0,0"], "iterative_weights are all 0: the loss would be 0"),
])
def test_iterative_weights_that_would_train_nothing_are_refused_before_training(sets, message, tmp_path):
    from conftest import assert_clean_error

    args = [a for s in sets for a in ("--set", s)]
    assert_clean_error(invoke("train", "convae", "--dataset", "digits", *TINY_SET, "--epochs", "1", *args,
                              "--out", tmp_path / "r"), message)
    assert not (tmp_path / "r").exists()


def test_a_run_that_is_not_the_users_own_with_a_name_near_255_bytes_still_gets_an_outputs_folder(
        digits_run, tmp_path, monkeypatch):
    from zoo import hub

    import shutil

    hub.push(digits_run, f"file://{tmp_path / 'hub' / 'e'}")
    entry = tmp_path / "hub" / ("b" * 250)  # a folder hub's entry: its outputs go to ./zoo-outputs/NAME-DIGEST
    shutil.copytree(tmp_path / "hub" / "e", entry)
    monkeypatch.chdir(tmp_path)
    assert_ok(invoke("eval", entry, "--limit", "10"))
    (outputs,) = (tmp_path / "zoo-outputs").iterdir()
    assert len(outputs.name.encode()) <= 255 and (outputs / "eval.json").is_file()


def test_a_relative_xdg_cache_home_is_ignored_as_the_xdg_specification_says(tmp_path, monkeypatch):
    from zoo.caches import zoo_cache
    from zoo.data.sources import cache_dir

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", "relcache")
    assert zoo_cache() == tmp_path / ".cache" / "zoo" / "hub"
    assert cache_dir() == tmp_path / ".cache" / "zoo" / "datasets"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "abs"))
    assert zoo_cache() == tmp_path / "abs" / "zoo" / "hub"


def test_an_option_named_like_a_config_key_says_to_give_it_with_set():
    result = invoke("train", "vae", "--latent-dim", "8")
    assert result.exit_code == 2 and "--set latent_dim=VALUE gives it" in result.output
    assert "Did you mean" not in result.output


def test_zoo_denoise_of_catalogued_weights_with_out_names_no_outputs_folder_it_does_not_use(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = assert_ok(invoke("denoise", "dae-mnist", "--input", _png(tmp_path / "in" / "a.png", [[0] * 28] * 28),
                           "--out", tmp_path / "pics" / "d.png"))
    assert "zoo-outputs" not in out and not (tmp_path / "zoo-outputs").exists()
    assert (tmp_path / "pics" / "d_files" / "a.png").is_file()


def test_a_stop_while_the_last_epochs_pictures_are_drawn_leaves_a_complete_run_and_says_so(tmp_path):
    import json
    import os
    import signal

    import zoo
    from zoo.errors import Interrupted
    from zoo.training.callbacks import Callback

    class StopAtTheEnd(Callback):
        def on_train_end(self, trainer):
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C as the best weights' pictures are drawn

    run = tmp_path / "r"
    with pytest.raises(Interrupted, match="stopped after its last epoch: .* is complete"):
        zoo.train("convae", dataset="digits", epochs=2, out=run, callbacks=[StopAtTheEnd()], progress=False,
                  channels=[4, 8, 8], hidden=[16])
    assert (run / "reconstructions.png").is_file() and (run / "loss.png").is_file()
    card = (run / "README.md").read_text()
    assert json.loads((run / "config.json").read_text())["train"]["epochs"] == 2 and '"epochs": 2' in card


def test_once_a_command_has_ended_a_stop_while_python_shuts_down_is_ignored_not_a_traceback(monkeypatch):
    import signal
    import sys

    from zoo.cli.main import main

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    monkeypatch.setattr(sys, "argv", ["zoo", "--version"])
    try:
        with pytest.raises(SystemExit):
            main()
        assert all(signal.getsignal(s) is signal.SIG_IGN for s in before)
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
