"""Operating-system errors end in one clear message: a full disk (ENOSPC), a file-size limit (EFBIG), a
read-only file system (EROFS) and a folder the user may not write (EACCES), for train, resume, eval,
reconstruct and pull. The message names the path, the reason and what to do, the exit code is
StorageError's, there is no traceback, and the run's files are left as they were.

Every condition is real, made for a real `python -m zoo` process: a file-size rlimit, a tiny tmpfs, a
read-only bind mount (both inside a private mount namespace: nothing outside it sees them) and a user
without root's power to ignore permission bits."""

from __future__ import annotations

import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY_SET, assert_clean_error

from zoo.errors import StorageError
from zoo.runs.lock import LOCK

ZOO = [sys.executable, "-m", "zoo"]
TRAIN = ["train", "convae", "--dataset", "digits", "--epochs", "1", *TINY_SET]
OS_EXIT = StorageError.exit_code


# ------------------------------------------------------------------------------------------ conditions

def _succeeds(command: list[str]) -> bool:
    try:
        return subprocess.run(command, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.fixture(scope="session")
def mounts(tmp_path_factory) -> None:
    """Skip unless this machine lets a user namespace mount a tmpfs and a read-only bind mount of its own."""
    where = tmp_path_factory.mktemp("mount-probe")
    if not _succeeds(["unshare", "-rm", "sh", "-c", f"{tmpfs(where, 64)} && {read_only(where)}"]):
        pytest.skip("user and mount namespaces are not permitted here (unshare -rm)")


@pytest.fixture(scope="session")
def unprivileged() -> list[str]:
    """The command prefix that runs a process without the power to ignore permission bits: nothing for
    an ordinary user; for root, a user namespace in which it is uid 65534 and holds no capabilities
    (it still reads the Python environment under /root, which a plain setuid to nobody could not)."""
    if os.geteuid() != 0:
        return []
    prefix = ["unshare", "--user", "--map-user=65534", "--map-group=65534"]
    if not _succeeds([*prefix, "true"]):
        pytest.skip("root, and user namespaces are not permitted here to drop its power over permissions")
    return prefix


def zoo_with_file_size_limit(limit: int, *args) -> subprocess.CompletedProcess:
    """`python -m zoo ARGS` with no file allowed beyond `limit` bytes: writes past it fail with EFBIG."""
    def set_limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the process instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([*ZOO, *map(str, args)], preexec_fn=set_limit, capture_output=True, text=True,
                          timeout=120)


def in_mount_namespace(*steps: str) -> subprocess.CompletedProcess:
    """Shell steps run as root of a new user and mount namespace; the exit code is the last step's."""
    return subprocess.run(["unshare", "-rm", "sh", "-c", " && ".join(steps)], capture_output=True, text=True,
                          timeout=120)


def q(path: Path) -> str:
    return shlex.quote(str(path))


def tmpfs(folder: Path, kib: int) -> str:
    return f"mount -t tmpfs -o size={kib}k tmpfs {q(folder)}"


def fill(folder: Path) -> str:
    """Use up the rest of the disk `folder` is on."""
    return f"{{ head -c 1G /dev/zero > {q(folder / 'filler')} 2>/dev/null || true; }}"


def read_only(folder: Path) -> str:
    return f"mount --bind {q(folder)} {q(folder)} && mount -o remount,bind,ro {q(folder)}"


def zoo_then(args: list, after: str) -> str:
    """Run zoo, then `after` (to copy out what a namespace-private disk holds), exiting with zoo's code."""
    return f"{{ {shlex.join([*ZOO, *map(str, args)])}; rc=$?; {after}; exit $rc; }}"


# ------------------------------------------------------------------------------------------ checks

def run_files(folder: Path) -> dict[str, bytes]:
    """A run folder's files and their bytes (the writer's lock file aside: it holds the last writer's pid)."""
    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir()) if p.is_file() and p.name != LOCK}


