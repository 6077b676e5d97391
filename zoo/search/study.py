"""Where a study lives and how it samples: the storage (Optuna's journal file by default: zoo.search.journal;
or a database URL), the sampler and pruner, and opening or creating the study."""

from __future__ import annotations

import functools
import secrets
import socket
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.runs.command_folders import STUDY_JOURNAL
from zoo.runs.config import resolve_config
from zoo.errors import ConfigError
from zoo.search import storage_errors
from zoo.search.journal import check_journal, journal_backend, journal_path
from zoo.search.space import Space

if TYPE_CHECKING:  # (settings imports this module)
    from zoo.search.settings import Settings

HOST = socket.gethostname()
JOURNAL = STUDY_JOURNAL
RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb", "oracle", "mssql")
MAX_RETRY = 3
SQLITE_WAIT = 60  # at most, the seconds a write to a SQLite study waits on another's lock (a worker's, a backup's)
SCHEMA_TRIES = 5  # attempts at opening a database whose tables another process is creating
MIN_TRIALS = 5   # the auto pruner prunes once this many trials are complete (Optuna's n_startup_trials default)
MIN_EPOCHS = 2   # and never before a trial's 2nd epoch


def optuna_module():
    """Optuna, quietened; a clear message where it is not installed."""
    try:
        import optuna
    except ImportError:
        raise ConfigError("zoo search needs Optuna", 'Install it: pip install "zoo[search]" (or pip install optuna).') \
            from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # zoo prints each trial's outcome itself
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
    return optuna


def keeps_optuna_settings(work):
    """`work` (a public function that runs a search) with Optuna's log level and Python's warning filters
    restored once it returns or raises: zoo quietens Optuna for its own output (optuna_module), not for the
    user's own studies later in the same session."""
    @functools.wraps(work)
    def kept(*args, **kwargs):
        try:
            import optuna
        except ImportError:  # work refuses it in its own message
            return work(*args, **kwargs)
        level = optuna.logging.get_verbosity()
        with warnings.catch_warnings():
            try:
                return work(*args, **kwargs)
            finally:
                optuna.logging.set_verbosity(level)
    return kept


def normalise_url(url: str | None) -> str | None:
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


def retry_callback():
    optuna = optuna_module()
    cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or optuna.storages.RetryFailedTrialCallback
    return cls(max_retry=MAX_RETRY)


def folder_study_name(study_dir: Path) -> str | None:
    """The name of the study a study folder's journal holds (None: no journal, or not exactly one study):
    what resumes a study named by its folder alone (`--out`)."""
    path = Path(study_dir) / JOURNAL
    if not path.is_file():
        return None
    check_journal(path)  # Optuna would fail on a damaged line with a JSONDecodeError
    optuna = optuna_module()
    names = optuna.get_all_study_names(storage=optuna.storages.JournalStorage(journal_backend(path)))
    return names[0] if len(names) == 1 else None


def open_storage(settings: Settings):
    """(storage, native_heartbeat): the journal file (default) or an RDB storage with heartbeats."""
    optuna = optuna_module()
    path = journal_path(settings)
    if path is not None:
        return optuna.storages.JournalStorage(journal_backend(path)), False
    scheme = settings.storage.split("://", 1)[0].split("+", 1)[0].lower()
    if scheme not in RDB_SCHEMES:
        raise ConfigError(f"unsupported storage URL '{redact(settings.storage)}'",
                          "Use a database URL (sqlite:///study.db, postgresql://USER@HOST/DB, mysql://...), "
                          "a journal file path, or leave --storage out for the study folder's journal file.")
    try:
        storage = _rdb_storage(settings)
    except ImportError as e:
        name = getattr(e, "name", None) or getattr(e.__cause__, "name", None) or str(e).split("'")[1:2] or "?"
        name = name[0] if isinstance(name, list) else name
        hint = {"psycopg2": "pip install psycopg2-binary", "psycopg": 'pip install "psycopg[binary]"',
                "MySQLdb": "pip install mysqlclient", "pymysql": "pip install pymysql"}.get(name, f"pip install {name}")
        raise ConfigError(f"the storage {redact(settings.storage)} needs a database driver that is not installed "
                          f"({name})", hint) from None
    except Exception as e:  # noqa: BLE001 - connection, authentication, bad URL: one clear message
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        message = f"cannot open the storage {redact(settings.storage)}: {first}"
        raise storage_errors.disk_full(message, "try again") or ConfigError(
            message, storage_errors.hint(settings.storage)) from None
    return storage, True


