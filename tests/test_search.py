"""`zoo search`: space files, samplers, pruners, storages, workers, study outputs, resuming, dead
workers (journal file and, when ZOO_TEST_POSTGRES_URL is set, a real PostgreSQL server)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import (SEARCH_FIXED, assert_clean_error, assert_ok, interrupt_zoo, invoke, is_png, quiet, trial_rows,
                      written)

import zoo
from zoo.search import space as spacemod
from zoo.errors import ConfigError

optuna = pytest.importorskip("optuna")
optuna.logging.set_verbosity(optuna.logging.WARNING)

FIXED = SEARCH_FIXED

# Ten TPE trials on digits; stride 8 in the second conv layer collapses the images (pruned, not a crash).
SPACE = """
[search]
strategy = "tpe"
pruner = "median"
trials = 10
seed = 0

[objective]
time_penalty = 0.01
latent_penalty = 0.001
latent_key = "latent_dim"
""" + FIXED + """epochs = 2

[params]
lr = { low = 1e-4, high = 1e-2, log = true }
latent_dim = { low = 2, high = 6 }
stride = { elements = [{ choices = [2] }, { choices = [2, 8] }, { choices = [2] }] }
dropout = { low = 0.0, high = 0.5 }
"""

# Trials of about a second or two, for killing a worker in the middle of one.
SLOW = """
[search]
strategy = "random"
pruner = "none"
seed = 0
""" + FIXED + """epochs = 10

