"""Shared fixtures and helpers for zoo's test suite.

Every test runs offline (ZOO_OFFLINE=1), with its own user cache (XDG_CACHE_HOME), without
ZOO_DATA_DIR, inside its own temporary working directory, and with one CPU thread (a shared 2-core
machine is many times slower with two competing torch threads).
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

# Before torch is imported anywhere (here or in a subprocess that inherits the environment).
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from zoo.console import quiet  # noqa: E402,F401  (a `log` for the library that keeps test output short)

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]

# The files whose tests take minutes start first: with `-n 2 --dist loadfile` (the README's test
# command) the other process works through the rest meanwhile, instead of waiting for them at the end.
# (pyproject.toml's --no-loadscope-reorder keeps xdist to this order.) Seconds alone, 2026-12-03:
# readme 358, hub 113, run_integrity 73, search 71, mlflow 58, oserrors 54, search_resume 51.
LONGEST_FIRST = ("test_readme.py", "test_hub.py", "test_run_integrity.py", "test_search.py", "test_mlflow.py",
                 "test_oserrors.py", "test_search_resume.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order

# Real MNIST / Fashion-MNIST: $ZOO_DATA_DIR as the suite was started (CI: ../shared/datasets, relative to
# the repository), else the repository's sibling shared/datasets. Tests that need them skip without them.
_env_data = os.environ.get("ZOO_DATA_DIR")
_candidates = [Path(_env_data), REPO / _env_data] if _env_data else []
_candidates.append(REPO.parent / "shared" / "datasets")
REAL_DATA_DIR = next((p.resolve() for p in _candidates if p.is_dir()), None)

IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# A small ConvAE that trains an epoch of `digits` in a fraction of a second on one CPU thread.
TINY = {"channels": [4, 8, 8], "hidden": [16], "device": "cpu"}
TINY_SET = ["--set", "channels=4,8,8", "--set", "hidden=16", "--device", "cpu", "--no-progress"]


def tiny_space(trials: int, epochs: int) -> str:
    """A search space over the learning rate of the tiny ConvAE on `digits`."""
    return (f"[search]\ntrials = {trials}\n[params]\nlr = {{low = 1e-4, high = 1e-2, log = true}}\n[fixed]\n"
            f'epochs = {epochs}\ndataset = "digits"\nchannels = [4, 8, 8]\nhidden = [16]\ndevice = "cpu"\n')


# ------------------------------------------------------------------------------------------ environment

@pytest.fixture(scope="session", autouse=True)
def _session_env(tmp_path_factory):
    """The same isolation for session- and module-scoped fixtures, which run before per-test fixtures."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOO_OFFLINE", "1")
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("session-cache")))
        mp.delenv("ZOO_DATA_DIR", raising=False)
        mp.delenv("ZOO_CATALOG", raising=False)
        yield


@pytest.fixture(autouse=True)
def _ctrl_c_as_python_sets_it():
    """Ctrl-C as an interactive Python has it (KeyboardInterrupt), whatever the suite's parent left: a suite
    started under nohup inherits SIGINT ignored, which zoo, rightly, leaves ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No network, a private user cache, no data dir nor catalogue from the environment, a private working dir."""
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("ZOO_DATA_DIR", raising=False)
    monkeypatch.delenv("ZOO_CATALOG", raising=False)
    monkeypatch.chdir(tmp_path)


# ------------------------------------------------------------------------------------------ running zoo

def run_zoo(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 180) -> subprocess.CompletedProcess:
    """`python -m zoo ARGS` in a real subprocess, with the current (isolated) environment plus `env`."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "zoo", *map(str, args)], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout)


def invoke(*args: str):
    """The click app in-process (much faster than a subprocess); returns click's Result."""
    from click.testing import CliRunner

    from zoo.cli.main import cli

    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="zoo")


def assert_ok(result) -> str:
    """The command succeeded; returns its output (stdout and stderr)."""
    output = getattr(result, "output", None)
    if output is None:  # subprocess.CompletedProcess
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
    else:
        assert result.exit_code == 0, (output, result.exception)
    return output