def _rdb_storage(settings: Settings):
    """Optuna's RDBStorage with heartbeats. Processes started at once on a new database race to create
    its tables (the losers see them exist half-made): a loser tries again, and finds them made."""
    optuna = optuna_module()
    kw = ("heartbeat_stale_trial_callback" if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback")
          else "failed_trial_callback")
    for attempt in range(SCHEMA_TRIES):
        try:
            engine = {"pool_pre_ping": True}
            if settings.storage.lower().startswith("sqlite"):  # SQLite's own 5 s ended searches mid-trial
                # under the heartbeats' grace, past which the other workers would take this one's trial for dead
                engine["connect_args"] = {"timeout": max(5, min(SQLITE_WAIT, settings.grace - settings.heartbeat))}
            return optuna.storages.RDBStorage(settings.storage, heartbeat_interval=settings.heartbeat,
                                              grace_period=settings.grace, **{kw: retry_callback()},
                                              engine_kwargs=engine)
        except Exception as e:
            if attempt == SCHEMA_TRIES - 1 or not _creating_at_once(e):
                raise
            time.sleep(0.2 * (attempt + 1))


def _creating_at_once(e: Exception) -> bool:
    """True for the errors another process's creating the same tables causes (a duplicate row of the
    schema version, a table that already exists, SQLite's lock)."""
    from sqlalchemy.exc import IntegrityError, OperationalError

    text = str(e)
    return isinstance(e, IntegrityError) or isinstance(e, OperationalError) and (
        "already exists" in text or "database is locked" in text)


def trial_seed(seed: int, number: int) -> int:
    """The seed of one trial's draws: (the study's seed, the trial's number) mixed by NumPy's SeedSequence."""
    import numpy as np

    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


def make_sampler(settings: Settings, space: Space):
    """The study's sampler. Grid: Optuna's, which gives trial n the n-th point of one order (shuffled
    by the seed, the same in every worker). TPE and random: each trial drawn from its own random
    stream (see `PerTrial`)."""
    optuna = optuna_module()
    if settings.strategy == "grid":
        class Grid(optuna.samplers.GridSampler):
            def __init__(self):
                super().__init__(space.grid(), seed=settings.seed)
                # one point per configuration: a conditional key's values where it is not drawn make none (Optuna's
                # own lists, as 3.x-5.x name them; another version's grid keeps its repeats)
                if hasattr(self, "_all_grids") and hasattr(self, "_param_names"):
                    self._all_grids = space.distinct(self._all_grids, self._param_names)
                    self._n_min_trials = len(self._all_grids)

            def after_trial(self, study, trial, state, values):  # zoo's loop keeps the budget
                return None

        return Grid()
    seed = settings.seed if settings.seed is not None else secrets.randbits(32)

    def make(stream: int):
        if settings.strategy == "random":
            return optuna.samplers.RandomSampler(seed=stream)
        # TPE (Optuna's advice for deep learning with few workers); the constant liar keeps parallel
        # workers from sampling the same point while trials run.
        return optuna.samplers.TPESampler(seed=stream, constant_liar=True)

    class PerTrial(optuna.samplers.BaseSampler):
        """Draws each trial with a sampler seeded by (seed, trial number). Trial numbers are unique in
        a study (the storage hands them out), so processes sharing a study never draw from the same
        stream, however they were started; and one process given a seed draws the same trials again,
        resumed or not. The inner samplers keep no state between trials but their random numbers."""

        def __init__(self):
            self.inner: dict[int, optuna.samplers.BaseSampler] = {}

        def _for(self, trial):
            if trial.number not in self.inner:
                self.inner[trial.number] = make(trial_seed(seed, trial.number))
            return self.inner[trial.number]

        def infer_relative_search_space(self, study, trial):
            return self._for(trial).infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):
            return self._for(trial).sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, param_name, param_distribution):
            return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

        def before_trial(self, study, trial):
            self._for(trial).before_trial(study, trial)

        def after_trial(self, study, trial, state, values):
            self._for(trial).after_trial(study, trial, state, values)
            self.inner.pop(trial.number, None)

    return PerTrial()


