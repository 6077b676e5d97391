"""Findings fixed in the twenty-second round (the last note's weak points and the walks' findings), each through
the CLI or the public API on real run folders."""

from __future__ import annotations

import json

import pytest
from conftest import assert_clean_error, assert_ok, invoke

from zoo.errors import Interrupted


def test_an_out_into_a_folder_hubs_entry_is_refused_and_writes_nothing_there(folder_hub, tmp_path):
    before = sorted(p.name for p in folder_hub.iterdir())
    for command in (["reconstruct", folder_hub, "--n", "4"], ["latent", folder_hub, "--method", "pca"]):
        result = invoke(*command, "--out", folder_hub / "mine.png")
        assert_clean_error(result, "inside a folder hub's entry", "only zoo push writes there")
    assert sorted(p.name for p in folder_hub.iterdir()) == before
    mine = tmp_path / "mine.png"  # elsewhere it is written
    assert_ok(invoke("reconstruct", folder_hub, "--n", "4", "--out", mine))
    assert mine.is_file()


def test_a_samplers_fit_stopped_by_ctrl_c_says_nothing_of_it_was_saved():
    """A stop in a sampler's fit (a MAF fits for a minute) ended in a bare "Interrupted."."""
    import torch

    from zoo.analysis.latent_samplers import LatentSampler

    class Stopped(LatentSampler):  # a fit the user stops midway
        name = "stopped"

        def _fit(self, codes, seed):
            raise KeyboardInterrupt

    with pytest.raises(Interrupted, match="fitting the 'stopped' sampler was interrupted; nothing of it was saved"):
        Stopped().fit(torch.zeros(4, 2))


def test_a_push_stopped_by_ctrl_c_says_the_entry_is_whole_and_leaves_the_earlier_push(folder_hub, run_copy,
                                                                                   monkeypatch):
    import zoo
    from zoo.hub import folder

    before = {p.name: p.read_bytes() for p in folder_hub.iterdir() if p.is_file()}
    written = []
    real = folder._write

    def stopped_midway(path, value):  # Ctrl-C after the first file of the new version
        if written:
            raise KeyboardInterrupt
        written.append(path)
        return real(path, value)

    monkeypatch.setattr(folder, "_write", stopped_midway)
    with pytest.raises(Interrupted, match="entry holds its earlier version or this push, whole") as stop:
        zoo.hub.push(run_copy, f"file://{folder_hub}")
    assert "Run the same command again" in stop.value.hint
    assert {p.name: p.read_bytes() for p in folder_hub.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in folder_hub.parent.iterdir()) == [folder_hub.name]  # no half-written copy left


def test_a_sample_quality_measurement_stopped_by_ctrl_c_says_how_far_it_got_and_writes_nothing(digits_vae_run,
                                                                                             tmp_path, monkeypatch):
    import shutil

    from conftest import TINY, quiet

    import zoo
    from zoo.tasks import sample_quality as sq

    feats = zoo.train("classifier", dataset="digits", epochs=1, out=tmp_path / "feat", log=quiet, progress=False,
                      **TINY).run_dir
    vae = shutil.copytree(digits_vae_run, tmp_path / "vae")
    real, calls = sq._measure, []

    def stopped_on_the_second_seed(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(sq, "_measure", stopped_on_the_second_seed)
    with pytest.raises(Interrupted, match=r"interrupted after 1 of 2 seeds; .*quality.json is as it was"):
        zoo.api.sample_quality(vae, features=str(feats), n=100, seeds=2)
    assert not (vae / "quality.json").exists()


def test_a_noise_sweeps_baseline_trained_on_another_data_set_is_said_in_a_note_and_in_the_result(run_copy, tmp_path):
    import numpy as np
    from conftest import TINY, quiet
    from PIL import Image

    import zoo

    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / "pics" / cls).mkdir(parents=True)
        for i in range(20):  # 28x28 grey images, as digits' are
            Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(tmp_path / "pics" / cls / f"{i}.png")
    other = zoo.train("convae", dataset=f"folder:{tmp_path / 'pics'}", epochs=1, out=tmp_path / "other", log=quiet,
                      progress=False, **TINY).run_dir
    result = zoo.api.noise_sweep(run_copy, baseline=other, noise="gaussian:0.2", save=False)
    assert any(f"the baseline {other} was trained on folder:" in n and "the model on digits: both are fed digits's "
               "images" in n for n in result["notes"])
    assert "notes" not in zoo.api.noise_sweep(run_copy, baseline=run_copy, noise="gaussian:0.2", save=False)
    out = invoke("eval", run_copy, "--noise-sweep", "--baseline", other, "--noise", "gaussian:0.2", "--json")
    assert "note: the baseline" in assert_ok(out)