[params]
lr = { low = 1e-3, high = 1e-2, log = true }
latent_dim = { low = 2, high = 6 }
"""


def journal_study(study_dir: Path, name: str):
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(study_dir / "journal.log")))
    return optuna.load_study(study_name=name, storage=storage)


# ------------------------------------------------------------------------------------------ a whole search

@pytest.fixture(scope="module")
def tpe_study(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tpe")
    space = written(root / "space.toml", SPACE)
    out = assert_ok(invoke("search", "convae", "--space", space, "--study", "s", "--out", root / "s"))
    (root / "output.txt").write_text(out)
    return root


def test_ten_trial_search_writes_every_output(tpe_study):
    study_dir = tpe_study / "s"
    out = (tpe_study / "output.txt").read_text()
    assert "study s (convae): 10 trials" in out and "best: trial" in out and "retrain it: zoo train convae" in out
    table = trial_rows(study_dir)
    assert [int(r["number"]) for r in table] == list(range(10))
    assert {r["state"] for r in table} <= {"complete", "pruned"}
    invalid = [r for r in table if r["note"].startswith("invalid configuration")]
    assert invalid and all("reduces" in r["note"] and r["stride"] == "[2, 8, 2]" for r in invalid)
    assert sum(r["state"] == "complete" for r in table) >= 3
    for name in ("history.png", "importance.png"):
        assert is_png(study_dir / name), name
    summary = json.loads((study_dir / "summary.json").read_text())
    assert summary["trials"] == 10 and summary["states"]["complete"] + summary["states"]["pruned"] == 10
    assert (study_dir / "space.toml").read_text() == SPACE


def test_objective_is_the_validation_loss_plus_penalties(tpe_study):
    for r in trial_rows(tpe_study / "s"):
        if r["state"] == "complete":
            expected = float(r["val_loss_best"]) + 0.01 * float(r["minutes"]) + 0.001 * int(r["latent"])
            assert float(r["value"]) == pytest.approx(expected, rel=1e-9)


def test_best_toml_retrains_the_best_trial(tpe_study, tmp_path):
    study_dir = tpe_study / "s"
    best = min((r for r in trial_rows(study_dir) if r["state"] == "complete"), key=lambda r: float(r["value"]))
    text = (study_dir / "best.toml").read_text()
    assert text.startswith("# zoo search: the best trial") and 'model = "convae"' in text
    result = zoo.train("convae", config=study_dir / "best.toml", out=tmp_path / "best", log=quiet, progress=False)
    assert result.best_value == pytest.approx(float(best["val_loss_best"]), rel=1e-5)  # the same training
    assert zoo.load(tmp_path / "best").model.config.latent_dim == int(best["latent_dim"])


def test_a_study_resumes_by_name_or_by_its_folder_alone_and_keeps_its_trials(tpe_study):
    study_dir = tpe_study / "s"
    out = assert_ok(invoke("search", "convae", "--study", "s", "--out", study_dir, "--trials", "12"))
    assert "resuming with 10 trials stored" in out  # the space comes from the study folder
    assert [int(r["number"]) for r in trial_rows(study_dir)] == list(range(12))
    r = invoke("search", "dae", "--study", "s", "--out", study_dir, "--trials", "13")
    assert_clean_error(r, "a search over 'convae', not 'dae'")
    out = assert_ok(invoke("search", "convae", "--out", study_dir, "--trials", "13"))  # the study's name: its journal's
    assert "resuming with 12 trials stored" in out
    assert [int(r["number"]) for r in trial_rows(study_dir)] == list(range(13))


# ------------------------------------------------------------------------------------------ samplers, pruners, cv

def test_grid_strategy_runs_every_point_once(tmp_path):
    space = written(tmp_path / "grid.toml", "[search]\nstrategy = \"grid\"\npruner = \"none\"\n" + FIXED
                  + "epochs = 1\n[params]\nlr = { choices = [1e-3, 3e-3] }\nlatent_dim = { low = 2, high = 3 }\n")
    assert_ok(invoke("search", "convae", "--space", space, "--out", tmp_path / "g", "--trials", "50"))
    table = trial_rows(tmp_path / "g")
    assert len(table) == 4 and all(r["state"] == "complete" for r in table)
    assert {(float(r["lr"]), int(r["latent_dim"])) for r in table} == {(1e-3, 2), (1e-3, 3), (3e-3, 2), (3e-3, 3)}


def test_random_strategy_hyperband_and_cross_validated_trials(tmp_path):
    space = written(tmp_path / "r.toml", FIXED + "epochs = 2\n[params]\nlr = { low = 1e-3, high = 1e-2, log = true }\n")
    out = assert_ok(invoke("search", "convae", "--space", space, "--out", tmp_path / "r", "--strategy", "random",
                           "--pruner", "hyperband", "--trials", "2", "--cv", "2", "--seed", "3"))
    assert "2-fold CV" in out
    table = trial_rows(tmp_path / "r")
    assert len(table) == 2
    for r in table:
        if r["state"] == "complete":
            assert float(r["val_loss_best_std"]) >= 0 and int(r["epochs"]) == 4  # two folds of two epochs
    study = journal_study(tmp_path / "r", "convae-r")
    steps = sorted(study.trials[0].intermediate_values)
    assert steps == [1, 2, 3, 4]  # every epoch of every fold reported to the pruner
    best = (tmp_path / "r" / "best.toml").read_text()  # its objective is the folds', and says how to measure it so
    assert "(the mean over 2 folds of the training set)" in best
    assert f"zoo cv convae --config {tmp_path / 'r' / 'best.toml'} --folds 2 measures it as the search did" in best
    assert f"to measure it as the search did: zoo cv convae --config {tmp_path / 'r' / 'best.toml'} --folds 2" in out


# ------------------------------------------------------------------------------------------ dead workers

def _popen(args: list, log: Path) -> subprocess.Popen:
    fh = open(log, "w")
    return subprocess.Popen([sys.executable, "-m", "zoo", *map(str, args)], stdout=fh, stderr=subprocess.STDOUT,
                            env={**os.environ}, start_new_session=True)


def _kill_mid_trial(load_study, proc: subprocess.Popen, log: Path, *, not_pid: int | None = None,
                    timeout: float = 90) -> int:
    """SIGKILL the process running a trial that has reported at least one epoch; return the trial number."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            study = load_study()
        except Exception:  # noqa: BLE001 - the study is not created yet
            time.sleep(0.2)
            continue
        for t in study.get_trials(deepcopy=False):
            w = t.user_attrs.get("worker") or {}
            if t.state.name == "RUNNING" and w.get("trial") == t.number and t.intermediate_values \
                    and w.get("pid") != not_pid:
                os.kill(w["pid"], signal.SIGKILL)
                return t.number
        time.sleep(0.1)
    raise AssertionError("no trial to kill:\n" + log.read_text())


def _check_finished(study, killed: int, budget: int, workers: int = 1) -> None:
    trials = study.get_trials(deepcopy=False)
    states = [t.state.name for t in trials]
    assert "RUNNING" not in states and "WAITING" not in states, states
    numbers = [t.number for t in trials]
    assert numbers == sorted(set(numbers))  # every trial recorded once
    assert trials[killed].state.name == "FAIL"
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1 and retries[0].state.name in ("COMPLETE", "PRUNED")
    assert retries[0].params == trials[killed].params  # the same configuration, run again
    done = sum(s in ("COMPLETE", "PRUNED") for s in states)
    assert budget <= done <= budget + workers - 1