def assert_storage_error(result: subprocess.CompletedProcess, reason: str, *fragments: str) -> str:
    """One "Error:" line with the reason in words, a hint on what to do, StorageError's exit code."""
    output = assert_clean_error(result, *fragments, code=OS_EXIT)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, output
    assert reason in errors[0].lower(), output
    assert result.stderr.strip().splitlines()[-1] != errors[0], f"no hint on what to do:\n{output}"
    return errors[0]


def assert_done_elsewhere_or_refused(result: subprocess.CompletedProcess, run: Path, reason: str) -> None:
    """A read-only command on a run it cannot write either writes its output elsewhere and says where,
    or fails with one clear message."""
    if result.returncode == 0:
        written = [Path(w) for w in result.stdout.split() if w.endswith((".json", ".png"))]
        assert written, result.stdout + result.stderr
        for path in written:
            assert path.is_file() and run.resolve() not in path.resolve().parents, result.stdout
    else:
        assert_storage_error(result, reason)


# ------------------------------------------------------------------------------------------ EFBIG

def test_train_under_a_file_size_limit_is_one_message(tmp_path):
    run = tmp_path / "run"
    result = zoo_with_file_size_limit(40_000, *TRAIN, "--out", run)  # the checkpoint is larger than that
    line = assert_storage_error(result, "file too large", "ulimit")
    assert str(run) in line
    assert not list(run.glob(".*.tmp")), "a temporary file was left behind"


def test_generated_tensors_beyond_a_file_size_limit_name_the_file_asked_for_and_leave_no_temporary(vae_copy,
                                                                                                 tmp_path):
    out = tmp_path / "images.safetensors"
    result = zoo_with_file_size_limit(20_000, "generate", vae_copy, "--n", "64", "--out", out)  # 200 KB of images
    line = assert_storage_error(result, "file too large", "ulimit")
    assert str(out) in line
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))


def test_a_push_past_a_file_size_limit_is_a_storage_error_naming_the_entry_and_keeps_the_version_before(
        digits_run, digits_vae_run, tmp_path):
    hub = tmp_path / "hub" / "entry"
    assert zoo_with_file_size_limit(10**9, "push", digits_run, hub.as_uri()).returncode == 0
    before = run_files(hub)
    result = zoo_with_file_size_limit(2_000, "push", digits_vae_run, hub.as_uri())
    line = assert_storage_error(result, "file too large", "ulimit")
    assert f"cannot write to {hub}" in line
    assert run_files(hub) == before


def test_resume_under_a_file_size_limit_leaves_the_run_as_it_was(run_copy):
    before = run_files(run_copy)
    result = zoo_with_file_size_limit(1_000, "train", "--resume", run_copy, "--epochs", "3", *TINY_SET)
    assert_storage_error(result, "file too large", "ulimit")
    assert run_files(run_copy) == before


# ------------------------------------------------------------------------------------------ ENOSPC

def test_resume_on_a_full_disk_leaves_the_run_as_it_was(mounts, run_copy, tmp_path):
    disk, kept = tmp_path / "disk", tmp_path / "kept"
    disk.mkdir()
    result = in_mount_namespace(tmpfs(disk, 512), f"cp -a {q(run_copy)} {q(disk / 'run')}", fill(disk),
                                zoo_then(["train", "--resume", disk / "run", "--epochs", "3", *TINY_SET],
                                         f"cp -a {q(disk / 'run')} {q(kept)}"))
    line = assert_storage_error(result, "no space left on device")
    assert str(disk / "run") in line
    assert run_files(kept) == run_files(run_copy)


def test_eval_of_a_run_on_a_full_disk_writes_elsewhere_or_says_why(mounts, run_copy, tmp_path):
    disk, kept = tmp_path / "disk", tmp_path / "kept"
    disk.mkdir()
    result = in_mount_namespace(tmpfs(disk, 512), f"cp -a {q(run_copy)} {q(disk / 'run')}", fill(disk),
                                zoo_then(["eval", disk / "run"], f"cp -a {q(disk / 'run')} {q(kept)}"))
    assert_done_elsewhere_or_refused(result, disk / "run", "no space left on device")
    if result.returncode != 0:
        assert str(disk / "run") in result.stderr  # which file could not be written
    assert run_files(kept) == run_files(run_copy)


