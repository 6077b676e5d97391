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
    assert "has no effect" not in out and "lr=0" not in out


def test_a_learning_rate_of_0_is_said_to_leave_the_weights_as_initialised(tmp_path):
    out = assert_ok(invoke("train", "convae", "--dataset", "digits", "--epochs", "1", *TINY_SET, "--lr", "0",
                           "--out", tmp_path / "a"))
    assert "note: lr=0: the weights stay as initialised" in out


def test_a_matplotlib_backend_named_wrongly_does_not_fail_the_pictures_of_a_python_training(tmp_path):
    """The CLI ignored a bad $MPLBACKEND; zoo.train from Python failed after its epochs, without loss.png or the
    card. The variable is left as the caller had it."""
    import os
    import subprocess
    import sys

    script = ("import os, zoo\n"
              f"zoo.train('convae', dataset='digits', epochs=1, channels=[4, 8, 8], hidden=[16], device='cpu', "
              f"progress=False, out={str(tmp_path / 'run')!r})\n"
              "print(os.environ['MPLBACKEND'])\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "MPLBACKEND": "bogus"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "bogus"
    assert (tmp_path / "run" / "loss.png").is_file() and (tmp_path / "run" / "README.md").is_file()


def test_picture_counts_refused_from_python_name_their_keyword(digits_run):
    """Only --n said n=: zoo.manifold(steps=1) was told of --steps, an option a Python caller has not got."""
    import pytest

    import zoo
    from zoo.errors import ConfigError

    for call, said in ((lambda: zoo.manifold(digits_run, steps=1), "--steps (steps=) must be"),
                       (lambda: zoo.generate(digits_run, per_class=0), "--per-class (per_class=) must be"),
                       (lambda: zoo.sample(digits_run, n=0), "n= must be")):
        with pytest.raises(ConfigError, match=said.replace("(", r"\(").replace(")", r"\)")):
            call()


def test_a_class_named_like_another_class_s_index_form_gets_its_own_default_file(tmp_path):
    """'!x' (class 0) is written samples-class-0-_x.png; class '0-_x' was written to that file too."""
    import numpy as np
    from conftest import TINY, quiet
    from PIL import Image

    import zoo

    rng = np.random.default_rng(0)
    for name in ("!x", "0-_x"):
        (tmp_path / "pics" / name).mkdir(parents=True)
        for i in range(30):
            Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(tmp_path / "pics" / name / f"{i}.png")
    run = zoo.train("convae", dataset=f"folder:{tmp_path / 'pics'}", epochs=1, out=tmp_path / "run", log=quiet,
                    progress=False, **TINY).run_dir
    for name in ("!x", "0-_x"):
        assert_ok(invoke("generate", run, "--class", name, "--n", "4"))
    assert sorted(p.name for p in run.glob("samples-class-*.png")) == ["samples-class-0-_x.png",
                                                                        "samples-class-1-0__x.png"]


def test_a_half_or_double_vae_samples_the_images_of_its_float32_self(digits_vae_run):
    """The plugins drew float32 noise into a model converted by its user: sampling refused every other dtype."""
    import torch

    import zoo

    run = zoo.load(digits_vae_run)
    first = run.sample(4, generator=torch.Generator().manual_seed(1))
    for dtype, close in ((torch.float64, 1e-5), (torch.float16, 5e-3)):
        run.model.to(dtype)
        drawn = run.sample(4, generator=torch.Generator().manual_seed(1))
        assert drawn.dtype == dtype and (drawn.float() - first).abs().max() < close


def test_compare_sorted_by_a_figure_only_some_runs_have_still_says_a_limited_runs_test_images(vae_copy, tmp_path):
    """Sorted by test_nll_iwae_k8_nats (the full run's only), the --limit run's other test columns stood beside
    the full split's figures without the note the default sort gives."""
    import shutil

    part = shutil.copytree(vae_copy, tmp_path / "part")
    assert_ok(invoke("eval", vae_copy, "--iwae-k", "8"))
    assert_ok(invoke("eval", part, "--limit", "30", "--iwae-k", "3"))
    for sort in ([], ["--sort", "test_nll_iwae_k8_nats"]):
        out = assert_ok(invoke("compare", vae_copy, part, *sort))
        assert "its test metrics are of other test images than" in out, sort


def test_dir_of_zoo_lists_the_public_api_imported_lazily():
    """dir(zoo), tab completion and help(zoo) showed none of load, train, evaluate, Run (imported on first use)."""
    import zoo

    assert {"load", "train", "evaluate", "Run", "ZooModel", "__version__"} <= set(dir(zoo))


def test_a_config_key_given_as_an_option_to_a_command_without_set_is_not_told_to_use_set(digits_run):
    """zoo eval --latent-dim was told "--set latent_dim=VALUE gives it", an option zoo eval has not got."""
    from conftest import assert_clean_error

    out = assert_clean_error(invoke("eval", digits_run, "--latent-dim", "3"), "latent_dim is a config key",
                             "zoo eval takes none", code=2)
    assert "--set latent_dim" not in out
    assert_clean_error(invoke("generate", digits_run, "--noise", "0.5"), "--spread F", code=2)
    assert_clean_error(invoke("train", "convae", "--latent-dim", "3"), "--set latent_dim=VALUE gives it", code=2)


def test_zoo_info_lists_dropout_among_the_keys_whose_trials_train_together():
    """Read off a model built at dropout 0 (no dropout layer), zoo info convae listed no such key at all."""
    import json

    data = json.loads(assert_ok(invoke("info", "convae", "--json")))
    assert "dropout" in data["vectorized_keys"]
    out = assert_ok(invoke("info", "vae"))
    assert "differ only in beta, dropout (and lr, weight decay, momentum, seed, patience)" in out


def test_set_of_another_models_key_names_that_model_before_any_guess():
    """--set layers=1 on cvae was asked "Did you mean: loggers?": layers is hvae's."""
    from conftest import assert_clean_error

    out = assert_clean_error(invoke("train", "cvae", "--dataset", "digits", "--set", "layers=1"),
                             "unknown key 'layers'", "layers is a key of hvae, not of cvae", code=2)
    assert "loggers" not in out


def test_zoo_info_of_a_newer_zoos_run_with_a_key_this_zoo_lacks_names_the_version_not_an_edit(run_copy):
    """It said the config.json was edited and to restore it; the file is genuine, of a newer zoo."""
    import json

    path = run_copy / "config.json"
    record = json.loads(path.read_text())
    record["zoo_version"], record["config"]["future_key"] = "9.0.0", 1
    path.write_text(json.dumps(record))
    result = invoke("info", run_copy)
    assert result.exit_code == 0, result.output
    assert "written by zoo 9.0.0, newer than this zoo" in result.output and "restore" not in result.output
    assert "load it: not as it is (the note above says why)" in result.output


def test_a_training_that_diverges_leaves_its_card(tmp_path):
    """A Ctrl-C'd run got its card; a diverged one, as loadable (its kept or initial weights), got none."""
    from conftest import assert_clean_error

    run = tmp_path / "run"
    assert_clean_error(invoke("train", "vae", "--dataset", "digits", "--epochs", "2", *TINY_SET, "--set",
                              "optimizer=sgd", "--lr", "10", "--out", run), "diverged")
    assert "# run: `vae` trained on digits" in (run / "README.md").read_text()


def test_compare_of_gans_of_another_loss_suggests_no_sort_that_is_no_one_measure(tmp_path):
    """It suggested --sort train_loss, which the same command then noted is not one measure (loss differs)."""
    import json
    import shutil

    import zoo
    from conftest import quiet

    ns = tmp_path / "ns"
    zoo.train("gan", dataset="digits", epochs=1, out=ns, log=quiet, progress=False, g_channels=4, d_channels=4,
              latent_dim=8, device="cpu")
    hinge = shutil.copytree(ns, tmp_path / "hinge")
    record = json.loads((hinge / "config.json").read_text())
    record["config"]["loss"] = "hinge"  # what compare reads: the runs' records, not their weights
    (hinge / "config.json").write_text(json.dumps(record))
    out = assert_ok(invoke("compare", ns, hinge))
    assert "--sort train_loss sorts them" not in out
    assert "no figure of theirs is one measure across them" in out and "(loss differs)" in out


def test_a_models_name_takes_the_article_it_is_spoken_with():
    from zoo.console import with_article

    assert [with_article(m) for m in ("iwae", "vae", "Encoder", "gan")] == ["an iwae", "a vae", "an Encoder", "a gan"]