def test_a_push_to_an_entry_whose_name_leaves_no_room_for_its_temporary_is_refused_before_writing(digits_run,
                                                                                                  tmp_path):
    hub = tmp_path / "hub"
    too_long = hub / ("e" * 238)  # .NAME.tmp-TAG would be 256 bytes
    assert_clean_error(invoke("push", digits_run, f"file://{too_long}"), "238 bytes long",
                       "Push to a name of at most 237 bytes")
    assert not hub.exists() or not any(hub.iterdir())
    assert_ok(invoke("push", digits_run, f"file://{hub / ('e' * 237)}"))
    assert (hub / ("e" * 237) / "model.safetensors").is_file()


def test_two_trainings_started_together_without_out_each_get_a_folder_of_their_own(tmp_path, monkeypatch):
    """Started together, they often name their folder in one second (the same stamp); when they do not, this
    checks only that each trains into a folder of its own."""
    import subprocess
    import sys

    monkeypatch.chdir(tmp_path)
    command = [sys.executable, "-m", "zoo", "train", "convae", "--dataset", "digits", "--epochs", "1",
               "--set", "channels=4,8,8", "--set", "hidden=16", "--device", "cpu", "--no-progress"]
    started = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in started]
    assert [p.returncode for p in started] == [0, 0], outputs
    folders = sorted((tmp_path / "runs").iterdir())
    assert len(folders) == 2 and all((f / "model.safetensors").is_file() for f in folders)


def test_a_training_refused_after_zoo_named_its_folder_leaves_no_empty_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("train", "gan", "--dataset", "digits", "--set", "cuda_graph=true", "--device", "cpu",
                    "--epochs", "1")
    assert_clean_error(result, "cuda_graph does not record")  # refused as the Trainer is made: the folder was named
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_folder_whose_names_are_not_utf8_trains_to_its_pictures_and_card_and_plots_its_codes(tmp_path):
    """A Latin-1 folder and class name reach Python with lone surrogates, which matplotlib's FreeType refused
    with a traceback after the epochs were trained: no loss.png, no card, and zoo latent failed the same way."""
    import os

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    root = os.path.join(os.fsencode(tmp_path), b"lat\xe4")
    for name in (b"z\xe9ro", b"one"):
        os.makedirs(os.path.join(root, name))
        for i in range(15):
            Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(
                os.path.join(root, name, b"%d.png" % i))
    run = tmp_path / "run"
    train_args = ["--dataset", f"folder:{os.fsdecode(root)}", "--epochs", "1", "--set", "latent_dim=2"]
    assert_ok(invoke("train", "convae", *train_args, "--set", "channels=4,8,8", "--set", "hidden=16",
                     "--device", "cpu", "--no-progress", "--out", run))
    assert (run / "loss.png").is_file() and (run / "reconstructions.png").is_file() and (run / "README.md").is_file()
    assert_ok(invoke("latent", run))
    assert (run / "latent.png").is_file() or any(run.glob("latent*.png"))


def test_zoo_train_refuses_an_empty_out_as_the_command_line_does(tmp_path, monkeypatch):
    import zoo
    from zoo.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="out='': an empty value names nothing"):
        zoo.train("convae", dataset="digits", out="", epochs=1)
    assert not (tmp_path / "runs").exists()


def test_zoos_own_option_after_the_command_says_it_goes_before_it():
    result = invoke("train", "convae", "--threads", "1")
    assert result.exit_code == 2
    assert "--threads of zoo train; it is zoo's own option, given before the command: zoo --threads N train" in \
        result.output


