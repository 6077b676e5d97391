"""Where a study lives and how it samples: the storage (Optuna's journal file by default, or a
database URL), the sampler and pruner, and opening or creating the study."""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.errors import ConfigError
from zoo.space import Space

if TYPE_CHECKING:  # (settings imports this module)
    from zoo.search.settings import Settings

HOST = socket.gethostname()
JOURNAL = "journal.log"
RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb", "oracle", "mssql")
MAX_RETRY = 3


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
    optuna = optuna_module()
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
    callback = retry_callback()
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
    optuna = optuna_module()
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
    optuna = optuna_module()
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
    optuna = optuna_module()
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
