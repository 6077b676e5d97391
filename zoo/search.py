"""Hyperparameter search (`zoo search`): Optuna studies over a space file (zoo.space).

Each trial samples the space, trains the configuration without a run folder (on the validation split,
or k folds of the training set), reports every epoch's validation metric to the pruner and returns
the objective: the validation metric (reduced over the epochs; the mean over folds) plus optional
penalties, λ × training minutes and μ × latent size. A configuration that cannot be built (the plugin
raises ConfigError) or diverges is pruned with its reason.

The study lives in a storage: by default Optuna's journal file in the study folder (safe for several
processes on one disk, and on a shared disk across machines), or any Optuna storage URL (SQLite,
PostgreSQL, MySQL). `--workers N` starts N local worker processes on the same storage; several
machines share a study by pointing `--storage` at the same database. The trial budget is the
study's, not a process's: workers stop when the study holds N complete or pruned trials (Optuna's
MaxTrialsCallback semantics, enforced before a trial starts, so a study does not overshoot).

A dead worker's trial is failed and queued again (Optuna's RetryHeartbeatStaleTrialCallback, formerly
RetryFailedTrialCallback): database storages use Optuna's own heartbeats; the journal file, which
has none, gets the same from a heartbeat user attribute and, on one host, a process check.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import io
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from zoo.errors import ConfigError, RunError, ZooError
from zoo.space import PRUNERS, SAMPLERS, Space, load_space, parse_space

HOST = socket.gethostname()
SETTINGS_ENV = "ZOO_SEARCH_SETTINGS"
JOURNAL = "journal.log"
RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb", "oracle", "mssql")
MAX_RETRY = 3


def _stdout(msg: str) -> None:
    print(msg, flush=True)


class Interrupted(ZooError):
    exit_code = 130


# ----------------------------------------------------------------------------------------- settings

@dataclass
class Settings:
    """Everything a worker needs, JSON-serialisable (passed to worker processes)."""

    model: str
    space: str                       # the space file (the study folder's copy)
    study: str
    study_dir: str
    storage: str | None              # None: the journal file in the study folder
    sampler: str = "tpe"
    pruner: str = "hyperband"
    trials: int = 20
    cv: int = 0
    seed: int | None = None
    timeout: float | None = None
    heartbeat: int = 30
    preset: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    metric: str | None = None
    reduce: str = "best"
    time_penalty: float = 0.0
    latent_penalty: float = 0.0
    latent_key: str = "latent_dim"
    workers: int = 1
    vectorize: int = 1               # trials asked at once; same-shape ones train in one vmapped step
    concurrent: bool | None = None   # their different-shape groups at once, in threads (None: on CUDA)

    @property
    def grace(self) -> int:
        return 3 * self.heartbeat


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ConfigError("zoo search needs Optuna", 'Install it: pip install "zoo[search]" (or pip install optuna).') \
            from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # zoo prints each trial's outcome itself
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
    return optuna


def prepare(model: str, space: str | Path | None = None, *, study: str | None = None, out: str | Path | None = None,
            storage: str | None = None, sampler: str | None = None, pruner: str | None = None,
            trials: int | None = None, cv: int | None = None, seed: int | None = None, timeout: float | None = None,
            workers: int = 1, heartbeat: int = 30, vectorize: int = 1, concurrent: bool | None = None,
            overrides: dict[str, Any] | None = None) -> tuple[Settings, Space]:
    """Check everything a user can get wrong before any trial runs; return the settings and the space."""
    from zoo import registry
    from zoo.api import resolve_config
    from zoo.config import TrainConfig, fields_of

    cls = registry.get_model_class(model)
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if study is not None and not study.strip():
        raise ConfigError("--study needs a name")
    study_dir = Path(out) if out else None
    # The space: the file given, else the copy in the study folder (resuming a study by name).
    if space is None:
        if study is None:
            raise ConfigError("which space? e.g. zoo search convae --space space.toml",
                              "Give --space FILE (or the name of an example space), or --study NAME of a study "
                              "begun before.")
        study_dir = study_dir or Path("studies") / study
        if not (study_dir / "space.toml").is_file():
            raise ConfigError(f"no study folder {study_dir} with a space.toml to resume",
                              "Give --space FILE, or --out with the study's folder.")
        sp = load_space(study_dir / "space.toml")
    else:
        sp = load_space(space)
    name = study or f"{model}-{Path(sp.source).stem}"
    study_dir = study_dir or Path("studies") / name
    search, obj = sp.search, sp.objective

    sampler = sampler or search.get("sampler", "tpe")
    # Optuna's advice for deep learning with few workers: TPE with the Hyperband pruner.
    pruner = pruner or search.get("pruner", "hyperband")
    if sampler not in SAMPLERS:
        raise ConfigError(f"unknown sampler '{sampler}'", f"Use one of {', '.join(SAMPLERS)}.")
    if pruner not in PRUNERS:
        raise ConfigError(f"unknown pruner '{pruner}'", f"Use one of {', '.join(PRUNERS)}.")
    cv = search.get("cv", 0) if cv is None else cv
    if cv == 1 or cv < 0:
        raise ConfigError(f"--cv {cv}: cross-validation needs at least 2 folds (0: the validation split)")
    if workers < 1:
        raise ConfigError("--workers must be at least 1")
    if vectorize < 1:
        raise ConfigError("--vectorize must be at least 1")
    if concurrent and vectorize == 1:
        raise ConfigError("--concurrent trains the groups of trials that --vectorize K asks for at once, and "
                          "--vectorize is 1", "Add --vectorize K (e.g. 16).")
    if heartbeat < 1:
        raise ConfigError("--heartbeat must be at least 1 second")
    if timeout is not None and timeout <= 0:
        raise ConfigError("--timeout must be positive")

    known = {f.name for f in fields_of(cls.Config)} | {f.name for f in fields_of(TrainConfig)}
    sp.check_keys(known, model)
    searched = set(sp.keys())
    clash = sorted(searched & set(overrides))
    if clash:
        raise ConfigError(f"{', '.join(clash)} is searched by the space and also set on the command line",
                          "Remove it from --set (or from the space's [params]).")
    preset = search.get("preset")
    # The fixed part must be valid on its own (a typo fails here, not in every trial).
    _, model_cfg, train_cfg = resolve_config(model, preset=preset, config={**sp.fixed, **overrides})
    latent_key = obj.get("latent_key", "latent_dim")
    latent_penalty = float(obj.get("latent_penalty", 0.0))
    if latent_penalty and latent_key not in {f.name for f in fields_of(cls.Config)}:
        raise ConfigError(f"the latent penalty reads '{latent_key}', which {model} does not have",
                          "Set [objective] latent_key to the model's latent size key.")
    if sampler == "grid":
        size = sp.grid_size()
        trials = min(trials, size) if trials else size
    trials = trials or search.get("trials", 20)
    if trials < 1:
        raise ConfigError("--trials must be at least 1")
    if not train_cfg.val_fraction and not cv:
        raise ConfigError("the search scores trials on the validation split, and val_fraction is 0",
                          "Set val_fraction above 0, or use --cv K.")
    settings = Settings(
        model=model, space=str(study_dir / "space.toml"), study=name, study_dir=str(study_dir),
        storage=_normalise_url(storage), sampler=sampler, pruner=pruner, trials=int(trials), cv=int(cv or 0),
        seed=seed if seed is not None else search.get("seed"), timeout=timeout, heartbeat=int(heartbeat),
        preset=preset, overrides=overrides, metric=obj.get("metric"), reduce=obj.get("reduce", "best"),
        time_penalty=float(obj.get("time_penalty", 0.0)), latent_penalty=latent_penalty, latent_key=latent_key,
        workers=int(workers), vectorize=int(vectorize), concurrent=concurrent)
    if settings.metric is None:
        settings.metric = cls.monitor or "loss"
    return settings, sp


# ----------------------------------------------------------------------------------------- storage

def _normalise_url(url: str | None) -> str | None:
    if url is None or not str(url).strip():
        return None
    url = str(url).strip()
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    return _with_installed_driver(url)


def _with_installed_driver(url: str) -> str:
    """A URL without a driver gets SQLAlchemy's default one (psycopg 3 for PostgreSQL since SQLAlchemy
    2.1, psycopg2 before; mysqlclient for MySQL); when only the other is installed, name it."""
    from importlib.util import find_spec

    scheme, sep, rest = url.partition("://")
    if not sep or "+" in scheme:
        return url
    if scheme == "postgresql" and find_spec("psycopg") is None and find_spec("psycopg2") is not None:
        return f"postgresql+psycopg2://{rest}"
    if scheme == "mysql" and find_spec("MySQLdb") is None and find_spec("pymysql") is not None:
        return f"mysql+pymysql://{rest}"
    return url


def redact(url: str | None) -> str:
    if url is None:
        return "journal file"
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for display
        return url.split("@")[-1] if "@" in url else url


def _retry_callback():
    optuna = _optuna()
    cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or optuna.storages.RetryFailedTrialCallback
    return cls(max_retry=MAX_RETRY)


def journal_path(settings: Settings) -> Path | None:
    url = settings.storage
    if url is None:
        return Path(settings.study_dir) / JOURNAL
    if url.startswith("journal:"):
        rest = url[len("journal:"):]
        return Path(rest[2:] if rest.startswith("//") else rest)
    if "://" not in url:
        return Path(url)
    return None


def open_storage(settings: Settings):
    """(storage, native_heartbeat): the journal file (default) or an RDB storage with heartbeats."""
    optuna = _optuna()
    path = journal_path(settings)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            from optuna.storages.journal import JournalFileBackend

            return optuna.storages.JournalStorage(JournalFileBackend(str(path))), False
        except ImportError:  # Optuna < 4
            return optuna.storages.JournalStorage(optuna.storages.JournalFileStorage(str(path))), False
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot open the journal file {path}: {e}") from None
    scheme = settings.storage.split("://", 1)[0].split("+", 1)[0].lower()
    if scheme not in RDB_SCHEMES:
        raise ConfigError(f"unsupported storage URL '{redact(settings.storage)}'",
                          "Use a database URL (sqlite:///study.db, postgresql://USER@HOST/DB, mysql://...), "
                          "a journal file path, or leave --storage out for the study folder's journal file.")
    callback = _retry_callback()
    kw = ("heartbeat_stale_trial_callback" if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback")
          else "failed_trial_callback")
    try:
        storage = optuna.storages.RDBStorage(settings.storage, heartbeat_interval=settings.heartbeat,
                                             grace_period=settings.grace, **{kw: callback},
                                             engine_kwargs={"pool_pre_ping": True})
    except ImportError as e:
        name = getattr(e, "name", None) or getattr(e.__cause__, "name", None) or str(e).split("'")[1:2] or "?"
        name = name[0] if isinstance(name, list) else name
        hint = {"psycopg2": "pip install psycopg2-binary", "psycopg": 'pip install "psycopg[binary]"',
                "MySQLdb": "pip install mysqlclient", "pymysql": "pip install pymysql"}.get(name, f"pip install {name}")
        raise ConfigError(f"the storage {redact(settings.storage)} needs a database driver that is not installed "
                          f"({name})", hint) from None
    except Exception as e:  # noqa: BLE001 - connection, authentication, bad URL: one clear message
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"cannot open the storage {redact(settings.storage)}: {first}",
                          "Check the URL, that the database server is running and that the user may connect.") \
            from None
    return storage, True


def worker_seed(settings: Settings, index: int = 0) -> int | None:
    """The sampler seed of one worker: workers sharing a study must not draw the same points, so each
    local worker adds its index, and a process on a shared database (maybe on another machine) also
    its host and pid. A single local worker keeps the seed as given (a reproducible study)."""
    if settings.seed is None:
        return None
    seed = settings.seed + index
    if settings.storage is not None and journal_path(settings) is None:
        import zlib

        seed += 1000 * (zlib.crc32(f"{HOST}:{os.getpid()}".encode()) % 1_000_000)
    return seed % 2**32


def make_sampler(settings: Settings, space: Space, index: int = 0):
    optuna = _optuna()
    seed = worker_seed(settings, index)
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if settings.sampler == "grid":
        class Grid(optuna.samplers.GridSampler):
            def after_trial(self, study, trial, state, values):  # zoo's loop keeps the budget
                return None

        return Grid(space.grid(), seed=seed)
    # TPE (Optuna's advice for deep learning with few workers); the constant liar keeps parallel
    # workers from sampling the same point while trials run.
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def make_pruner(settings: Settings, epochs: int | None):
    optuna = _optuna()
    if settings.pruner == "none":
        return optuna.pruners.NopPruner()
    if settings.pruner == "hyperband":
        steps = epochs * max(settings.cv, 1) if epochs else "auto"
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=steps, reduction_factor=3)
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)


def _fixed_epochs(settings: Settings, space: Space) -> int | None:
    if "epochs" in space.keys():
        return None
    from zoo.api import resolve_config

    _, _, train_cfg = resolve_config(settings.model, preset=settings.preset, config={**space.fixed,
                                                                                    **settings.overrides})
    return train_cfg.epochs


def open_study(settings: Settings, space: Space, create: bool = False, index: int = 0):
    optuna = _optuna()
    storage, native = open_storage(settings)
    sampler = make_sampler(settings, space, index)
    pruner = make_pruner(settings, _fixed_epochs(settings, space))
    try:
        if create:
            study = optuna.create_study(study_name=settings.study, storage=storage, sampler=sampler, pruner=pruner,
                                        direction="minimize", load_if_exists=True)
        else:
            study = optuna.load_study(study_name=settings.study, storage=storage, sampler=sampler, pruner=pruner)
    except ValueError as e:
        raise ConfigError(f"study '{settings.study}': {e}") from None
    except KeyError:
        raise ConfigError(f"no study '{settings.study}' in {redact(settings.storage)}") from None
    stored = len(study.get_trials(deepcopy=False))
    if stored and settings.seed is not None:  # a resumed study must not replay its first session's draws
        study.sampler = make_sampler(settings, space, index + 7919 * stored)
    return study, storage, native


# ----------------------------------------------------------------------------------------- trials

def _jsonable(v: Any) -> Any:
    return json.loads(json.dumps(v, default=str))


def _alive(pid: int | None) -> bool:
    if not pid:
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child not yet reaped is a zombie: dead
        with open(f"/proc/{int(pid)}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


class _Report:
    """Reports every epoch's validation metric to the trial and prunes when the pruner says so."""

    def __init__(self, trial, metric: str, offset: int, pruner: str):
        from zoo.engine import Callback

        self.trial, self.metric, self.offset, self.pruner = trial, metric, offset, pruner
        outer = self

        class Report(Callback):
            def on_epoch_end(self, trainer, epoch, record):
                outer.report(epoch, record)

        self.callback = Report()

    def report(self, epoch: int, record: dict[str, Any]) -> None:
        optuna = _optuna()
        v = record.get(f"val_{self.metric}")
        if v is None or not math.isfinite(v):
            return
        self.trial.report(float(v), self.offset + epoch)
        if self.trial.should_prune():
            reason = f"pruned by the {self.pruner} pruner after epoch {epoch}"
            self.trial.set_user_attr("pruned_reason", reason)
            raise optuna.TrialPruned(reason)