def auto_pruning(settings: Settings, epochs: int | None) -> tuple[int, int] | None:
    """The default (`auto`) pruner's plan, sized from the search: (S, W) for Optuna's median pruner,
    which prunes a trial only once S trials are complete (and S have reported the same epoch), and only
    once the trial has trained W epochs; S = max(MIN_TRIALS, trials / 10), W = max(MIN_EPOCHS, epochs / 3).
    None where the search is too small for it to prune anything: trials <= S, or (the epochs fixed) no
    epoch from the W-th on but the last, where no pruner stops a trial (zoo.search.trial.Report)."""
    startup, warmup = _auto_sizes(settings, epochs)
    steps = epochs * max(settings.cv, 1) if epochs else None
    if settings.trials <= startup or (steps is not None and steps <= warmup):
        return None
    return startup, warmup


def _auto_sizes(settings: Settings, epochs: int | None) -> tuple[int, int]:
    """(S, W) of `auto_pruning` (W is MIN_EPOCHS where the epochs are searched)."""
    return max(MIN_TRIALS, settings.trials // 10), max(MIN_EPOCHS, (epochs or 0) // 3)


def describe_pruner(settings: Settings, space: Space) -> str:
    """The pruner in words, for the search's first line and its summary."""
    if settings.pruner != "auto":
        return f"{settings.pruner} pruner"
    epochs = _fixed_epochs(settings, space)
    plan = auto_pruning(settings, epochs)
    if plan is None:
        startup, warmup = _auto_sizes(settings, epochs)
        size = f"{settings.trials} trial{'s' * (settings.trials != 1)}" + (
            f" of {epochs} epoch{'s' * (epochs != 1)}" if epochs else "")
        return (f"no pruning (auto: {size} is too small a search to prune; the median pruner would start "
                f"after {startup} complete trials and a trial's first {warmup} epochs)")
    return f"median pruner (auto: after {plan[0]} complete trials, from epoch {plan[1]})"


def make_pruner(settings: Settings, epochs: int | None):
    optuna = optuna_module()
    if settings.pruner == "auto":
        plan = auto_pruning(settings, epochs)
        if plan is None:
            return optuna.pruners.NopPruner()
        startup, warmup = plan
        return optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=warmup, n_min_trials=startup)
    if settings.pruner == "none":
        return optuna.pruners.NopPruner()
    if settings.pruner == "hyperband":
        steps = epochs * max(settings.cv, 1) if epochs else "auto"
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=steps, reduction_factor=3)
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)  # Optuna's defaults


def _fixed_epochs(settings: Settings, space: Space) -> int | None:
    if "epochs" in space.keys():
        return None

    _, _, train_cfg = resolve_config(settings.model, preset=settings.preset, config={**space.fixed,
                                                                                    **settings.overrides})
    return train_cfg.epochs


def open_study(settings: Settings, space: Space, create: bool = False):
    optuna = optuna_module()
    storage, native = open_storage(settings)
    sampler = make_sampler(settings, space)
    pruner = make_pruner(settings, _fixed_epochs(settings, space))
    try:  # a read-only or damaged database: one message, not Optuna's traceback
        with storage_errors.said(settings, f"cannot use the storage {redact(settings.storage)}"):
            if create:
                study = optuna.create_study(study_name=settings.study, storage=storage, sampler=sampler,
                                            pruner=pruner, direction="minimize", load_if_exists=True)
            else:
                study = optuna.load_study(study_name=settings.study, storage=storage, sampler=sampler, pruner=pruner)
    except ValueError as e:
        raise ConfigError(f"study '{settings.study}': {e}") from None
    except KeyError:
        raise ConfigError(f"no study '{settings.study}' in {redact(settings.storage)}") from None
    return study, storage, native