# ------------------------------------------------------------------------------------------ EROFS

def test_resume_of_a_read_only_run_is_one_message(mounts, run_copy):
    before = run_files(run_copy)
    result = in_mount_namespace(read_only(run_copy),
                                shlex.join([*ZOO, "train", "--resume", str(run_copy), "--epochs", "3", *TINY_SET]))
    line = assert_storage_error(result, "read-only file system", "resume the copy")
    assert str(run_copy) in line
    assert run_files(run_copy) == before


def test_reconstruct_of_a_read_only_run_writes_elsewhere_or_says_why(mounts, run_copy):
    before = run_files(run_copy)
    result = in_mount_namespace(read_only(run_copy), shlex.join([*ZOO, "reconstruct", str(run_copy), "--n", "4"]))
    assert_done_elsewhere_or_refused(result, run_copy, "read-only file system")
    assert run_files(run_copy) == before


def test_pull_into_a_read_only_cache_is_one_message(mounts, digits_run, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    pull = shlex.join([*ZOO, "pull", f"file://{digits_run}"])
    result = in_mount_namespace(read_only(cache), f"XDG_CACHE_HOME={q(cache)} {pull}")
    line = assert_storage_error(result, "read-only file system", "XDG_CACHE_HOME")
    assert str(cache) in line
    assert not any(cache.iterdir())


# ------------------------------------------------------------------------------------------ EACCES

def _lock_down(folder: Path) -> None:
    """Take away write permission from `folder` and everything in it."""
    for p in [folder, *folder.rglob("*")]:
        p.chmod(p.stat().st_mode & ~0o222)


@pytest.fixture
def locked(tmp_path):
    """A folder to take write permission from (`_lock_down`); writable again afterwards, for clean-up."""
    folder = tmp_path / "locked"
    folder.mkdir()
    yield folder
    for p in [folder, *folder.rglob("*")]:
        p.chmod(p.stat().st_mode | 0o200)


def zoo_as_unprivileged(prefix: list[str], *args) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, *ZOO, *map(str, args)], capture_output=True, text=True, timeout=120)


def test_train_into_a_folder_without_write_permission_is_one_message(unprivileged, locked):
    _lock_down(locked)
    result = zoo_as_unprivileged(unprivileged, *TRAIN, "--out", locked / "run")
    line = assert_storage_error(result, "permission denied", "--out")
    assert str(locked / "run") in line
    assert not any(locked.iterdir())


def test_eval_of_a_run_without_write_permission_writes_elsewhere_or_says_why(unprivileged, digits_run, locked):
    run = Path(shutil.copytree(digits_run, locked / "run"))
    _lock_down(locked)
    before = run_files(run)
    result = zoo_as_unprivileged(unprivileged, "eval", run)
    assert_done_elsewhere_or_refused(result, run, "permission denied")
    assert run_files(run) == before


# ------------------------------------------------------------------------------------------ EPIPE

def test_output_into_a_closed_pipe_ends_quietly():
    """`zoo list | head -1`: the reader went away; zoo stops without a message or a traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run([*ZOO, "list", "--pretrained", "--json"], stdout=write_end, stderr=subprocess.PIPE,
                                text=True, timeout=120)
    finally:
        os.close(write_end)
    assert result.returncode == 141, result.stderr  # 128 + SIGPIPE, as a shell reports it
    assert result.stderr == ""


# ------------------------------------------------------------------------------------------ standard output

@pytest.mark.parametrize("args", [["list"], ["--version"], ["info", "convae"]])
def test_output_into_a_full_device_is_said_as_the_standard_outputs_not_a_traceback(args):
    with open("/dev/full", "w") as full:
        result = subprocess.run([*ZOO, *args], stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert result.returncode == OS_EXIT, result.stderr
    assert result.stderr.splitlines()[0] == ("Error: cannot write the standard output: no space left on device "
                                             "(ENOSPC)"), result.stderr
    assert "Traceback" not in result.stderr