def test_an_option_winning_over_set_is_said_by_its_own_name_and_only_where_the_values_differ():
    def notes(*args):
        out = invoke("train", "convae", "--dataset", "digits", *args, "--set", "latent_dim=0").output
        return [line for line in out.splitlines() if line.startswith("note:") and "wins over" in line]

    assert notes("--set", "loggers=tensorboard", "--log", "mlflow") == [
        "note: --log mlflow wins over --set loggers=tensorboard"]
    assert notes("--set", "lr=1e-3", "--lr", "0.001") == [] and notes("--set", "bf16=true", "--bf16") == []
    assert notes("--set", "bf16=false", "--bf16") == ["note: --bf16 wins over --set bf16=false"]
    assert notes("--set", "lr=1e-2", "--lr", "0.001") == ["note: --lr 0.001 wins over --set lr=1e-2"]


def test_a_hub_time_out_set_but_empty_is_refused_in_one_message(monkeypatch):
    for value in ("", "²"):
        monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", value)
        assert_clean_error(invoke("info", "hf://org/name"), "HF_HUB_DOWNLOAD_TIMEOUT=", "is not a whole number of "
                           "seconds", code=2)


def test_no_color_and_a_dumb_terminal_turn_the_colours_of_errors_off(monkeypatch):
    from click.testing import CliRunner

    from zoo.cli.main import cli

    def coloured(**env) -> bool:
        result = CliRunner().invoke(cli, ["train", "nosuch"], prog_name="zoo", color=True, env=env)
        assert result.exit_code != 0 and "unknown model 'nosuch'" in result.output
        return "\x1b[" in result.output

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert coloured(TERM="xterm")
    assert not coloured(NO_COLOR="1", TERM="xterm") and not coloured(TERM="dumb")


def test_a_training_whose_log_pipe_closes_exits_141_with_its_epochs_kept(tmp_path):
    import subprocess
    import sys

    run = tmp_path / "bp"
    line = (f"{sys.executable} -m zoo train convae --dataset digits --epochs 3 --set channels=4,8,8 --set hidden=16 "
            f"--device cpu --no-progress --out {run} 2>&1 | head -1; exit ${{PIPESTATUS[0]}}")
    done = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=600)
    assert done.returncode == 141, done.stdout + done.stderr  # 128 + SIGPIPE, as for `zoo list | head -1`
    assert done.stdout.startswith("training convae on digits") and "Traceback" not in done.stderr
    assert (run / "checkpoint.safetensors").is_file()  # its finished epochs, for --resume