class _Heartbeat(threading.Thread):
    """Heartbeats for the trials a worker runs at once: Optuna's own on a database storage, a
    `heartbeat` user attribute on the journal file."""

    def __init__(self, storage, trial_ids: list[int], interval: int, native: bool):
        super().__init__(daemon=True)
        self.storage, self.trial_ids, self.interval, self.native = storage, list(trial_ids), interval, native
        self.stopped = threading.Event()

    def beat(self) -> None:
        for tid in self.trial_ids:
            with contextlib.suppress(Exception):  # a trial that finished meanwhile
                if self.native:
                    self.storage.record_heartbeat(tid)
                else:
                    self.storage.set_trial_user_attr(tid, "heartbeat", time.time())

    def run(self) -> None:
        self.beat()
        while not self.stopped.wait(self.interval):
            self.beat()

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=5)


class _JournalHeartbeat(threading.Thread):
    def __init__(self, storage, trial_id: int, interval: int):
        super().__init__(daemon=True)
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.storage.set_trial_user_attr(self.trial_id, "heartbeat", time.time())
            except Exception:  # noqa: BLE001 - the trial finished meanwhile
                return

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=5)


class Worker:
    """Runs trials of one study until the study's budget is spent."""

    def __init__(self, settings: Settings, space: Space, log: Callable[[str], None] = _stdout, label: str = "",
                 index: int = 0):
        self.settings, self.space, self.log = settings, space, log
        self.prefix = f"[{label}] " if label else ""
        self.study, self.storage, self.native = open_study(settings, space, index=index)
        self.retry = _retry_callback()
        self.data_cache: dict[tuple, Any] = {}
        self.current = None

    # ------------------------------------------------------------------ stale trials
    def fail_stale(self) -> None:
        """Fail the trials of dead workers and queue them again."""
        optuna = _optuna()
        if self.native:
            optuna.storages.fail_stale_trials(self.study)
            return
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        now = time.time()
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            w = t.user_attrs.get("worker") or {}
            own = w.get("trial") == t.number  # attributes copied into a retry belong to the old trial
            if own and w.get("host") == HOST and w.get("pid") == os.getpid():
                continue
            beat = t.user_attrs.get("heartbeat") if own else None
            started = t.datetime_start.timestamp() if t.datetime_start else now
            dead = (own and w.get("host") == HOST and not _alive(w.get("pid"))) or \
                now - max(beat or 0.0, started) > self.settings.grace
            if not dead:
                continue
            try:
                failed = self.storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            except UpdateFinishedTrialError:
                continue
            if failed:
                self.log(f"{self.prefix}trial {t.number} lost its worker: failed, queued again")
                self.retry(self.study, copy.deepcopy(self.storage.get_trial(t._trial_id)))

    # ------------------------------------------------------------------ the loop
    def counts(self) -> tuple[int, int, int]:
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False)
        done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
        running = sum(t.state == TrialState.RUNNING for t in trials)
        waiting = sum(t.state == TrialState.WAITING for t in trials)
        return done, running, waiting

    def run(self) -> int:
        """Trials until the study holds `trials` complete or pruned ones (or the timeout); returns how
        many this worker ran."""
        optuna = _optuna()
        start = time.time()
        ran = 0
        poll = min(1.0, self.settings.heartbeat / 2)
        try:
            while True:
                self.fail_stale()
                done, running, waiting = self.counts()
                if done >= self.settings.trials:
                    break
                if self.settings.timeout and time.time() - start > self.settings.timeout:
                    self.log(f"{self.prefix}timeout: no new trials after {self.settings.timeout:g} s")
                    break
                if not waiting and done + running >= self.settings.trials:
                    time.sleep(poll)  # the rest of the budget is in flight; take over a trial whose worker dies
                    continue
                if self.settings.vectorize > 1:
                    size = max(1, min(self.settings.vectorize, self.settings.trials - done - running))
                    self.run_group(max(size, min(waiting, self.settings.vectorize)))
                    ran += size
                else:
                    self.study.optimize(self.objective, n_trials=1, catch=(), gc_after_trial=False,
                                        show_progress_bar=False)
                    ran += 1
        except (KeyboardInterrupt, ZooError) as e:
            if isinstance(e, ZooError) and e.exit_code != 130:  # not Ctrl-C inside a trial's training
                raise
            self._requeue_current()
            raise Interrupted(f"search interrupted; {self.counts()[0]} trials are done and stored. Resume with the "
                              "same command (and --study NAME).") from e
        except optuna.exceptions.StorageInternalError as e:
            raise RunError(f"the study's storage failed: {e}") from None
        finally:
            self.current = None
        return ran

    def _requeue_current(self) -> None:
        """A trial interrupted by Ctrl-C is failed (by Optuna); queue it again for the resumed study."""
        if self.current is None:
            return
        with contextlib.suppress(Exception):
            frozen = self.storage.get_trial(self.current._trial_id)
            from optuna.trial import TrialState

            if frozen.state == TrialState.FAIL:
                self.retry(self.study, copy.deepcopy(frozen))

    # ------------------------------------------------------------------ one trial
    def _data(self, train_cfg):
        from zoo.api import _load_data
        from zoo.device import pick_device

        device = pick_device(train_cfg.device)
        key = (train_cfg.dataset, train_cfg.data_dir, train_cfg.val_fraction, train_cfg.image_size,
               train_cfg.binarize, str(device))
        if key not in self.data_cache:
            self.data_cache[key] = _load_data(train_cfg, device)
        return self.data_cache[key]

    def warm_up(self) -> None:
        """Load the data set once (and fail early and clearly if it is missing)."""
        from zoo.api import resolve_config

        _, _, train_cfg = resolve_config(self.settings.model, preset=self.settings.preset,
                                         config={**self.space.fixed, **self.settings.overrides})
        self._data(train_cfg)

    def objective(self, trial) -> float:
        self.current = trial
        trial.set_user_attr("worker", {"host": HOST, "pid": os.getpid(), "trial": trial.number})
        beat = None
        if not self.native:
            trial.set_user_attr("heartbeat", time.time())
            beat = _JournalHeartbeat(self.storage, trial._trial_id, self.settings.heartbeat)
            beat.start()
        try:
            return self._objective(trial)
        finally:
            if beat is not None:
                beat.stop()

    def _prune(self, trial, reason: str):
        optuna = _optuna()
        trial.set_user_attr("pruned_reason", reason)
        self.log(f"{self.prefix}trial {trial.number}  pruned: {reason}")
        raise optuna.TrialPruned(reason)

    def _configure(self, trial):
        """Sample the trial's keys and build its config: (values, cls, model_cfg, train_cfg); prunes an
        invalid configuration with its reason."""
        from zoo.api import resolve_config

        s = self.settings
        try:
            values, helpers = self.space.sample(trial, grid=s.sampler == "grid")
        except ConfigError as e:
            self._prune(trial, f"invalid configuration: {e.message}")
        trial.set_user_attr("values", _jsonable(values))
        if helpers:
            trial.set_user_attr("helpers", _jsonable(helpers))
        try:
            cls, model_cfg, train_cfg = resolve_config(s.model, preset=s.preset,
                                                       config={**self.space.fixed, **s.overrides}, overrides=values)
        except ConfigError as e:
            self._prune(trial, f"invalid configuration: {e.message}")
        full = {**dataclasses.asdict(model_cfg), **dataclasses.asdict(train_cfg)}
        trial.set_user_attr("config", _jsonable(full))
        return values, cls, model_cfg, train_cfg

    def _parts(self, train_cfg):
        from zoo import cv as cvmod

        data = self._data(train_cfg)
        return list(cvmod.folds(data, self.settings.cv, train_cfg.seed)) if self.settings.cv else [data]

    def _objective(self, trial) -> float:
        values, cls, model_cfg, train_cfg = self._configure(trial)
        return self._score(trial, values, cls, model_cfg, train_cfg)

    def _score(self, trial, values, cls, model_cfg, train_cfg) -> float:
        import torch

        from zoo import cv as cvmod
        from zoo.errors import TrainingDiverged

        optuna = _optuna()
        s = self.settings
        parts = self._parts(train_cfg)
        losses, seconds, epochs = [], 0.0, 0
        for i, part in enumerate(parts):
            report = _Report(trial, s.metric, i * train_cfg.epochs, s.pruner)
            try:
                r = cvmod.fit(cls, model_cfg, train_cfg, part, callbacks=[report.callback], metric=s.metric,
                              reduce=s.reduce)
            except ConfigError as e:
                self._prune(trial, f"invalid configuration: {e.message}")
            except TrainingDiverged as e:
                self._prune(trial, f"diverged: {e.message.split('. ')[0]}")
            except torch.OutOfMemoryError:
                self._prune(trial, "out of memory")
            except optuna.TrialPruned as e:
                self.log(f"{self.prefix}trial {trial.number}  {e}")
                raise
            if not math.isfinite(r.value):
                self._prune(trial, f"the validation {s.metric} is not finite")
            losses.append(r.value)
            seconds += r.seconds
            epochs += r.epochs
        return self._finish(trial, values, model_cfg, losses, seconds, epochs)

    def _finish(self, trial, values, model_cfg, losses, seconds, epochs, note: str = "") -> float:
        s = self.settings
        loss = statistics.fmean(losses)
        minutes = seconds / 60.0 / len(losses)
        latent = getattr(model_cfg, s.latent_key, None)
        penalty = s.time_penalty * minutes + (s.latent_penalty * latent if s.latent_penalty and latent else 0.0)
        value = loss + penalty
        attrs = {"loss": loss, "minutes": minutes, "epochs": epochs, "penalty": penalty}
        if latent is not None:
            attrs["latent"] = latent
        if len(losses) > 1:
            attrs["fold_losses"] = losses
            attrs["loss_std"] = statistics.stdev(losses)
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
        shown = ", ".join(f"{k}={_short(v)}" for k, v in values.items())
        extra = f" + penalties {penalty:.4g}" if penalty else ""
        cvtxt = f" (mean of {len(losses)} folds)" if len(losses) > 1 else ""
        self.log(f"{self.prefix}trial {trial.number}  {value:.5g}  (val {s.metric} {loss:.5g}{cvtxt}{extra}; "
                 f"{seconds:.1f} s{note})  {shown}")
        return value

    # ------------------------------------------------------------------ several trials in one vectorised step
    def run_group(self, size: int) -> None:
        """Ask `size` trials at once; those with the same tensor shapes that differ only in lr, weight
        decay, momentum, seed, patience and the model's vectorised keys (dropout p, noise level, β)
        train together in one vmapped step (zoo.multitrial); the rest one by one. Each is told its own
        result."""
        optuna = _optuna()
        from optuna.trial import TrialState

        from zoo import multitrial

        trials = [self.study.ask() for _ in range(size)]
        told: set[int] = set()
        lock = threading.Lock()

        def tell(trial, value=None, state=None):
            with lock:  # groups may finish at once, in their own threads
                if trial.number in told:
                    return
                self.study.tell(trial, value, state=state)
                told.add(trial.number)

        beat = _Heartbeat(self.storage, [t._trial_id for t in trials], self.settings.heartbeat, self.native)
        for t in trials:
            t.set_user_attr("worker", {"host": HOST, "pid": os.getpid(), "trial": t.number})
        beat.start()
        try:
            ready = []
            for t in trials:
                try:
                    ready.append((t, *self._configure(t)))
                except optuna.TrialPruned:
                    tell(t, state=TrialState.PRUNED)
            groups: dict[str, list] = {}
            for item in ready:
                t, values, cls, model_cfg, train_cfg = item
                data = self._data(train_cfg)
                key = multitrial.group_key(cls, model_cfg, train_cfg, data.shape, data.num_classes)
                groups.setdefault(key, []).append(item)
            if len(groups) > 1 and self._concurrent(next(iter(groups.values()))[0][4]):
                self._run_concurrently(list(groups.values()), tell)
            else:
                for members in groups.values():
                    self._run_members(members, tell)
        except BaseException:
            for t in trials:
                if t.number not in told:
                    with contextlib.suppress(Exception):
                        tell(t, state=TrialState.FAIL)
                        self.retry(self.study, copy.deepcopy(self.storage.get_trial(t._trial_id)))
            raise
        finally:
            beat.stop()

    def _concurrent(self, train_cfg) -> bool:
        if self.settings.concurrent is not None:
            return self.settings.concurrent
        return self._data(train_cfg).train_x.device.type == "cuda"

    def _run_concurrently(self, groups: list[list], tell) -> None:
        """Train groups of different shapes at once, each in a thread with its own CUDA stream: small
        models leave most of a GPU idle, and kernels from different streams run side by side. (With
        cuda_graph each step is one launch, so the threads hardly contend for Python.)"""
        import torch

        errors: list[BaseException] = []
        sizes = "+".join(str(len(m)) for m in groups)
        self.log(f"{self.prefix}{len(groups)} groups of different shapes ({sizes} trials) train concurrently")

        def run(members):
            try:
                device = self._data(members[0][4]).train_x.device
                stream = torch.cuda.stream(torch.cuda.Stream(device)) if device.type == "cuda" else \
                    contextlib.nullcontext()
                with stream:
                    self._run_members(members, tell)
                if device.type == "cuda":
                    torch.cuda.current_stream(device).synchronize()  # this thread's work only
            except BaseException as e:  # re-raised in the searching thread
                errors.append(e)

        # daemon threads: after Ctrl-C the process exits without waiting for their trials (which are
        # failed and queued again by run_group, like any interrupted trial)
        threads = [threading.Thread(target=run, args=(m,), name=f"zoo-group-{i}", daemon=True)
                   for i, m in enumerate(groups)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def _run_members(self, members: list, tell) -> None:
        optuna = _optuna()
        from optuna.trial import TrialState

        from zoo import multitrial

        cls = members[0][2]
        stackable = len(members) > 1
        if stackable:
            data = self._data(members[0][4])
            try:
                multitrial.check_stackable(cls, [m[3] for m in members], [m[4] for m in members], data.shape,
                                           data.num_classes)
            except ConfigError:
                stackable = False
        if not stackable:
            for t, values, cls_, mc, tc in members:
                try:
                    tell(t, self._score(t, values, cls_, mc, tc))
                except optuna.TrialPruned:
                    tell(t, state=TrialState.PRUNED)
            return
        s = self.settings
        alive = list(members)
        losses: dict[int, list[float]] = {m[0].number: [] for m in members}
        seconds, epochs = 0.0, {m[0].number: 0 for m in members}
        parts = self._parts(members[0][4])
        for i, part in enumerate(parts):
            pruned: set[int] = set()

            def report(k, epoch, record, alive=alive, offset=i * members[0][4].epochs, pruned=pruned):
                t = alive[k][0]
                v = record.get(f"val_{s.metric}")
                if v is None or not math.isfinite(v):
                    return True
                t.report(float(v), offset + epoch)
                if t.should_prune():
                    pruned.add(k)
                    reason = f"pruned by the {s.pruner} pruner after epoch {epoch}"
                    t.set_user_attr("pruned_reason", reason)
                    self.log(f"{self.prefix}trial {t.number}  {reason}")
                    return False
                return True

            results = multitrial.train_together(cls, [m[3] for m in alive], [m[4] for m in alive], part,
                                                report=report, metric=s.metric, reduce=s.reduce, log=self.log)
            seconds += sum(r.seconds for r in results)
            survivors = []
            for k, (m, r) in enumerate(zip(alive, results)):
                if k in pruned:
                    tell(m[0], state=TrialState.PRUNED)
                elif r.stopped == "diverged" or not math.isfinite(r.value):
                    m[0].set_user_attr("pruned_reason", "diverged")
                    self.log(f"{self.prefix}trial {m[0].number}  pruned: diverged")
                    tell(m[0], state=TrialState.PRUNED)
                else:
                    losses[m[0].number].append(r.value)
                    epochs[m[0].number] += r.epochs
                    survivors.append(m)
            alive = survivors
        for t, values, _, mc, _ in alive:
            tell(t, self._finish(t, values, mc, losses[t.number], seconds / len(members), epochs[t.number],
                                 note=f", {len(members)} trials vectorised"))


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, list):
        return "[" + ",".join(_short(x) for x in v) + "]"
    return str(v)