def assert_clean_error(result, *fragments: str, code: int | None = None) -> str:
    """The command failed with a message, a non-zero exit code and no traceback; returns the output."""
    if isinstance(result, subprocess.CompletedProcess):
        output, rc = result.stdout + result.stderr, result.returncode
    else:
        output, rc = result.output, result.exit_code
        # An unhandled exception is kept by CliRunner; a handled error ends in SystemExit.
        assert isinstance(result.exception, SystemExit), f"unhandled {result.exception!r}:\n{output}"
    assert rc != 0, output
    if code is not None:
        assert rc == code, output
    assert "Traceback" not in output, output
    assert "Error" in output, output
    for fragment in fragments:
        assert fragment in output, f"{fragment!r} not in:\n{output}"
    return output


# ------------------------------------------------------------------------------------------ runs

def _not_json(name: str):
    raise ValueError(f"{name} is not JSON")


def read_metrics(run: Path) -> list[dict]:
    """metrics.jsonl's rows, read as strict JSON (NaN or Infinity fail the test)."""
    return [json.loads(line, parse_constant=_not_json)
            for line in (Path(run) / "metrics.jsonl").read_text().splitlines() if line.strip()]


def read_config(run: Path) -> dict:
    return json.loads((Path(run) / "config.json").read_text())


def weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], **tol) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=lambda m, k=k: f"{k}: {m}", **tol)


def is_png(path: Path) -> bool:
    return Path(path).is_file() and Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> Path:
    """A finished 2-epoch tiny ConvAE run on digits. Read-only: use `run_copy` to change it."""
    import zoo

    out = tmp_path_factory.mktemp("shared-runs") / "digits-tiny"
    zoo.train("convae", dataset="digits", epochs=2, out=out, log=quiet, progress=False, **TINY)
    return out


@pytest.fixture
def run_copy(digits_run, tmp_path) -> Path:
    """A private copy of `digits_run` that a test may change."""
    return Path(shutil.copytree(digits_run, tmp_path / "run"))


@pytest.fixture(scope="session")
def digits_vae_run(tmp_path_factory) -> Path:
    """A finished 1-epoch tiny VAE run (latent 2) on digits. Read-only: use `vae_copy` to change it."""
    import zoo

    out = tmp_path_factory.mktemp("shared-runs") / "digits-vae"
    zoo.train("vae", dataset="digits", epochs=1, latent_dim=2, out=out, log=quiet, progress=False, **TINY)
    return out


@pytest.fixture
def vae_copy(digits_vae_run, tmp_path) -> Path:
    """A private copy of `digits_vae_run`, in tmp_path/vae."""
    return Path(shutil.copytree(digits_vae_run, tmp_path / "vae"))


# ------------------------------------------------------------------------------------------ data files

def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file (unsigned bytes) holding `array`."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.tobytes()


def make_idx_arrays(n_train: int = 30, n_test: int = 10, fill: int | None = None, size: int = 28, seed: int = 0):
    """Synthetic MNIST-like arrays. Image i has pixel [0, 0] = i (an id) and label i % 10; the other
    pixels are `fill` if given (to tell sets apart) or random."""
    rng = np.random.default_rng(seed)

    def images(n):
        if fill is None:
            x = rng.integers(0, 256, size=(n, size, size), dtype=np.uint8)
        else:
            x = np.full((n, size, size), fill, dtype=np.uint8)
        x[:, 0, 0] = np.arange(n) % 256
        return x

    return {
        "train_images": images(n_train), "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": images(n_test), "test_labels": (np.arange(n_test) % 10).astype(np.uint8),
    }


def write_idx_set(directory: Path, arrays: dict[str, np.ndarray] | None = None, *, gz: bool = True,
                  **kwargs) -> dict[str, np.ndarray]:
    """Write the four IDX files, under their standard names, into `directory`; return the arrays."""
    arrays = arrays or make_idx_arrays(**kwargs)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for key, stem in IDX_NAMES.items():
        data = idx_bytes(arrays[key])
        if gz:
            (directory / (stem + ".gz")).write_bytes(gzip.compress(data))
        else:
            (directory / stem).write_bytes(data)
    return arrays


