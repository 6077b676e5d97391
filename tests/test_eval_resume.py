"""An interrupted `zoo eval` keeps what it measured and the same command goes on from there, to the same
result as an evaluation that never stopped (a K = 5,000 bound runs for hours on a CPU)."""

import errno
import functools
import json

import pytest
import torch

import zoo
from conftest import TINY, assert_clean_error, assert_ok, invoke, quiet
from zoo.plugins.vae import VAE
from zoo.runs.eval_progress import PROGRESS


@pytest.fixture
def run(vae_copy):
    return vae_copy


def progress_files(run) -> list:
    """The evaluations' progress files in the run folder (eval-progress-KEY.safetensors, one per evaluation)."""
    return sorted(run.glob("eval-progress*.safetensors"))


def progress_file(run):
    """The one progress file the test's evaluation left."""
    found = progress_files(run)
    assert len(found) == 1, found
    return found[0]


def interrupt_after(monkeypatch, batches: int) -> None:
    """Every VAE's metrics raise KeyboardInterrupt (Ctrl-C) once `batches` batches were measured."""
    calls = {"n": 0}
    measure = VAE.metrics

    @functools.wraps(measure)
    def metrics(self, batch, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > batches:
            raise KeyboardInterrupt
        return measure(self, batch, *args, **kwargs)
    monkeypatch.setattr(VAE, "metrics", metrics)


def test_an_interrupted_eval_saves_its_progress_and_going_on_gives_the_uninterrupted_result(run, monkeypatch):
    whole = zoo.evaluate(run, options={"iwae_k": 20}, save=False)["metrics"]
    interrupt_after(monkeypatch, 3)  # 16 + 32 + 64 images
    result = invoke("eval", run, "--iwae-k", "20", "--no-progress")
    assert result.exit_code == 130 and "Interrupted." in result.stderr and "Traceback" not in result.output
    assert "112 of" in result.stderr and "the same command goes on from there" in result.stderr, result.stderr
    assert progress_file(run).is_file() and not (run / "eval.json").exists()

    monkeypatch.undo()
    result = invoke("eval", run, "--iwae-k", "20", "--no-progress")
    assert_ok(result)
    assert "going on with the evaluation" in result.stderr and "112 of" in result.stderr, result.stderr
    assert json.loads((run / "eval.json").read_text())["metrics"] == whole  # to the last digit
    assert not progress_files(run)


def test_another_evaluations_progress_is_neither_taken_up_nor_lost(run, monkeypatch, capsys):
    k7 = zoo.evaluate(run, options={"iwae_k": 7}, save=False)["metrics"]
    k5 = zoo.evaluate(run, options={"iwae_k": 5}, save=False)["metrics"]
    interrupt_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        zoo.evaluate(run, options={"iwae_k": 5})
    k5_file = progress_file(run)
    saved = k5_file.read_bytes()
    monkeypatch.undo()
    assert zoo.evaluate(run, options={"iwae_k": 7})["metrics"] == k7
    assert f"{k5_file} holds 48 images of another evaluation" in capsys.readouterr().err
    assert progress_files(run) == [k5_file] and k5_file.read_bytes() == saved  # the k=5 evaluation can go on ...
    assert zoo.evaluate(run, options={"iwae_k": 5})["metrics"] == k5  # ... and does
    assert not progress_files(run)


def test_a_quick_looks_progress_does_not_stop_a_long_evaluation_from_saving_its_own(run, monkeypatch):
    whole = zoo.evaluate(run, options={"iwae_k": 5}, save=False)["metrics"]
    interrupt_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        zoo.evaluate(run, options={"iwae_k": 5}, limit=100)  # a quick look, stopped
    quick = progress_file(run)
    monkeypatch.undo()
    interrupt_after(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        zoo.evaluate(run, options={"iwae_k": 5})  # the whole test split, stopped too: both are kept
    assert len(progress_files(run)) == 2 and quick in progress_files(run)
    monkeypatch.undo()
    assert zoo.evaluate(run, options={"iwae_k": 5})["metrics"] == whole
    assert progress_files(run) == [quick]


def test_the_single_progress_file_of_an_older_zoo_is_taken_up(run, monkeypatch):
    whole = zoo.evaluate(run, options={"iwae_k": 5}, save=False)["metrics"]
    interrupt_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        zoo.evaluate(run, options={"iwae_k": 5})
    progress_file(run).rename(run / PROGRESS)  # where zoo kept it before 2026-12-06
    monkeypatch.undo()
    assert zoo.evaluate(run, options={"iwae_k": 5})["metrics"] == whole
    assert not progress_files(run)


def test_progress_of_weights_trained_on_since_is_replaced(run, monkeypatch, capsys):
    interrupt_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        zoo.evaluate(run, options={"iwae_k": 5})
    monkeypatch.undo()
    zoo.train(resume=run, epochs=2, log=quiet, progress=False)
    whole = zoo.evaluate(run, options={"iwae_k": 5}, save=False)["metrics"]
    interrupt_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        zoo.evaluate(run, options={"iwae_k": 5})
    assert "trained on since" in capsys.readouterr().err
    monkeypatch.undo()
    assert zoo.evaluate(run, options={"iwae_k": 5})["metrics"] == whole
    assert "going on with the evaluation" in capsys.readouterr().err  # from the newer weights' progress


def test_a_damaged_progress_file_is_set_aside_and_the_eval_starts_afresh(run, monkeypatch, capsys):
    whole = zoo.evaluate(run, options={"iwae_k": 5}, save=False)["metrics"]
    interrupt_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        zoo.evaluate(run, options={"iwae_k": 5})
    monkeypatch.undo()
    data = bytearray(progress_file(run).read_bytes())
    data[-3] ^= 0xFF  # a flipped byte in the saved random state: the checksum no longer matches
    progress_file(run).write_bytes(bytes(data))
    capsys.readouterr()
    assert zoo.evaluate(run, options={"iwae_k": 5})["metrics"] == whole
    assert "could not be read" in capsys.readouterr().err


def test_an_eval_that_writes_nothing_saves_no_progress(run, monkeypatch):
    interrupt_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        zoo.evaluate(run, options={"iwae_k": 5}, save=False)
    assert not progress_files(run)


def test_a_folder_where_the_progress_goes_is_refused_before_any_work(run, monkeypatch):
    interrupt_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        zoo.evaluate(run, options={"iwae_k": 5})
    monkeypatch.undo()
    where = progress_file(run)
    where.unlink()
    where.mkdir()
    with pytest.raises(zoo.ZooError, match="is a folder"):
        zoo.evaluate(run, options={"iwae_k": 5})
    assert not (run / "eval.json").exists()


@pytest.mark.parametrize("name", [PROGRESS, "eval-progress-0123456789abcdef.safetensors", "eval-images.safetensors"])
def test_no_command_may_write_its_output_where_an_evaluation_keeps_its_progress_or_values(run, name):
    assert_clean_error(invoke("generate", run, "--n", "4", "--out", run / name), f"would replace the run's own {name}")
    assert not (run / name).exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the CUDA generator's state needs a GPU")
def test_an_interrupted_eval_on_the_gpu_goes_on_with_the_cuda_generators_draws(tmp_path, monkeypatch):
    """The draws come from the CUDA generator there, seeded for each batch as the CPU's is (close, not to the
    last digit: a GPU's reductions need not be deterministic)."""
    run = tmp_path / "vae-gpu"
    zoo.train("vae", dataset="digits", epochs=1, latent_dim=2, out=run, log=quiet, progress=False,
              **{**TINY, "device": "cuda"})
    whole = zoo.evaluate(run, options={"iwae_k": 20}, device="cuda", save=False)["metrics"]
    interrupt_after(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        zoo.evaluate(run, options={"iwae_k": 20}, device="cuda")
    monkeypatch.undo()
    again = zoo.evaluate(run, options={"iwae_k": 20}, device="cuda")["metrics"]
    assert again == pytest.approx(whole, rel=1e-5)
    assert not progress_files(run)


def test_a_resumed_eval_writes_the_per_image_metrics_and_errors_of_an_uninterrupted_one(run, monkeypatch, tmp_path):
    whole = zoo.evaluate(run, options={"iwae_k": 5}, save=False, per_image=tmp_path / "whole.csv")
    interrupt_after(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        zoo.evaluate(run, options={"iwae_k": 5}, per_image=tmp_path / "again.csv")
    monkeypatch.undo()
    again = zoo.evaluate(run, options={"iwae_k": 5}, per_image=tmp_path / "again.csv")
    assert (tmp_path / "again.csv").read_text() == (tmp_path / "whole.csv").read_text()
    assert again["standard_errors"] == whole["standard_errors"]


def _during_the_evaluation(monkeypatch, act) -> None:
    """`act()` runs once, while the evaluation measures its second batch."""
    calls = {"n": 0}
    measure = VAE.metrics

    @functools.wraps(measure)
    def metrics(self, batch, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            act()
        return measure(self, batch, *args, **kwargs)
    monkeypatch.setattr(VAE, "metrics", metrics)


def test_an_evaluation_whose_weights_were_trained_on_while_it_ran_writes_nothing_over_theirs(run, monkeypatch,
                                                                                           capsys):
    """A long bound may end after `zoo train --resume` (and an evaluation of the new weights): its figures are
    of the weights it loaded, and an eval.json of the new ones must stay theirs."""
    from safetensors.torch import load_file, save_file

    def trained_on():  # as `zoo train --resume` leaves it: other weights in model.safetensors
        save_file({k: v + 0.01 for k, v in load_file(run / "model.safetensors").items()}, run / "model.safetensors")
    _during_the_evaluation(monkeypatch, trained_on)
    result = zoo.evaluate(run, options={"iwae_k": 3})
    assert "written" not in result and result["metrics"]["nll_iwae_k3_nats"] > 0
    assert "this evaluation's figures, of the weights it loaded, are not written" in capsys.readouterr().err
    assert not (run / "eval.json").exists() and not progress_files(run)


def test_figures_an_evaluation_does_not_write_are_not_logged_either(tmp_path, monkeypatch, capsys):
    """They went to the run's MLflow run at the new weights' last epoch, beside a validation curve not theirs,
    with no eval.json to check them against."""
    MlflowClient = pytest.importorskip("mlflow.tracking").MlflowClient
    from safetensors.torch import load_file, save_file

    store, folder = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "vae"
    zoo.train("vae", dataset="digits", epochs=1, out=folder, log=quiet, progress=False, loggers="mlflow",
              mlflow_uri=store, **TINY)

    def trained_on():
        save_file({k: v + 0.01 for k, v in load_file(folder / "model.safetensors").items()},
                  folder / "model.safetensors")
    _during_the_evaluation(monkeypatch, trained_on)
    zoo.evaluate(folder, options={"iwae_k": 3}, loggers="mlflow")
    assert "these figures are not logged either: eval.json does not hold them" in capsys.readouterr().err
    run = MlflowClient(store).get_run(json.loads((folder / "mlflow.json").read_text())["run_id"])
    assert not [k for k in run.data.metrics if k.startswith("test_")]


def test_a_failed_write_of_a_finished_evaluation_says_its_figures(run, monkeypatch):
    """A K = 5,000 bound is hours of work: a full disk at the end must not take its figures with it."""
    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))
    monkeypatch.setattr(zoo.runs.checkpoint, "atomic_write", full)
    result = invoke("eval", run, "--iwae-k", "3", "--no-progress")
    assert result.exit_code == 74 and "Traceback" not in result.output
    assert "the evaluation measured, and could not save: mse " in result.stderr and "nll_iwae_k3_nats " in result.stderr
    assert "no space left on device" in result.stderr.lower()


def test_two_evaluations_ending_together_merge_their_figures_in_turn(run):
    """The results lock is waited for: the second evaluation reads what the first wrote, and keeps it."""
    import subprocess
    import sys
    import time

    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from zoo.runs.lock import results_lock\n"
                               f"with results_lock({str(run)!r}):\n    print('held', flush=True); time.sleep(2)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    start = time.monotonic()
    zoo.evaluate(run, options={"iwae_k": 3})
    assert time.monotonic() - start > 1.0  # it waited for the other evaluation's write
    holder.wait(timeout=30)
    zoo.evaluate(run, options={"iwae_k": 4})
    metrics = json.loads((run / "eval.json").read_text())["metrics"]
    assert "nll_iwae_k3_nats" in metrics and "nll_iwae_k4_nats" in metrics
    assert not (run / ".zoo-results.lock").exists()


def test_a_progress_save_that_failed_is_tried_again_and_keeps_the_progress_once_it_can(run, monkeypatch):
    """A disk full for a moment stopped every later save: a kill after the disk was freed lost everything."""
    from zoo.runs import eval_progress

    real, calls = eval_progress.save_tensors, {"n": 0}

    def full_once(path, tensors, meta=None):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, tensors, meta)
    monkeypatch.setattr(eval_progress, "save_tensors", full_once)
    monkeypatch.setattr(eval_progress, "SAVE_EVERY_S", 0.0)
    interrupt_after(monkeypatch, 3)
    result = invoke("eval", run, "--iwae-k", "20", "--no-progress")
    assert result.exit_code == 130, result.output
    assert "its progress is not saved while" in result.stderr and "tried again every 0 s" in result.stderr
    assert "progress is saved again" in result.stderr and "112 of" in result.stderr
    assert progress_file(run).is_file()


def test_the_same_evaluation_run_twice_at_once_never_writes_its_progress_over_the_one_ahead(run, monkeypatch):
    from zoo.runs import eval_progress

    interrupt_after(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        zoo.evaluate(run, options={"iwae_k": 20})  # the one ahead: 112 images saved
    ahead = progress_file(run).read_bytes()
    monkeypatch.undo()
    # the other started before that file was written: it starts from the first image, and is interrupted sooner
    monkeypatch.setattr(eval_progress.EvalProgress, "resume", lambda self, boundaries, total: (0, {}, {}))
    monkeypatch.setattr(eval_progress, "SAVE_EVERY_S", 0.0)
    interrupt_after(monkeypatch, 1)
    result = invoke("eval", run, "--iwae-k", "20", "--no-progress")
    assert result.exit_code == 130 and "112 of" in result.stderr, result.stderr  # what is kept, said
    assert progress_file(run).read_bytes() == ahead


def test_a_progress_file_that_cannot_be_removed_at_the_end_is_said_and_the_evaluation_still_succeeds(run,
                                                                                                     monkeypatch):
    import pathlib

    unlink = pathlib.Path.unlink

    def locked(self, missing_ok=False):
        if self.name.startswith("eval-progress"):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return unlink(self, missing_ok=missing_ok)
    monkeypatch.setattr(pathlib.Path, "unlink", locked)
    result = invoke("eval", run, "--iwae-k", "3", "--no-progress", "--json")
    assert_ok(result)
    assert "could not be removed (Permission denied)" in result.stderr
    assert json.loads(result.stdout)["metrics"] == json.loads((run / "eval.json").read_text())["metrics"]


def test_a_progress_file_whose_sums_are_not_its_values_sums_is_not_gone_on_from(run, monkeypatch, capsys):
    """A file edited by hand (or by a tool that wrote a checksum of its own) recorded a bound of 528 where its
    images' values made 595."""
    from zoo.runs.checkpoint import load_tensors, save_tensors

    whole = zoo.evaluate(run, options={"iwae_k": 5}, save=False)["metrics"]
    interrupt_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        zoo.evaluate(run, options={"iwae_k": 5})
    monkeypatch.undo()
    tensors, meta = load_tensors(progress_file(run))
    sums = json.loads(meta["sums"])
    save_tensors(progress_file(run), tensors, {**meta, "sums": json.dumps({k: v * 0.9 for k, v in sums.items()})})
    capsys.readouterr()
    assert zoo.evaluate(run, options={"iwae_k": 5})["metrics"] == whole
    assert "its sums are not those of its images' values" in capsys.readouterr().err


def test_a_progress_file_that_could_not_be_gone_on_from_is_replaced_and_never_said_to_be_kept(run, monkeypatch):
    """Rejected (its sums edited), it counted as a file ahead of the new evaluation: never replaced, and a
    Ctrl-C said its images were saved and would be gone on from, where every rerun started afresh."""
    from zoo.runs import eval_progress
    from zoo.runs.checkpoint import load_tensors, save_tensors

    interrupt_after(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        zoo.evaluate(run, options={"iwae_k": 5})  # 112 images saved
    tensors, meta = load_tensors(progress_file(run))
    save_tensors(progress_file(run), tensors, {**meta, "sums": json.dumps({k: 0.0 for k in json.loads(meta["sums"])})})
    monkeypatch.undo()
    monkeypatch.setattr(eval_progress, "SAVE_EVERY_S", 0.0)
    interrupt_after(monkeypatch, 1)
    result = invoke("eval", run, "--iwae-k", "5", "--no-progress")
    assert result.exit_code == 130 and "could not be read" in result.stderr
    assert "16 of" in result.stderr and "112 of" not in result.stderr, result.stderr
    assert load_tensors(progress_file(run))[1]["done"] == "16"  # this evaluation's, in its place


def test_each_images_values_that_cannot_be_written_are_said_and_the_evaluation_still_succeeds(run, monkeypatch):
    """eval.json was written first, yet the command said it could not save and exited 74."""
    from zoo.runs import eval_images

    def full(path, tensors, meta=None):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))
    monkeypatch.setattr(eval_images, "save_tensors", full)
    result = invoke("eval", run, "--iwae-k", "3", "--no-progress", "--json")
    assert_ok(result)
    assert "each image's values could not be written" in result.stderr and "could not save" not in result.stderr
    assert json.loads(result.stdout)["metrics"] == json.loads((run / "eval.json").read_text())["metrics"]
    assert not progress_files(run)


def test_the_elbo_is_the_same_with_or_without_an_iwae_bound_beside_it(run):
    """Each batch draws from a seed of its own: the bound's draws (asked for beside the ELBO) no longer moved the
    draws of the next batches' ELBO, which gave two −ELBO figures of one run's weights."""
    plain = zoo.evaluate(run, save=False)["metrics"]
    with_bound = zoo.evaluate(run, options={"iwae_k": 7}, save=False)["metrics"]
    assert with_bound["neg_elbo_nats"] == plain["neg_elbo_nats"] and with_bound["mse"] == plain["mse"]


def test_a_limited_evaluation_measures_its_images_as_the_whole_one_does(run, tmp_path):
    """A guard, true before the batches had seeds of their own too: their sizes and seeds do not depend on how many
    images are measured, so the first 112 (three whole batches) of a --limit 112 evaluation are the whole
    evaluation's first 112, to the last digit."""
    import csv

    def rows(name, **limit):
        zoo.evaluate(run, save=False, per_image=tmp_path / name, **limit)
        with open(tmp_path / name, newline="") as fh:
            return [row["neg_elbo_nats"] for row in csv.DictReader(fh)]

    part, whole = rows("part.csv", limit=112), rows("whole.csv")
    assert len(part) == 112 and part == whole[:112]


def test_a_progress_file_of_an_earlier_zoo_is_removed_with_a_true_note(run, capsys):
    """Saved with one stream of draws (its generator's state inside): no command can go on from it now, and it was
    said to stay for its command to go on, for ever."""
    from zoo.runs.checkpoint import save_tensors, weights_digest

    old = run / "eval-progress-0123456789abcdef.safetensors"
    save_tensors(old, {"rng.cpu": torch.get_rng_state(), "values.mse": torch.zeros(16, dtype=torch.float64)},
                 {"key": "0123456789abcdef" * 4, "weights": weights_digest(run / "model.safetensors"), "done": "16",
                  "sums": json.dumps({"mse": 0.0})})
    zoo.evaluate(run)
    said = capsys.readouterr().err
    assert not old.exists() and f"removed {old}" in said and "saved by an earlier zoo" in said, said
    assert "it stays for that command to go on" not in said