def test_a_search_killed_mid_trial_resumes_and_retries_the_trial(tmp_path):
    space = written(tmp_path / "slow.toml", SLOW)
    args = ["search", "convae", "--space", space, "--study", "k", "--out", tmp_path / "k", "--trials", "3"]
    proc = _popen(args, tmp_path / "log")
    killed = _kill_mid_trial(lambda: journal_study(tmp_path / "k", "k"), proc, tmp_path / "log")
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    out = assert_ok(invoke(*args))
    assert f"trial {killed} lost its worker: failed, queued again" in out
    _check_finished(journal_study(tmp_path / "k", "k"), killed, 3)
    assert len(trial_rows(tmp_path / "k")) == 4


def test_a_trial_no_worker_has_claimed_is_failed_after_a_heartbeat_but_not_before_unclaimed_s(tmp_path, monkeypatch):
    """A trial created but not yet claimed (its worker may still be drawing its parameters, or was stopped
    right after creating it) is failed and queued again once one heartbeat and UNCLAIMED_S have passed."""
    from types import SimpleNamespace

    from zoo.search import liveness
    from zoo.search.settings import prepare
    from zoo.search.study import open_study
    from zoo.search.worker import Worker

    settings, sp = prepare("convae", written(tmp_path / "s.toml", SPACE), study="u", out=tmp_path / "u", heartbeat=1)
    (tmp_path / "u").mkdir()
    open_study(settings, sp, create=True)
    lines: list[str] = []
    worker = Worker(settings, sp, log=lines.append)
    other = journal_study(tmp_path / "u", "u").ask({"latent_dim": optuna.distributions.IntDistribution(2, 4)})
    time.sleep(1.2)  # past one heartbeat: claimed trials are given 3, unclaimed ones at least UNCLAIMED_S
    liveness.fail_stale(worker)
    assert journal_study(tmp_path / "u", "u").trials[other.number].state.name == "RUNNING" and not lines
    later = time.time() + liveness.UNCLAIMED_S
    monkeypatch.setattr(liveness, "time", SimpleNamespace(time=lambda: later))
    liveness.fail_stale(worker)
    trials = journal_study(tmp_path / "u", "u").trials
    assert trials[other.number].state.name == "FAIL"
    assert lines == [f"trial {other.number} lost its worker: failed, queued again"]
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == other.number]
    assert len(retry) == 1 and retry[0].state.name == "WAITING" and retry[0].params == other.params


def test_ctrl_c_fails_the_trial_queues_it_again_and_resume_runs_it(tmp_path):
    space = written(tmp_path / "slow.toml", SLOW)
    args = ["search", "convae", "--space", space, "--study", "c", "--out", tmp_path / "c", "--trials", "3"]
    code, log = interrupt_zoo(args, tmp_path / "log", lambda: any(  # a trial that has begun its epochs
        t.state.name == "RUNNING" and t.intermediate_values for t in _trials_or_none(tmp_path / "c", "c")), within=90)
    assert code == 130, log
    assert "search interrupted" in log and "Resume with the same command" in log and "Traceback" not in log
    trials = journal_study(tmp_path / "c", "c").trials
    assert [t.state.name for t in trials][-2:] == ["FAIL", "WAITING"]
    interrupted = trials[-2].number
    assert_ok(invoke(*args))
    _check_finished(journal_study(tmp_path / "c", "c"), interrupted, 3)


def _trials_or_none(study_dir: Path, name: str) -> list:
    try:
        return journal_study(study_dir, name).get_trials(deepcopy=False)
    except Exception:  # noqa: BLE001 - not created yet
        return []


def _workers_survive_a_killed_worker(tmp_path: Path, storage_args: list, load_study) -> None:
    space = written(tmp_path / "slow.toml", SLOW)
    proc = _popen(["search", "convae", "--space", space, "--study", tmp_path.name, "--out", tmp_path / "w",
                   "--trials", "5", "--workers", "2", "--heartbeat", "1", *storage_args], tmp_path / "log")
    killed = _kill_mid_trial(load_study, proc, tmp_path / "log", not_pid=proc.pid)
    proc.wait(timeout=120)
    log = (tmp_path / "log").read_text()
    assert proc.returncode == 0, log
    assert "ended with signal 9" in log and "queued again" in log
    _check_finished(load_study(), killed, 5, workers=2)
    assert {r["number"] for r in trial_rows(tmp_path / "w")} == {str(t.number) for t in load_study().trials}