def written(path: Path, text: str) -> Path:
    """`path` with `text` written into it (a space or config file of a test)."""
    path.write_text(text)
    return path


def stopped_run(model: str, out: Path, epoch: int = 1, epochs: int = 3, **config) -> Path:
    """`out`: a run of `model` on digits (TINY) stopped by a Ctrl-C as `epoch` of its `epochs` begins, as a
    user's stop leaves one (epoch 1: its weights the untrained ones)."""
    import zoo

    class CtrlC(zoo.Callback):
        def on_epoch_start(self, trainer, started):
            if started == epoch:
                raise KeyboardInterrupt

    said = "no epoch was finished" if epoch == 1 else f"interrupted during epoch {epoch}"
    with pytest.raises(zoo.errors.Interrupted, match=said):
        zoo.train(model, dataset="digits", epochs=epochs, out=out, log=quiet, progress=False,
                  callbacks=[CtrlC()], **{**TINY, **config})
    return out


def trial_rows(study_dir: Path) -> list[dict]:
    """The rows of a study's trials.csv, as dicts by column."""
    with open(study_dir / "trials.csv", newline="") as fh:
        return list(csv.DictReader(fh))


# ------------------------------------------------------------------------------------------ plugins

# A plugin module's source: an MLP autoencoder named {model}, with {extra} (module level, after its Config),
# {body} (more of its class) and {hooks} (more of the module: other classes, hooks) filled in by a test.
MLP_PLUGIN = '''\
import os
import typing
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import zoo


@dataclass
class Config:
    latent_dim: int = zoo.param(3, "size of the code", low=1, high=64)
{extra}

class MLPAE(zoo.ZooModel):
    name = "{model}"
    Config = Config

    def __init__(self, config, shape, num_classes=0):
        super().__init__(config, shape, num_classes)
        pixels = shape[0] * shape[1] * shape[2]
        self.enc = nn.Linear(pixels, config.latent_dim)
        self.dec = nn.Linear(config.latent_dim, pixels)

    def encode(self, x):
        return self.enc(x.flatten(1))

    def decode(self, z):
        return torch.sigmoid(self.dec(z)).view(-1, *self.shape)

    def reconstruct(self, x):
        return self.decode(self.encode(x))

    def loss(self, batch):
        return {{"loss": F.mse_loss(self.reconstruct(batch.x), batch.x)}}
{body}

@zoo.hookimpl
def zoo_models():
    return [MLPAE]
{hooks}
'''

TINYPLUG = '"""A third-party zoo plugin: a one-linear-layer autoencoder."""\n' + MLP_PLUGIN.format(
    model="tinyae", extra="", body='    description = "one linear layer each way"\n', hooks="")

BROKENPLUG = '''\
raise ImportError("brokenplug needs a library that is not installed")
'''


def write_plugin(root: Path, package: str, entry_point: str, source: str, version: str = "0.1") -> Path:
    """A package installed the way pip would leave it: the module plus a .dist-info folder with its
    `zoo.models` entry point. Put `root` on sys.path / PYTHONPATH to install it."""
    root.mkdir(parents=True, exist_ok=True)
    (root / package).mkdir()
    (root / package / "__init__.py").write_text(source)
    info = root / f"{package}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[zoo.models]\n{entry_point} = {package}\n")
    return root


def with_pythonpath(root: Path) -> dict[str, str]:
    old = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": str(root) + (os.pathsep + old if old else "")}


@pytest.fixture(scope="session")
def tinyplug_dir(tmp_path_factory) -> Path:
    return write_plugin(tmp_path_factory.mktemp("tinyplug"), "tinyplug", "tinyae", TINYPLUG)


@pytest.fixture(scope="session")
def brokenplug_dir(tmp_path_factory) -> Path:
    return write_plugin(tmp_path_factory.mktemp("brokenplug"), "brokenplug", "broken", BROKENPLUG)


