"""Memory that runs out is one clear message, never a traceback: training says how much one allocation
asked and what its run folder keeps; a search prunes the trial that did not fit and goes on. The memory
is really used up: the zoo process runs under an address-space limit (ulimit -v) too small for its step."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import pytest
import torch
from conftest import assert_ok, invoke

from zoo.errors import OutOfMemory, out_of_memory

LIMIT = 5 * 2**30  # torch and the data fit; one training step of the net below (3.9 GiB of features) does not
TOO_BIG = ["--batch-size", "1294", "--set", "channels=4096,8,8", "--set", "hidden=16", "--device", "cpu"]


def zoo_within_limit(*args) -> subprocess.CompletedProcess:
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))

    return subprocess.run([sys.executable, "-m", "zoo", *map(str, args)], capture_output=True, text=True,
                          preexec_fn=limit, timeout=300)


def test_training_that_runs_out_of_memory_says_so_and_what_its_folder_keeps(tmp_path):
    run = tmp_path / "run"
    r = zoo_within_limit("train", "convae", "--dataset", "digits", "--epochs", "1", *TOO_BIG, "--out", run,
                         "--no-progress")
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert "out of memory on cpu (one allocation of 3.9 GiB failed)" in r.stderr
    assert f"No epoch was trained; start again with --overwrite to replace {run}" in r.stderr
    assert "--batch-size" in r.stderr
    assert json.loads((run / "config.json").read_text())["train"]["batch_size"] == 1294  # what was tried


def test_a_search_prunes_a_trial_that_runs_out_of_memory_and_goes_on(tmp_path, monkeypatch):
    """In-process, to keep it quick: a step on the whole set at once, or building the widest net, asks the
    allocator for 16 TiB (a real failed allocation); the narrow net on 32 images a step trains."""
    pytest.importorskip("optuna")
    from zoo.plugins.convae import ConvAE

    plain_loss, plain_init = ConvAE.loss, ConvAE.__init__

    def loss(self, batch):
        if batch.x.shape[0] > 100:
            torch.empty(2**42)
        return plain_loss(self, batch)

    def init(self, config, *args, **kwargs):  # the widest net's weights alone do not fit
        plain_init(self, config, *args, **kwargs)
        if config.hidden == [64]:
            torch.empty(2**42)

    monkeypatch.setattr(ConvAE, "loss", loss)
    monkeypatch.setattr(ConvAE, "__init__", init)
    space = tmp_path / "s.toml"
    space.write_text('[search]\nstrategy = "grid"\npruner = "none"\n[fixed]\ndataset = "digits"\ndevice = "cpu"\n'
                     'epochs = 1\nchannels = [4, 8, 8]\n[params]\nbatch_size = { choices = [1294, 32] }\n'
                     'hidden = { choices = [16, 64] }\n')  # hidden is a list of one width
    out = assert_ok(invoke("search", "convae", "--space", space, "--out", tmp_path / "st", "--trials", "4"))
    summary = json.loads((tmp_path / "st" / "summary.json").read_text())
    assert summary["states"]["complete"] == 1 and summary["states"]["pruned"] == 3
    assert "pruned: out of memory" in out


def test_vectorised_trials_that_do_not_fit_together_train_one_by_one(tmp_path, monkeypatch):
    """The stacked step of two trials asks the allocator for 16 TiB (a real failed allocation); each trial
    alone fits, so both complete, trained one after the other."""
    pytest.importorskip("optuna")
    from zoo.training import multitrial

    def train_together(*args, **kwargs):
        torch.empty(2**42)

    monkeypatch.setattr(multitrial, "train_together", train_together)
    space = tmp_path / "s.toml"
    space.write_text('[search]\nstrategy = "grid"\npruner = "none"\n[fixed]\ndataset = "digits"\ndevice = "cpu"\n'
                     'epochs = 1\nchannels = [4, 8, 8]\nhidden = [16]\n[params]\nlr = { choices = [1e-3, 2e-3] }\n')
    out = assert_ok(invoke("search", "convae", "--space", space, "--out", tmp_path / "st", "--trials", "2",
                           "--vectorize", "2"))
    assert "2 vectorised trials do not fit in memory together: training them one by one" in out
    summary = json.loads((tmp_path / "st" / "summary.json").read_text())
    assert summary["states"]["complete"] == 2


@pytest.mark.parametrize("error, words", [
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of "
                            "79.19 GiB of which 1.06 GiB is free."), "out of memory on cuda (one allocation of "
                                                                     "2.00 GiB failed)"),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                  "you tried to allocate 1644167168 bytes."), "out of memory on cuda (one allocation of 1.5 GiB "
                                                              "failed)"),
    (MemoryError(), "out of memory on cuda"),
])
def test_each_kind_of_failed_allocation_is_worded_with_its_size_where_known(error, words):
    oom = out_of_memory(error, "cuda")
    assert isinstance(oom, OutOfMemory) and oom.message == words
    assert out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"), "cuda") is None


def test_a_model_too_large_to_build_from_python_is_a_zoo_out_of_memory(tmp_path):
    """The command line said "out of memory"; zoo.create and zoo.train raised torch's allocator RuntimeError."""
    script = ("import zoo, zoo.errors\n"
              "for call in (lambda: zoo.create('hvae', layers=2, layer_hidden=16384),\n"
              "             lambda: zoo.train('hvae', dataset='digits', layers=2, layer_hidden=16384, out='run')):\n"
              "    try:\n"
              "        call()\n"
              "    except zoo.errors.OutOfMemory as e:\n"
              "        print('said:', e.message)\n")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                       preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT)))
    assert r.stdout.count("said: out of memory (one allocation of") == 2, r.stdout + r.stderr
    assert not (tmp_path / "run").exists()


def test_an_os_error_of_memory_is_said_as_memory_not_as_the_path_it_was_using():
    import errno

    from zoo.errors import storage_error

    said = storage_error(OSError(errno.ENOMEM, "Cannot allocate memory", "/usr/lib/torchvision/models"),
                         "cannot write", "Epochs up to 3 are saved.")
    assert isinstance(said, OutOfMemory) and said.exit_code == OutOfMemory.exit_code
    assert said.message == "out of memory. Epochs up to 3 are saved." and "torchvision" not in str(said)
    assert "--batch-size or --n, where the command has them" in said.hint