def test_local_workers_share_a_journal_and_survive_a_killed_worker(tmp_path):
    _workers_survive_a_killed_worker(tmp_path, [], lambda: journal_study(tmp_path / "w", tmp_path.name))


def test_postgres_storage_shared_by_workers_one_killed(tmp_path):
    url = os.environ.get("ZOO_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("ZOO_TEST_POSTGRES_URL is not set (.ci/run starts a PostgreSQL server and sets it)")
    name = f"pg-{uuid.uuid4().hex[:10]}"
    work = tmp_path / name
    work.mkdir()
    from zoo.search.study import normalise_url

    storage = optuna.storages.RDBStorage(normalise_url(url))  # psycopg2 or psycopg, whichever is installed
    _workers_survive_a_killed_worker(work, ["--storage", url], lambda: optuna.load_study(study_name=name,
                                                                                         storage=storage))
    assert not (work / "w" / "journal.log").exists()


# ------------------------------------------------------------------------------------------ mistakes

@pytest.mark.parametrize("text, fragment", [
    ("[params]\nlatnt_dim = { low = 2, high = 4 }\n", "'latnt_dim' is not a config key of convae"),
    ("[params]\nlr = { low = 1e-3 }\n", "needs both low and high"),
    ("[params]\nlr = 0.1\n", "must be a table"),
    ("[params]\nhidden = { length = \"n\", element = { low = 8, high = 16 } }\n"
     "n = { low = 1, high = 2, helper = true }\n",
     "which is not defined above it"),
    ("[params]\nlr = { value = \"__import__('os')\" }\n", "calls something other than"),
    ("[params]\nlr = { value = \"x.y\" }\n", "uses Attribute"),
    ("[params]\nlr = { low = 0.0, high = 1.0, log = true }\n", "must start above 0"),
    ("[search]\nstrategy = \"annealing\"\n[params]\nlr = { choices = [0.1] }\n", "unknown search strategy 'annealing'"),
    ("[serach]\n[params]\nlr = { choices = [0.1] }\n", "unknown table(s) serach"),
    ("[params]\n", "lists nothing to search"),
    ("[params]\nn = { low = 1, high = 2, helper = true }\nlr = { low = 1e-3, high = 1e-2 }\n",
     "n is a helper (`helper = true`) that no key below it reads"),
    ("[params\n", "is not valid TOML"),
    ("[fixed]\nlr = 0.1\n[params]\nlr = { choices = [0.1] }\n", "both searched and fixed"),
])
def test_bad_space_files_are_clean_errors(tmp_path, text, fragment):
    space = written(tmp_path / "bad.toml", text)
    assert_clean_error(invoke("search", "convae", "--space", space, "--out", tmp_path / "s"), fragment, code=2)
    assert not (tmp_path / "s" / "journal.log").exists()


def test_command_line_mistakes_are_clean_errors(tmp_path):
    space = written(tmp_path / "ok.toml", FIXED + "epochs = 1\n[params]\nlr = { low = 1e-3, high = 1e-2 }\n")
    base = ["search", "convae", "--space", space, "--out", tmp_path / "s"]
    assert_clean_error(invoke("search", "convae", "--space", tmp_path / "nope.toml"), "space file not found")
    assert_clean_error(invoke(*base, "--strategy", "annealing"), "annealing")
    # zoo 0.1 called the strategy "sampler", the word zoo generate uses for latent samplers
    assert_clean_error(invoke(*base, "--sampler", "random"), "--sampler is now --strategy", "--strategy random")
    old = written(tmp_path / "old.toml",
                  '[search]\nsampler = "grid"\n' + FIXED + "[params]\nlr = { choices = [0.1] }\n")
    assert_clean_error(invoke("search", "convae", "--space", old), "[search] sampler is now called strategy",
                       'strategy = "grid"')
    assert_clean_error(invoke(*base, "--storage", "redis://localhost/0"), "unsupported storage URL")
    assert_clean_error(invoke(*base, "--storage", "postgresql://nobody:secret@127.0.0.1:1/none"),
                       "cannot open the storage")
    r = invoke(*base, "--storage", "postgresql://nobody:secret@127.0.0.1:1/none")
    assert "secret" not in r.output  # the password is not echoed
    assert_clean_error(invoke(*base, "--set", "lr=0.1"), "searched by the space and also set")
    assert_clean_error(invoke(*base, "--cv", "1"), "at least 2 folds")
    assert_clean_error(invoke(*base, "--concurrent"), "--vectorize is 1", code=2)
    assert_clean_error(invoke(*base, "--strategy", "grid"), "cannot enumerate a continuous range")
    assert_clean_error(invoke(*base, "--dataset", "mnist"), "mnist")
    assert_clean_error(invoke("search", "convae"), "which space")
    assert_clean_error(invoke("search", "nosuchmodel", "--space", space), "nosuchmodel")


# ------------------------------------------------------------------------------------------ space files

def _sample(sp: spacemod.Space, n: int, seed: int = 0, grid: bool = False) -> list[dict]:
    sampler = optuna.samplers.GridSampler(sp.grid(), seed=seed) if grid else optuna.samplers.RandomSampler(seed=seed)
    study = optuna.create_study(sampler=sampler)
    out = []
    for _ in range(n):
        trial = study.ask()
        values, helpers = sp.sample(trial, grid=grid)
        out.append({**values, **helpers})
        study.tell(trial, 0.0)
    return out


def test_expressions_conditions_and_dependent_ranges():
    sp = spacemod.parse_space({"params": {
        "n": {"low": 2, "high": 4, "helper": True},
        "kernel": {"length": "n", "element": {"low": 2, "high": 6}},
        "padding": {"length": "n", "element": {"low": 0, "high": "kernel[i] // 2"}},
        "channels": {"length": "n", "element": {"low": 4, "high": "4 * 2 ** (i + 1)"}},
        "prune": {"choices": [False, True], "helper": True},
        "prune_every": {"low": 1, "high": 10, "when": "prune"},
        "decoder_channels": {"value": "[2 * n, max(n - 1, 1)]"},
    }})
    for v in _sample(sp, 40):
        assert len(v["kernel"]) == len(v["padding"]) == len(v["channels"]) == v["n"]
        assert all(0 <= p <= k // 2 for p, k in zip(v["padding"], v["kernel"]))
        assert all(4 <= c <= 4 * 2 ** (i + 1) for i, c in enumerate(v["channels"]))
        assert ("prune_every" in v) == v["prune"]
        assert v["decoder_channels"] == [2 * v["n"], max(v["n"] - 1, 1)]


def test_example_spaces_reproduce_the_reports():
    from zoo.api import resolve_config
    from zoo.runs.config import TrainConfig, fields_of
    from zoo.registry import get_model_class

    bundled = [name for name in spacemod.bundled_spaces() if name.startswith("report-")]
    assert set(bundled) == {"report-000-fashion-random", "report-001-mnist-optuna", "report-002-mnist-large",
                            "report-004-mnist-grid"}
    cls = get_model_class("convae")
    known = {f.name for f in fields_of(cls.Config)} | {f.name for f in fields_of(TrainConfig)}
    spaces = {name: spacemod.load_space(name) for name in bundled}
    for sp in spaces.values():
        sp.check_keys(known, "convae")
    s000, s001, s002, s004 = (spaces[n] for n in sorted(spaces))
    assert (s000.search["strategy"], s000.search["trials"], s000.objective["reduce"]) == ("random", 80, "mean")
    for v in _sample(s000, 10):
        n = v["n_channels"]
        assert v["channels"] == [n, 2 * n, 3 * n] and v["decoder_channels"] == [2 * n, n]
        resolve_config("convae", preset=s000.search["preset"], config=s000.fixed, overrides={
            k: x for k, x in v.items() if k != "n_channels"})
    assert (s001.search["strategy"], s001.search["pruner"], s001.search["trials"]) == ("tpe", "auto", 40)
    assert {p.name for p in s001.params} == {"optimizer", "lr", "weight_decay", "hidden", "latent_dim"}
    assert (s002.search["cv"], s002.objective["time_penalty"], s002.objective["latent_penalty"]) == (5, 1e-5, 1e-2)
    built = 0
    for v in _sample(s002, 30):
        assert 2 <= len(v["channels"]) <= 4 and 1 <= len(v["hidden"]) <= 3
        assert ("prune_encoder_conv" in v) == v["prune"]
        try:
            model_cfg = resolve_config("convae", config=s002.fixed, overrides={
                k: x for k, x in v.items() if k not in ("n_conv", "n_hidden", "prune")})[1]
            cls(model_cfg, (1, 28, 28))
            built += 1
        except ConfigError as e:
            assert "reduces" in e.message or "decoder layer" in e.message
    assert 0 < built < 30  # some configurations collapse, as in the report
    assert s004.grid_size() == 4 * 3 * 2 * 2 * 3 * 3 * 2
    points = _sample(s004, 20, grid=True)
    assert all(len(v["channels"]) == 3 and v["hidden"][0] in (32, 64) for v in points)
    assert len({json.dumps(v, sort_keys=True) for v in points}) == 20


def test_the_iwae_space_trains_the_iwae_50_bound_on_dynamically_binarised_mnist():
    from zoo.api import resolve_config
    from zoo.registry import get_model_class
    from zoo.runs.config import TrainConfig, fields_of

    sp = spacemod.load_space("iwae-mnist")
    cls = get_model_class("iwae")
    sp.check_keys({f.name for f in fields_of(cls.Config)} | {f.name for f in fields_of(TrainConfig)}, "iwae")
    assert (sp.fixed["bound"], sp.fixed["k"], sp.fixed["binarize"]) == ("iwae", 50, "dynamic")
    for v in _sample(sp, 5):
        assert 16 <= v["latent_dim"] <= 64 and v["hidden"][0] in (256, 512)
        _, model_cfg, train = resolve_config("iwae", config=sp.fixed, overrides=v)
        assert (model_cfg.k, model_cfg.latent_dim, train.binarize) == (50, v["latent_dim"], "dynamic")
        cls(model_cfg, (1, 28, 28))


def test_the_vampprior_space_searches_pseudo_inputs_on_dynamically_binarised_mnist():
    from zoo.api import resolve_config
    from zoo.registry import get_model_class
    from zoo.runs.config import TrainConfig, fields_of

    sp = spacemod.load_space("vampprior-mnist")
    cls = get_model_class("vampprior")
    sp.check_keys({f.name for f in fields_of(cls.Config)} | {f.name for f in fields_of(TrainConfig)}, "vampprior")
    for v in _sample(sp, 5):
        assert 100 <= v["pseudo_inputs"] <= 1000 and 16 <= v["latent_dim"] <= 64
        _, model_cfg, train = resolve_config("vampprior", config=sp.fixed, overrides=v)
        assert (model_cfg.pseudo_inputs, model_cfg.batch_norm, train.binarize) == (v["pseudo_inputs"], False, "dynamic")
        cls(model_cfg, (1, 28, 28))


def test_list_spaces_names_the_examples():
    out = assert_ok(invoke("search", "--list-spaces"))
    assert "report-002-mnist-large" in out and "docs/reports.md#report-004" in out


def test_sigterm_to_a_multi_worker_searchs_own_process_stops_its_workers_too(tmp_path):
    """`kill PID`, a scheduler or a container runtime signals the search's process alone: its workers (in a
    session of their own) are stopped by it, not left to run every trial of the budget."""
    space = written(tmp_path / "slow.toml", SLOW)
    args = ["search", "convae", "--space", space, "--study", "t", "--out", tmp_path / "t", "--trials", "8",
            "--workers", "2"]
    started = time.monotonic()
    code, log = interrupt_zoo(args, tmp_path / "log", lambda: sum(  # both workers are training a trial
        t.state.name == "RUNNING" and bool(t.intermediate_values) for t in _trials_or_none(tmp_path / "t", "t")) >= 2,
        within=90, sig=signal.SIGTERM)
    assert code == 143, log
    assert "search interrupted" in log and "Traceback" not in log
    states = [t.state.name for t in journal_study(tmp_path / "t", "t").trials]
    assert "RUNNING" not in states and sum(s == "COMPLETE" for s in states) < 8, states
    assert time.monotonic() - started < 80


def test_a_multi_worker_search_whose_reader_goes_away_stops_its_workers(tmp_path):
    """`zoo search --workers 2 | head -1`: the search ended at once on the closed pipe, its workers ran on."""
    space = written(tmp_path / "slow.toml", SLOW)
    proc = subprocess.Popen([sys.executable, "-m", "zoo", "search", "convae", "--space", str(space), "--study", "h",
                             "--out", str(tmp_path / "h"), "--trials", "8", "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    while b"[worker" not in proc.stdout.readline():  # the first trial's line, then the reader is gone
        assert proc.poll() is None
    proc.stdout.close()
    proc.wait(timeout=90)

    def completed() -> int:
        return sum(t.state.name == "COMPLETE" for t in journal_study(tmp_path / "h", "h").trials)

    done = completed()
    time.sleep(6)  # several trials' time: a worker left running would complete more
    assert completed() == done < 8
