"""Processes that share one study draw different configurations: two searches started at the same
moment on one storage (SQLite, the journal file), a grid shared by two processes, and a configuration
that two processes draw at once; a seeded search in one process draws the same trials again."""

from __future__ import annotations

import multiprocessing
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import SEARCH_FIXED, quiet, written

optuna = pytest.importorskip("optuna")

FIXED = SEARCH_FIXED


@pytest.fixture(scope="module")
def warm(tmp_path_factory) -> None:
    """One search in this process first, so that forked searches inherit every module it imports
    (torch's optimizers, scikit-learn, matplotlib) instead of each importing them for seconds."""
    from zoo.search import run_search

    root = tmp_path_factory.mktemp("warm")
    space = written(root / "w.toml", FIXED + "epochs = 1\n[params]\nlatent_dim = { low = 2, high = 3 }\n")
    run_search("convae", space, out=root / "w", trials=1, log=quiet)


def _search_when_all_are_ready(barrier, options: dict) -> None:
    from zoo.search import run_search

    barrier.wait(timeout=60)
    run_search("convae", log=quiet, **options)


def search_at_once(processes: int, **options) -> None:
    """`processes` searches through the public API, each in its own process, released at the same
    moment (forked: they start without importing torch again)."""
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(processes)
    procs = [ctx.Process(target=_search_when_all_are_ready, args=(barrier, options)) for _ in range(processes)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=180)
    for p in procs:
        if p.is_alive():
            p.kill()
    assert [p.exitcode for p in procs] == [0] * processes


def journal(study_dir: Path, name: str):
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(study_dir / "journal.log")))
    return optuna.load_study(study_name=name, storage=storage)


def complete(study) -> list:
    return [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]


def config(trial) -> tuple:
    return tuple(sorted(trial.params.items()))


def pids(trials) -> set[int]:
    return {t.user_attrs["worker"]["pid"] for t in trials}


def test_two_searches_started_at_once_on_one_sqlite_study_draw_distinct_configurations(tmp_path, warm):
    # the same seed in both, as when two people run the same command: TPE's first trials are random draws
    space = written(tmp_path / "s.toml", "[search]\nstrategy = \"tpe\"\npruner = \"none\"\nseed = 0\n" + FIXED
                  + "epochs = 2\n[params]\nlr = { low = 1e-3, high = 1e-2, log = true }\n"
                    "latent_dim = { low = 2, high = 6 }\n")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    search_at_once(2, space=space, study="s", out=tmp_path / "s", storage=url, trials=6)
    trials = complete(optuna.load_study(study_name="s", storage=url))
    assert 6 <= len(trials) <= 7  # a budget over both processes (the last trials may start together)
    assert len({config(t) for t in trials}) == len(trials)
    assert len(pids(trials)) == 2  # both processes ran trials


def test_two_processes_on_one_grid_run_every_point_once(tmp_path, warm):
    space = written(tmp_path / "g.toml", "[search]\nstrategy = \"grid\"\npruner = \"none\"\n" + FIXED
                  + "epochs = 1\n[params]\nlr = { choices = [1e-3, 3e-3] }\nlatent_dim = { low = 2, high = 4 }\n")
    search_at_once(2, space=space, study="g", out=tmp_path / "g")
    trials = complete(journal(tmp_path / "g", "g"))
    assert sorted(config(t) for t in trials) == sorted(
        (("latent_dim", d), ("lr", lr)) for lr in (1e-3, 3e-3) for d in (2, 3, 4))
    assert len(pids(trials)) == 2


def test_two_processes_never_run_one_configuration_at_the_same_time(tmp_path, warm):
    # one configuration only: while one process trains it, the other's draw of it is failed, not run
    space = written(tmp_path / "one.toml", "[search]\nstrategy = \"random\"\npruner = \"none\"\nseed = 0\n" + FIXED
                  + "epochs = 6\n[params]\nlatent_dim = { choices = [3] }\n")
    search_at_once(2, space=space, study="one", out=tmp_path / "one", trials=2)
    trials = journal(tmp_path / "one", "one").get_trials(deepcopy=False)
    ran = sorted((t.datetime_start, t.datetime_complete) for t in trials if t.state.name == "COMPLETE")
    assert len(ran) == 2
    # one after the other, never together (a trial's clock starts when it is asked, a few ms before its
    # draw is compared; a trial trains for a second or more)
    assert ran[1][0] >= ran[0][1] - timedelta(seconds=0.25)
    assert ran[0][1] - ran[0][0] > timedelta(seconds=0.5)
    for t in trials:
        if t.state.name == "FAIL":
            assert t.user_attrs["note"].startswith("drew the configuration of trial ")
            assert "values" in t.user_attrs and "loss" not in t.user_attrs  # drawn, not trained


def test_a_seeded_search_draws_the_same_trials_again_and_a_resumed_one_new_trials(tmp_path):
    from zoo.search import run_search

    space = written(tmp_path / "r.toml", "[search]\nstrategy = \"random\"\npruner = \"none\"\n" + FIXED
                  + "epochs = 1\n[params]\nlr = { low = 1e-3, high = 1e-2, log = true }\n"
                    "latent_dim = { low = 2, high = 6 }\n")
    drawn = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        run_search("convae", space, study=name, out=tmp_path / name, trials=2, seed=seed, log=quiet)
        drawn[name] = [config(t) for t in journal(tmp_path / name, name).trials]
    assert drawn["a"] == drawn["b"] and drawn["a"] != drawn["c"]
    run_search("convae", study="a", out=tmp_path / "a", trials=4, seed=7, log=quiet)
    resumed = [config(t) for t in journal(tmp_path / "a", "a").trials]
    assert resumed[:2] == drawn["a"] and len(set(resumed)) == 4
