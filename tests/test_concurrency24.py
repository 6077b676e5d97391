"""Commands sharing one folder at once (findings of conc24): each refuses a folder another command writes, a push
publishes the eval-images it checked, a pull during a push gets a whole version, a reader's lock probe does not
refuse a writer."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import TINY_SET, assert_clean_error, assert_ok, invoke, quiet, tiny_space


def _train_into(out: Path, *more: str):
    return invoke("train", "convae", "--dataset", "digits", "--epochs", "1", "--out", out, *TINY_SET, *more)


@pytest.mark.parametrize("marker,said", [("space.toml", "search's study folder"),
                                         ("journal.log", "search's study folder"),
                                         ("cv.json", "cross-validation's folder"),
                                         ("folds.json", "cross-validation's folder")])
@pytest.mark.parametrize("overwrite", [False, True])
def test_train_out_refuses_a_study_or_cv_folder(tmp_path, marker, said, overwrite):
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / marker).write_text("{}\n")
    assert_clean_error(_train_into(folder, *(["--overwrite"] if overwrite else [])), said, "--out")
    assert sorted(p.name for p in folder.iterdir()) == [marker]  # nothing written there, not even a lock file


def test_search_out_refuses_a_folder_a_running_cv_holds(tmp_path):
    folder = tmp_path / "cv7"
    folder.mkdir()
    holder = subprocess.Popen(  # what `zoo cv --out cv7` holds during its first fold: only the writer lock
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from zoo.runs.lock import lock_run; "
         "lock = lock_run(Path(sys.argv[1])); print('held', flush=True); time.sleep(60)", str(folder)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        (tmp_path / "sp.toml").write_text(tiny_space(1, 1))
        out = assert_clean_error(invoke("search", "convae", "--space", tmp_path / "sp.toml", "--out", folder),
                                 "being written by another zoo process", f"pid {holder.pid}")
        assert "journal" not in out
    finally:
        holder.kill()
        holder.wait()
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == []


def test_push_publishes_the_eval_images_it_checked(vae_copy, tmp_path, monkeypatch):
    import zoo
    from zoo.runs import eval_images

    zoo.evaluate(vae_copy, progress=False)
    checked = (vae_copy / eval_images.IMAGES_FILE).read_bytes()
    real_read = eval_images.read

    def read_then_evaluation_ends(folder, evaluated):  # another evaluation rewrites the file right after the check
        result = real_read(folder, evaluated)
        (vae_copy / eval_images.IMAGES_FILE).write_bytes(b"another evaluation's figures")
        return result

    monkeypatch.setattr(eval_images, "read", read_then_evaluation_ends)
    zoo.push(vae_copy, f"file://{tmp_path / 'hub' / 'v'}", log=quiet)
    assert (tmp_path / "hub" / "v" / eval_images.IMAGES_FILE).read_bytes() == checked


def test_pull_during_a_push_swap_gets_the_new_version_not_no_hub(digits_run, digits_vae_run, tmp_path, monkeypatch):
    import zoo
    from zoo.hub import folder as hub_folder

    entry = tmp_path / "hub" / "e"
    loc = f"file://{entry}"
    zoo.push(digits_run, loc, log=quiet)
    real_check = hub_folder.check_replaceable

    def slow_while_swapping(dest, shown=None):  # the old version moved aside, the new one not yet in place
        if shown is not None:
            time.sleep(1.5)
        return real_check(dest, shown)

    monkeypatch.setattr(hub_folder, "check_replaceable", slow_while_swapping)
    pusher = threading.Thread(target=zoo.push, args=(digits_vae_run, loc), kwargs={"log": quiet})
    pusher.start()
    try:
        deadline = time.time() + 30
        while os.path.lexists(entry) and time.time() < deadline:
            time.sleep(0.005)
        assert not os.path.lexists(entry), "the push never moved the old version aside"
        notes = []
        pulled = zoo.pull(loc, log=notes.append)
    finally:
        pusher.join()
    assert not any("not reachable" in n for n in notes), notes
    config = json.loads((Path(pulled["folder"]) / "config.json").read_text())
    assert config["model"] == json.loads((digits_vae_run / "config.json").read_text())["model"]


def test_a_push_waits_for_a_pull_reading_the_old_version(digits_run, digits_vae_run, tmp_path, monkeypatch):
    import zoo
    from zoo.hub import limits

    entry = tmp_path / "hub" / "e"
    loc = f"file://{entry}"
    zoo.push(digits_run, loc, log=quiet)
    reading = threading.Event()
    real_admit = limits.admit

    def slow_copy(*args, **kwargs):  # each file of the pull takes a while: the push comes in the middle
        reading.set()
        time.sleep(0.3)
        return real_admit(*args, **kwargs)

    monkeypatch.setattr(limits, "admit", slow_copy)
    got = {}
    puller = threading.Thread(target=lambda: got.update(pulled=zoo.pull(loc, log=quiet)))
    puller.start()
    assert reading.wait(30)
    zoo.push(digits_vae_run, loc, log=quiet)  # replaces the entry while the pull copies it
    puller.join(timeout=60)
    assert "pulled" in got, "the pull failed"
    assert json.loads((Path(got["pulled"]["folder"]) / "config.json").read_text())["model"] == \
        json.loads((digits_run / "config.json").read_text())["model"]  # the old version, whole
    assert json.loads((entry / "config.json").read_text())["model"] == \
        json.loads((digits_vae_run / "config.json").read_text())["model"]


def test_writer_lock_is_not_refused_for_a_readers_moment(tmp_path):
    from zoo.runs.lock import LOCK, lock_run

    (tmp_path / LOCK).write_text("424242\n")  # what a killed training leaves
    fd = os.open(tmp_path / LOCK, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)  # a reader's probe (zoo info, zoo push: writer_of), released a moment later
    threading.Timer(0.05, os.close, args=(fd,)).start()
    lock = lock_run(tmp_path)  # refused at once before: "being written by another zoo process (pid 424242)"
    assert (tmp_path / LOCK).read_text().strip() == str(os.getpid())  # this process is the writer now
    lock.release()


def test_push_of_a_run_using_a_missing_package_names_the_package_not_an_edit(tmp_path):
    import zoo

    from conftest import TINY

    run = zoo.train("dae", dataset="digits", epochs=1, out=tmp_path / "dae", log=quiet, progress=False, **TINY).run_dir
    record = json.loads((run / "config.json").read_text())  # as trained with a plugin's noise, since uninstalled
    record["uses"] = [{"kind": "noise model", "name": "speckle9", "package": "zoo-speckle9", "version": "0.1"}]
    record["config"]["noise"] = "speckle9:0.3"
    (run / "config.json").write_text(json.dumps(record, indent=2))
    out = assert_clean_error(invoke("push", run, f"file://{tmp_path / 'hub' / 'x'}"), "zoo-speckle9")
    assert "was edited" not in out and not (tmp_path / "hub" / "x").exists()


def test_refusals_leave_a_train_into_a_new_folder_working(tmp_path):
    assert_ok(_train_into(tmp_path / "fresh"))
