"""What a `kill -9` in the middle of a hub write leaves behind (a `.tmp-*` copy in zoo's cache, a
`.NAME.tmp-*` / `.NAME.old-*` folder beside a push destination, a `.NAME.XXXX.tmp` record) is removed
by a later pull or push once stale: no live process holds it (and it is older than a minute). A
concurrent writer's temporaries are never touched."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import assert_ok, invoke, run_zoo
from test_hub import REPO_ID, hf_env, last_line, run_bytes, server  # noqa: F401  (fixtures)
from zoo import hub as zhub

HOURS_AGO = time.time() - 2 * 3600

# `python -c` with one step of zoo made to stop (print STOPPED, then sleep) so the test can kill it there.
STOP_AFTER_COPYING_WEIGHTS = """
import sys, time
import zoo.hub.folder as f
copy = f._copy_nofollow
def stop_after(dir_fd, name, *args):
    digest = copy(dir_fd, name, *args)
    if name == "model.safetensors":
        print("STOPPED", flush=True)
        time.sleep(300)
    return digest
f._copy_nofollow = stop_after
from zoo.cli.main import main
main()
"""

STOP_BETWEEN_OLD_AND_NEW = """
import sys, time
import zoo.hub.folder as f
check = f.check_replaceable
def stop_after(dest, shown=None):
    check(dest, shown)
    if shown is not None:  # the old version has been moved aside, the new one is not in place yet
        print("STOPPED", flush=True)
        time.sleep(300)
f.check_replaceable = stop_after
from zoo.cli.main import main
main()
"""


def kill_when_stopped(script: str, *args: str) -> None:
    """Run zoo with `script`'s stop, and kill -9 it there."""
    proc = subprocess.Popen([sys.executable, "-c", script, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "STOPPED", (line, proc.stderr.read() if proc.poll() is not None else "")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)


def age(path: Path) -> None:
    os.utime(path, (HOURS_AGO, HOURS_AGO))


def held(path: Path) -> int:
    """A temporary folder held by a live writer: this process, with the lock every zoo writer takes."""
    path.mkdir(parents=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


@pytest.fixture
def hub(folder_hub) -> Path:
    return folder_hub


def test_a_pull_killed_mid_copy_leaves_a_folder_that_a_later_pull_removes(hub):
    base = zhub.zoo_cache() / "file"
    kill_when_stopped(STOP_AFTER_COPYING_WEIGHTS, "pull", f"file://{hub}")
    leftovers = list(base.glob(".tmp-*"))
    assert len(leftovers) == 1 and (leftovers[0] / "model.safetensors").is_file()  # what kill -9 leaves

    assert_ok(invoke("pull", f"file://{hub}"))
    assert leftovers[0].exists()  # a minute's grace: a folder is created an instant before it is locked
    age(leftovers[0])
    assert "already in the cache" in assert_ok(invoke("pull", f"file://{hub}"))

    assert not list(base.glob(".tmp-*"))


def test_a_push_killed_mid_swap_is_cleaned_up_by_the_next_push(hub, digits_run):
    shared = hub.parent
    kill_when_stopped(STOP_BETWEEN_OLD_AND_NEW, "push", digits_run, f"file://{hub}")
    old, new = list(shared.glob(".digits.old-*")), list(shared.glob(".digits.tmp-*"))
    assert not hub.exists() and len(old) == 1 and len(new) == 1  # what kill -9 leaves
    for path in old + new:
        age(path)

    assert_ok(invoke("push", digits_run, f"file://{hub}"))
    assert sorted(os.listdir(shared)) == ["digits"]
    assert run_bytes(hub) == run_bytes(digits_run)
    assert sorted(os.listdir(hub)) == sorted([".zoo-pushed.json",
                                              *json.loads((hub / ".zoo-pushed.json").read_text())["files"]])


def test_a_live_writers_temporaries_are_never_touched(hub, digits_run, tmp_path):
    base = zhub.zoo_cache() / "file"
    shared = hub.parent
    live = [base / ".tmp-live", shared / ".digits.tmp-live", shared / ".digits.old-live"]
    fds = [held(p) for p in live]
    fresh = [base / ".tmp-fresh", shared / ".digits.tmp-fresh"]   # just created, not yet locked
    dead = [base / ".tmp-dead", shared / ".digits.tmp-dead"]
    others = [shared / ".other.tmp-dead"]                          # another entry's: its own push sweeps it
    for path in fresh + dead + others:
        path.mkdir(parents=True)
    for path in live + dead + others:
        age(path)
    try:
        assert_ok(invoke("pull", f"file://{hub}"))
        assert_ok(invoke("push", digits_run, f"file://{hub}"))
        assert all(p.is_dir() for p in live + fresh + others)
        assert not any(p.exists() for p in dead)
    finally:
        for fd in fds:
            os.close(fd)


def test_stale_records_are_removed_and_fresh_ones_kept(server, hf_env, hub, digits_run, tmp_path):  # noqa: F811
    folder = Path(zhub.pull(f"file://{hub}")["folder"])
    stale_record, fresh_record = folder / ".zoo-pulled.json.0badf00d.tmp", folder / ".zoo-pulled.json.1234abcd.tmp"
    for path in (stale_record, fresh_record):
        path.write_text("{")
    age(stale_record)
    zhub.pull(f"file://{hub}")
    assert fresh_record.exists() and not stale_record.exists()

    server.seed(REPO_ID, run_bytes(digits_run))
    last_line(run_zoo("pull", f"hf://{REPO_ID}", env=hf_env, timeout=60))
    store = next((tmp_path / "xdg-cache" / "zoo" / "hub" / "hf").glob(f"*/{REPO_ID.replace('/', '--')}"))
    planted = {store / "refs" / ".main.0badf00d.tmp": True, store / "verified" / ".x.json.0badf00d.tmp": True,
               store / "refs" / ".main.1234abcd.tmp": False}
    for path, stale in planted.items():
        path.write_text("partial")
        if stale:
            age(path)
    last_line(run_zoo("pull", f"hf://{REPO_ID}", env=hf_env, timeout=60))
    assert {p: p.exists() for p in planted} == {p: not stale for p, stale in planted.items()}