# ----------------------------------------------------------------------------------------- running a search

def run_search(model: str, space: str | Path | None = None, *, log: Callable[[str], None] = _stdout,
               **options) -> dict[str, Any]:
    """Run (or resume) a study; write its outputs; return the summary (see `write_outputs`)."""
    settings, sp = prepare(model, space, **options)
    study_dir = Path(settings.study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    copy_path = study_dir / "space.toml"
    if not copy_path.is_file() or copy_path.read_text() != sp.text:
        from zoo import checkpoint as ckpt

        if copy_path.is_file():
            log(f"note: the space differs from the one this study began with; {copy_path} now holds the new one")
        ckpt.atomic_write(copy_path, sp.text)
    study, _, _ = open_study(settings, sp, create=True)
    meta = study.user_attrs.get("zoo")
    if meta is None:
        study.set_user_attr("zoo", {"model": model, "space": Path(sp.source).name, "metric": settings.metric,
                                    "reduce": settings.reduce, "cv": settings.cv})
    elif meta.get("model") != model:
        raise ConfigError(f"study '{settings.study}' is a search over '{meta.get('model')}', not '{model}'",
                          "Choose another --study name.")
    done = len(study.get_trials(deepcopy=False))
    if settings.workers > 1 and (settings.storage or "").startswith("sqlite"):
        log("note: several workers writing one SQLite file may wait on its lock (and SQLite on a network disk "
            "is unsafe); the default journal file suits workers that share a disk")
    log(f"study {settings.study}: {model}, {settings.sampler} sampler, {settings.pruner} pruner, "
        f"{settings.trials} trials{f', {settings.cv}-fold CV' if settings.cv else ''}, "
        f"{settings.workers} worker(s); storage {redact(settings.storage) if settings.storage else journal_path(settings)}"
        + (f"; resuming with {done} trials stored" if done else ""))
    interrupted: Interrupted | None = None
    started = time.time()
    try:
        if settings.workers == 1:
            worker = Worker(settings, sp, log=log)
            worker.warm_up()
            worker.run()
        else:
            Worker(settings, sp, log=log).warm_up()  # a missing data set fails here, once
            _run_workers(settings, log)
    except Interrupted as e:
        interrupted = e
    summary = write_outputs(settings, sp, log=log, seconds=time.time() - started)
    if interrupted is not None:
        raise interrupted
    done = summary["states"]["complete"] + summary["states"]["pruned"]
    if done < settings.trials and settings.timeout is None:
        raise RunError(f"the workers ended with {done} of {settings.trials} trials done (see their messages above)",
                       "The trials done are stored: resume with the same command.")
    return summary


def _run_workers(settings: Settings, log: Callable[[str], None]) -> None:
    env = {**os.environ, SETTINGS_ENV: json.dumps(dataclasses.asdict(settings))}
    if "OMP_NUM_THREADS" not in os.environ:  # share the cores instead of oversubscribing them
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // settings.workers))
    procs = []
    for k in range(settings.workers):
        procs.append(subprocess.Popen([sys.executable, "-m", "zoo", "search-worker", "--label", f"worker {k + 1}",
                                       "--index", str(k)], env=env))
    try:
        pending = dict(enumerate(procs))
        while pending:
            for k, p in list(pending.items()):
                rc = p.poll()  # also reaps a killed worker, so the others see it is gone
                if rc is None:
                    continue
                del pending[k]
                if rc not in (0, 130):
                    how = f"signal {-rc}" if rc < 0 else f"exit code {rc}"
                    log(f"worker {k + 1} (pid {p.pid}) ended with {how}; the others carry on, and its trial, "
                        "if any, is failed and queued again")
            time.sleep(0.2)
    except KeyboardInterrupt:
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=30)
            if p.poll() is None:
                p.terminate()
        raise Interrupted("search interrupted; the trials done are stored. Resume with the same command.") from None