def test_a_matplotlib_backend_named_wrongly_does_not_fail_the_pictures_of_a_command(tmp_path):
    import os
    import subprocess
    import sys

    out = tmp_path / "run"
    env = {**os.environ, "MPLBACKEND": "bogus"}
    done = subprocess.run([sys.executable, "-m", "zoo", "train", "convae", "--dataset", "digits", "--epochs", "1",
                           "--set", "channels=4,8,8", "--set", "hidden=16", "--device", "cpu", "--no-progress",
                           "--out", str(out)], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert (out / "loss.png").is_file() and (out / "README.md").is_file()


def test_a_training_with_its_stderr_closed_trains_to_its_end(tmp_path):
    """Its first log line failed (a bad file descriptor) and ended the training at epoch 0, saying nothing."""
    import subprocess
    import sys

    run = tmp_path / "run"
    line = (f"{sys.executable} -m zoo train convae --dataset digits --epochs 1 --set channels=4,8,8 --set hidden=16 "
            f"--set epochs=2 --device cpu --no-progress --out {run} 2>&-")  # the CLI's own note first: --epochs wins
    done = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "completed: best epoch 1" in done.stdout
    assert (run / "README.md").is_file() and (run / "loss.png").is_file()


def test_bundled_weights_evaluated_on_another_sets_files_under_their_sets_name_are_told_so(tmp_path):
    """The bundled runs record no split digests: Fashion-MNIST's files given as MNIST's were measured as MNIST."""
    import shutil

    from conftest import real_data

    fashion = real_data("fashion-mnist") / "fashion-mnist"
    shutil.copytree(fashion, tmp_path / "looks-like-mnist")
    out = assert_ok(invoke("eval", "head-mnist", "--data-dir", tmp_path / "looks-like-mnist", "--limit", "200",
                           "--json"))
    assert "mnist holds other test images than it had (as many): not the images head-mnist was trained" in out
    mnist = real_data("mnist") / "mnist"
    assert "other test images" not in assert_ok(invoke("eval", "head-mnist", "--data-dir", mnist, "--limit", "200",
                                                       "--json"))


def test_another_seed_gives_another_tsne_and_the_same_seed_the_same(tmp_path):
    """scikit-learn's seed only drew t-SNE's PCA start, exact for these widths: every seed gave one picture."""
    import numpy as np
    import torch

    from zoo.analysis.latent import project

    codes = torch.from_numpy(np.random.default_rng(0).normal(size=(60, 4)))
    first, again, other = (project(codes, "tsne", seed=s).coords for s in (0, 0, 1))
    assert np.array_equal(first, again) and not np.allclose(first, other)
    assert np.array_equal(project(codes, "pca", seed=0).coords, project(codes, "pca", seed=5).coords)


def test_a_class_folder_named_with_outer_spaces_is_named_with_or_without_them_and_shown_quoted():
    from zoo.analysis.latent_samplers import resolve_class
    from zoo.errors import ConfigError

    classes = [" spaced", "#1", "10", "2", "Big Cat"]
    assert resolve_class(" spaced", classes) == 0 and resolve_class("spaced", classes) == 0
    assert resolve_class("big cat", classes) == 4 and resolve_class("2", classes) == 3  # a name before an index
    with pytest.raises(ConfigError) as refused:
        resolve_class("nothing", classes)
    assert "0=' spaced', 1=#1" in refused.value.hint


def test_the_gmm_samplers_draws_spread_as_the_codes_do_whatever_their_scale():
    """scikit-learn's reg_covar is absolute: codes of std 1e-3 were drawn 56 % wider than they are."""
    import torch

    from zoo.analysis.latent_samplers import get_sampler

    codes = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 1e-3
    drawn = get_sampler("gmm")().fit(codes).sample(50_000, generator=torch.Generator().manual_seed(1))
    ratio = drawn.double().var(0) / codes.var(0)
    assert bool(((ratio > 0.9) & (ratio < 1.1)).all()), ratio


def test_a_classifier_asked_for_a_class_is_told_it_makes_no_images(tmp_path):
    from conftest import TINY, quiet

    import zoo

    head = zoo.train("classifier", dataset="digits", epochs=1, out=tmp_path / "head", log=quiet, progress=False,
                     **TINY).run_dir
    for option in (["--class", "3"], ["--per-class", "2"]):
        out = assert_clean_error(invoke("generate", head, *option, "--out", tmp_path / "x.png"), "makes no images")
        assert "without --class" not in out and "without --per-class" not in out


@pytest.mark.parametrize("cap", [str(64 << 30), str(2 ** 63 - 1)])
def test_a_hub_cap_raised_past_the_machines_memory_still_pulls_a_small_entry(folder_hub, cap, monkeypatch):
    monkeypatch.setenv("ZOO_HUB_MAX_BYTES", cap)
    out = assert_ok(invoke("pull", f"file://{folder_hub}"))
    assert "model.safetensors" in out


def test_generate_gives_each_class_and_each_way_of_drawing_its_own_default_file(tmp_path):
    """Classes 'x y', 'x_y' and 'x?y' all wrote samples-class-x_y.png, each replacing the last without a word."""
    import numpy as np
    from conftest import TINY, quiet
    from PIL import Image

    import zoo

    rng = np.random.default_rng(0)
    for name in ("x y", "x_y", "x?y"):
        (tmp_path / "pics" / name).mkdir(parents=True)
        for i in range(40):
            Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(tmp_path / "pics" / name / f"{i}.png")
    run = zoo.train("convae", dataset=f"folder:{tmp_path / 'pics'}", epochs=1, out=tmp_path / "run", log=quiet,
                    progress=False, **TINY).run_dir
    for name in ("x y", "x_y", "x?y"):
        assert_ok(invoke("generate", run, "--class", name, "--n", "4", "--spread", "0.5"))
    assert_ok(invoke("generate", run, "--class", "x_y", "--n", "4"))
    assert sorted(p.name for p in run.glob("samples-class-*.png")) == [
        "samples-class-0-x_y-spread-0.5.png", "samples-class-1-x_y-spread-0.5.png", "samples-class-x_y-spread-0.5.png",
        "samples-class-x_y.png"]  # classes in folder order: 'x y', 'x?y', 'x_y'


def test_zoo_latent_logged_to_tensorboard_twice_replaces_the_codes_without_torchs_global_step_warning(run_copy):
    pytest.importorskip("tensorboard")
    assert_ok(invoke("latent", run_copy, "--log", "tensorboard", "--n", "30"))
    out = assert_ok(invoke("latent", run_copy, "--log", "tensorboard", "--n", "40"))
    assert "global_step" not in out
    tsv = next((run_copy / "tensorboard").rglob("metadata.tsv")).read_text().splitlines()
    assert len(tsv) == 40  # the second command's codes (no header for a single column of labels)


def test_zoo_info_of_a_run_without_its_weights_file_does_not_offer_to_load_it(run_copy):
    (run_copy / "model.safetensors").unlink()
    out = assert_ok(invoke("info", run_copy))
    assert "load it: not as it is; put back its model.safetensors first" in out
    data = json.loads(assert_ok(invoke("info", run_copy, "--json")))
    assert data["load"] is None and data["missing"] == ["model.safetensors"]  # nor in --json


def test_cv_and_search_refuse_a_data_dir_that_is_no_folder_before_any_training(tmp_path, monkeypatch):
    """zoo train refused it; cv and search read $ZOO_DATA_DIR's files and recorded the typo."""
    pytest.importorskip("optuna")
    from conftest import tiny_space

    monkeypatch.chdir(tmp_path)
    typo = tmp_path / "no-such-folder"
    assert_clean_error(invoke("cv", "convae", "--dataset", "digits", "--set", f"data_dir={typo}", "--folds", "2",
                              "--epochs", "1", "--out", tmp_path / "cv"), f"data_dir {typo}: no such folder")
    (tmp_path / "space.toml").write_text(tiny_space(2, 1))
    assert_clean_error(invoke("search", "convae", "--space", tmp_path / "space.toml", "--set", f"data_dir={typo}",
                              "--study", "s1"), f"data_dir {typo}: no such folder")
    assert not (tmp_path / "cv").exists() and not (tmp_path / "studies").exists()


def test_zoo_push_takes_what_zoo_train_returned_and_a_run_and_refuses_other_things(digits_run, tmp_path):
    from conftest import TINY, quiet

    import zoo
    from zoo.errors import RunError

    result = zoo.train("convae", dataset="digits", epochs=1, out=tmp_path / "run", log=quiet, progress=False, **TINY)
    assert "model.safetensors" in zoo.push(result, f"file://{tmp_path / 'hub' / 'a'}").files
    assert "model.safetensors" in zoo.push(zoo.load(digits_run), f"file://{tmp_path / 'hub' / 'b'}").files
    with pytest.raises(RunError, match="zoo.push takes a run folder, not 5"):
        zoo.push(5, f"file://{tmp_path / 'hub' / 'c'}")


def test_a_training_into_a_folder_hubs_entry_is_refused(folder_hub):
    out = assert_clean_error(invoke("train", "convae", "--dataset", "digits", "--epochs", "1", "--out",
                                    folder_hub / "inside"), "is inside the folder hub's entry")
    assert "only zoo push writes there" in out and not (folder_hub / "inside").exists()


def test_zoos_own_flag_after_the_command_is_said_without_a_value():
    result = invoke("train", "--version")
    assert result.exit_code == 2 and "given before the command: zoo --version" in result.output
    assert "--version N" not in result.output


def test_a_batch_of_one_image_through_a_one_value_batch_norm_is_refused_before_the_folder_is_made(tmp_path):
    """A deep ConvAE's 1×1 feature maps under batch norm failed at the first step with torch's ValueError, leaving a
    run that resumed into the same traceback."""
    deep = ["--set", "batch_norm=true", "--set", "channels=4,4,4,4,4,4", "--set", "padding=1", "--set", "hidden=16",
            "--device", "cpu", "--no-progress", "--epochs", "1"]
    digits_train = 1294  # digits' training split
    for size in ("1", str(digits_train - 1)):
        out = tmp_path / f"bs{size}"
        assert_clean_error(invoke("train", "convae", "--dataset", "digits", *deep, "--batch-size", size, "--out", out),
                           "batch norm cannot normalise a batch of one image", code=2)
        assert not out.exists()
    assert_ok(invoke("train", "convae", "--dataset", "digits", *deep, "--batch-size", "64", "--out", tmp_path / "ok"))


def test_a_training_that_diverges_in_its_first_epoch_says_its_weights_are_untrained_and_how_to_go_on(tmp_path):
    from conftest import TINY_SET

    out = assert_clean_error(invoke("train", "convae", "--dataset", "digits", "--epochs", "3", *TINY_SET, "--lr", "10",
                                    "--set", "optimizer=sgd", "--set", "sigmoid_output=false", "--out", tmp_path / "d"),
                             "training diverged at epoch 1", code=1)
    assert "No epoch finished: its weights are the untrained ones." in out and "(epoch 0)" not in out
    assert "Train a new run (another --out, or --overwrite) with a lower learning rate (--lr)" in out


def test_kept_weights_from_before_a_pruning_are_said_with_the_zeros_they_hold(tmp_path):
    """Pruning raised the validation loss, so the best epoch (restored) was one before it: the run logged 99 %
    sparsity and kept weights with no zeros, without a word."""
    from conftest import TINY_SET

    out = assert_ok(invoke("train", "convae", "--dataset", "digits", "--epochs", "4", *TINY_SET, "--lr", "0.01",
                           "--batch-size", "64", "--set", "prune_every=2", "--set", "prune_encoder_linear=0.99",
                           "--set", "prune_decoder_conv=0.99", "--out", tmp_path / "p"))
    assert "completed: best epoch 2" in out
    assert ("note: the kept weights, of the best epoch (2), are from before the pruning before epoch 3: encoder "
            "linear 0.0% zeros (pruned to 98.9%)") in out


def test_a_val_fraction_that_rounds_to_no_image_is_said():
    import zoo

    data = zoo.load_dataset("digits", val_fraction=0.0001)
    assert data.val_x.shape[0] == 0
    assert any("val_fraction 0.0001 of 1,438 images is no image: there is no validation split" in n for n in data.notes)
    assert zoo.load_dataset("digits", val_fraction=0.0).notes == ()  # none asked for: nothing to say


def test_a_dropout_schedule_over_one_epoch_runs_that_epoch_at_the_configured_rate():
    """EPOCHS is the epoch that reaches the configured rate: with 1, epoch 1 ran at START instead."""
    from zoo.registry import load_registry

    schedule = load_registry().callbacks["dropout-schedule"].cls
    assert schedule(0.5, 1).rate_in(1, 0.1) == pytest.approx(0.1)
    assert [round(schedule(0.5, 3).rate_in(e, 0.1), 6) for e in (1, 2, 3, 4)] == [0.5, 0.3, 0.1, 0.1]


def test_momentum_with_an_optimizer_that_has_none_is_said(tmp_path):
    from conftest import TINY_SET

    out = assert_ok(invoke("train", "convae", "--dataset", "digits", "--epochs", "1", *TINY_SET, "--set",
                           "momentum=0.5", "--out", tmp_path / "a"))
    assert "note: momentum=0.5 has no effect with optimizer adam (it is sgd's)" in out
    out = assert_ok(invoke("train", "convae", "--dataset", "digits", "--epochs", "1", *TINY_SET, "--set",
                           "momentum=0.5", "--set", "optimizer=sgd", "--out", tmp_path / "s"))
    assert "has no effect" not in out