@pytest.fixture
def plugin_installer(tmp_path):
    """install(package, source, version=..., files={NAME: TEXT}): a plugin package whose module is `source`
    (with `files` beside it, a catalog.toml), written into tmp_path as pip would leave it and registered in this
    process; its folder. Every one is removed again after the test."""
    import importlib

    from zoo import registry

    roots = []

    def install(package: str, source: str, *, version: str = "0.1", files: dict[str, str] | None = None) -> Path:
        root = write_plugin(tmp_path / f"site-{package}-{version}", package, package, source, version)
        for name, text in (files or {}).items():
            (root / package / name).write_text(text)
        sys.path.insert(0, str(root))
        sys.modules.pop(package, None)
        importlib.invalidate_caches()
        roots.append((root, package))
        registry.load_registry(refresh=True)
        return root / package

    yield install
    for root, package in roots:
        sys.path.remove(str(root))
        sys.modules.pop(package, None)
    importlib.invalidate_caches()
    registry.load_registry(refresh=True)


def failures_of(package: str) -> list[str]:
    """The load failures zoo recorded of plugin package `package`."""
    from zoo import registry

    return [f.error for f in registry.load_registry().failures if f.package == package]


def _install_in_process(root: Path, module: str):
    """Make the plugin visible to this process: sys.path, then zoo rereads its entry points."""
    import importlib

    from zoo import registry

    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    registry.load_registry(refresh=True)
    try:
        yield root
    finally:
        sys.path.remove(str(root))
        sys.modules.pop(module, None)
        importlib.invalidate_caches()
        registry.load_registry(refresh=True)


@pytest.fixture
def tinyplug_installed(tinyplug_dir):
    yield from _install_in_process(tinyplug_dir, "tinyplug")


@pytest.fixture
def brokenplug_installed(brokenplug_dir):
    yield from _install_in_process(brokenplug_dir, "brokenplug")


def real_data(name: str) -> Path:
    """The folder holding the real `name` IDX files, or skip the test."""
    if REAL_DATA_DIR is None or not all((REAL_DATA_DIR / name / (s + ".gz")).is_file() for s in IDX_NAMES.values()):
        pytest.skip(f"real {name} files not found (set ZOO_DATA_DIR)")
    return REAL_DATA_DIR


# ------------------------------------------------------------------------------------------ searches and hubs

# The [fixed] table of a search space that trains the tiny ConvAE on digits (add `epochs = N`).
SEARCH_FIXED = """
[fixed]
dataset = "digits"
channels = [4, 8, 8]
hidden = [16]
device = "cpu"
"""


@pytest.fixture
def folder_hub(digits_run, tmp_path) -> Path:
    """`digits_run` pushed to a folder hub of this test's own."""
    from zoo import hub

    dest = tmp_path / "shared" / "digits"
    hub.push(digits_run, f"file://{dest}")
    return dest


SECRET = b"TOP-SECRET-" * 64


@pytest.fixture
def secret(tmp_path) -> Path:
    """A file only its owner may read, like /etc/shadow, on the hub's own disk (a hard link needs one)."""
    path = tmp_path / "private" / "shadow"
    path.parent.mkdir()
    path.write_bytes(SECRET)
    path.chmod(0o600)
    return path


def interrupt_zoo(args, log: Path, ready, within: float = 120, sig: int = signal.SIGINT) -> tuple[int, str]:
    """Run `python -m zoo ARGS` (Ctrl-C at its default action, output into `log`), send it `sig` (Ctrl-C's
    SIGINT) as soon as `ready()` holds (polled every 0.1 s, for at most `within` seconds), and return its
    exit code and output."""
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "zoo", *map(str, args)], stdout=fh, stderr=subprocess.STDOUT,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.time() + within
        while time.time() < deadline and proc.poll() is None:
            if ready():
                proc.send_signal(sig)
                break
            time.sleep(0.1)
        proc.wait(timeout=60)
    return proc.returncode, Path(log).read_text()