def worker_main(label: str = "", index: int = 0) -> int:
    """A worker process started by `zoo search --workers N` (settings in the environment)."""
    raw = os.environ.get(SETTINGS_ENV)
    if not raw:
        raise ConfigError(f"search-worker is started by `zoo search --workers N` (no {SETTINGS_ENV})")
    settings = Settings(**json.loads(raw))
    space = load_space(settings.space)
    worker = Worker(settings, space, label=label, index=index)
    worker.run()
    return 0


# ----------------------------------------------------------------------------------------- outputs

def _state(t) -> str:
    return t.state.name.lower()


def write_outputs(settings: Settings, space: Space, *, log: Callable[[str], None] = _stdout,
                  seconds: float | None = None) -> dict[str, Any]:
    """trials.csv, best.toml, history.png, importance.png and summary.json in the study folder."""
    from optuna.trial import TrialState

    from zoo import checkpoint as ckpt

    study, _, _ = open_study(settings, space)
    study_dir = Path(settings.study_dir)
    trials = study.get_trials(deepcopy=False)
    written = [write_csv(trials, study_dir / "trials.csv")]
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    best = min(complete, key=lambda t: t.value) if complete else None
    if best is not None and "config" in best.user_attrs:
        written.append(write_best(settings, best, study_dir / "best.toml", total=len(trials)))
    for name, plot in (("history.png", plot_history), ("importance.png", plot_importance)):
        try:
            if plot(study, trials, study_dir / name):
                written.append(study_dir / name)
        except Exception as e:  # noqa: BLE001 - a missing plot must not lose the study's results
            log(f"note: no {name} ({type(e).__name__}: {e})")
    counts = {s: sum(_state(t) == s for t in trials) for s in ("complete", "pruned", "fail", "running", "waiting")}
    reasons: dict[str, int] = {}
    for t in trials:
        if t.state == TrialState.PRUNED:
            r = t.user_attrs.get("pruned_reason", "pruned")
            r = "invalid configuration" if r.startswith("invalid configuration") else \
                ("pruner" if r.startswith("pruned by") else r)
            reasons[r] = reasons.get(r, 0) + 1
    summary: dict[str, Any] = {
        "study": settings.study, "model": settings.model, "study_dir": str(study_dir),
        "storage": redact(settings.storage) if settings.storage else str(journal_path(settings)),
        "sampler": settings.sampler, "pruner": settings.pruner, "cv": settings.cv, "budget": settings.trials,
        "trials": len(trials), "states": counts, "pruned_reasons": reasons,
        "objective": {"metric": f"val_{settings.metric}", "reduce": settings.reduce,
                      "time_penalty": settings.time_penalty, "latent_penalty": settings.latent_penalty},
        "seconds": round(seconds, 1) if seconds is not None else None,
    }
    if best is not None:
        summary["best"] = {"number": best.number, "value": best.value, "loss": best.user_attrs.get("loss"),
                           "minutes": best.user_attrs.get("minutes"), "latent": best.user_attrs.get("latent"),
                           "values": best.user_attrs.get("values", best.params)}
        summary["retrain"] = f"zoo train {settings.model} --config {study_dir / 'best.toml'}"
    summary["written"] = [str(p) for p in written] + [str(study_dir / "summary.json")]
    ckpt.write_json(study_dir / "summary.json", summary)
    return summary


def _cell(v: Any) -> Any:
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return "" if v is None else v


def write_csv(trials, path: Path) -> Path:
    from zoo import checkpoint as ckpt

    keys: list[str] = []
    for t in trials:
        for k in [*t.user_attrs.get("values", {}), *t.user_attrs.get("helpers", {})]:
            if k not in keys:
                keys.append(k)
    head = ["number", "state", "value", "loss", "loss_std", "minutes", "latent", "epochs", "duration_s", "started",
            "worker", "retry_of", "note"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(head + keys)
    for t in trials:
        a = t.user_attrs
        vals = {**a.get("values", {}), **a.get("helpers", {})}
        if not vals and t.params:
            vals = dict(t.params)
        dur = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start \
            else None
        worker = a.get("worker") or {}
        w.writerow([t.number, _state(t), _cell(t.value), _cell(a.get("loss")), _cell(a.get("loss_std")),
                    _cell(a.get("minutes")), _cell(a.get("latent")), _cell(a.get("epochs")),
                    _cell(round(dur, 3) if dur is not None else None),
                    t.datetime_start.isoformat(timespec="seconds") if t.datetime_start else "",
                    f"{worker.get('host', '')}:{worker.get('pid', '')}" if worker.get("trial") == t.number else "",
                    _cell(t.system_attrs.get("failed_trial")), a.get("pruned_reason", "")]
                   + [_cell(vals.get(k)) for k in keys])
    ckpt.atomic_write(path, buf.getvalue())
    return path


def write_best(settings: Settings, best, path: Path, total: int) -> Path:
    from zoo import checkpoint as ckpt
    from zoo.config import to_toml

    config = {k: v for k, v in best.user_attrs["config"].items() if k != "device"}
    loss, penalty = best.user_attrs.get("loss"), best.user_attrs.get("penalty") or 0.0
    head = [f"# zoo search: the best trial of study '{settings.study}' (trial {best.number} of {total})",
            f"# objective {best.value:.6g}" + (f" = validation {settings.metric} {loss:.6g} + penalties {penalty:.4g}"
                                               if penalty and loss is not None else ""),
            f"# searched: {json.dumps(best.user_attrs.get('values', {}))}",
            f"# retrain: zoo train {settings.model} --config {path}"]
    ckpt.atomic_write(path, "\n".join(head) + "\n" + to_toml({"model": settings.model, **config}))
    return path


def plot_history(study, trials, path: Path) -> bool:
    from optuna.trial import TrialState

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    if complete:
        xs, ys = [t.number for t in complete], [t.value for t in complete]
        ax.scatter(xs, ys, s=18, color="tab:blue", label="complete", zorder=3)
        best, run = [], math.inf
        for y in ys:
            run = min(run, y)
            best.append(run)
        ax.step(xs, best, where="post", color="tab:red", label="best so far")
    if pruned:
        last = [t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None for t in pruned]
        pts = [(t.number, v) for t, v in zip(pruned, last) if v is not None and math.isfinite(v)]
        if pts:
            ax.scatter(*zip(*pts), s=14, marker="x", color="grey", label="pruned (last report)")
    ax.set_xlabel("trial")
    ax.set_ylabel("objective")
    values = [t.value for t in complete]
    if values and min(values) > 0 and max(values) / min(values) > 20:
        ax.set_yscale("log")
    ax.set_title(f"{study.study_name}: {len(complete)} complete, {len(pruned)} pruned", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def plot_importance(study, trials, path: Path) -> bool:
    """fANOVA hyperparameter importances (Optuna), as a bar chart; False if too few trials."""
    import optuna
    from optuna.trial import TrialState

    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if len(complete) < 2:
        return False
    importances = None
    for make in (lambda: optuna.importance.FanovaImportanceEvaluator(seed=0),
                 lambda: optuna.importance.MeanDecreaseImpurityImportanceEvaluator(seed=0)):
        try:
            importances = optuna.importance.get_param_importances(study, evaluator=make())
            break
        except Exception:  # noqa: BLE001 - try the next evaluator
            continue
    if not importances:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(importances)[::-1]
    fig, ax = plt.subplots(figsize=(6.4, max(2.4, 0.9 + 0.32 * len(names))), dpi=100)
    ax.barh(names, [importances[n] for n in names], color="tab:blue")
    ax.set_xlabel("importance (fANOVA)")
    ax.set_title(f"{study.study_name}: hyperparameter importance ({len(complete)} trials)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


__all__ = ["Settings", "prepare", "run_search", "write_outputs", "Worker", "parse_space", "load_space"]
