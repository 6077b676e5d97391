"""The MLflow logger (`--log mlflow`), through MLflow's own client.

A training is one MLflow run (named like the run folder, in the experiment $MLFLOW_EXPERIMENT_NAME,
else "zoo"): the resolved config as its params, every number of metrics.jsonl per epoch as metrics,
and once it has finished the run folder's safetensors weights, config.json, model card and
metrics.jsonl as artifacts (never a pickled model). The tracking URI is `--set mlflow_uri=...`, else
$MLFLOW_TRACKING_URI, else MLflow's default. RUN/mlflow.json says which MLflow run it is, so
`--resume` goes on in that same run.

Credentials never go into the run folder: config.json and the model card are published with the run,
so a mlflow_uri carrying a user name or password is refused (MLflow reads them from
$MLFLOW_TRACKING_USERNAME / $MLFLOW_TRACKING_PASSWORD or $MLFLOW_TRACKING_TOKEN, and a database URI's
from $MLFLOW_TRACKING_URI, which is never stored); every message and RUN/mlflow.json shows a URI with
its credentials replaced by ***.

A server that cannot be reached never stops training: the message says that the run is not logged
there, and the run folder holds everything.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from zoo.errors import ConfigError
from zoo.hooks import hookimpl
from zoo.interrupts import holding_interrupts
from zoo.runs import checkpoint as ckpt
from zoo.tracking.logger import Logger, RunView, StudyView, check_writable, final_metrics, flat_params, scalars
from zoo.tracking.messages import SECRET_NAME, failure, redact

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks
    fcntl = None

RUN_FILE = "mlflow.json"  # in a run or study folder: the tracking URI and the MLflow run it is logged to
ARTIFACTS = (ckpt.WEIGHTS, ckpt.CONFIG, "README.md", ckpt.METRICS, "loss.png")
STUDY_ARTIFACTS = ("summary.json", "trials.csv", "best.toml", "space.toml", "history.png", "importance.png")
MAX_TRIALS = 50_000  # child runs read back per search (MLflow's page limit)
STATUS = {"finished": "FINISHED", "failed": "FAILED", "killed": "KILLED"}
PROBE_SECONDS = 5.0
BATCH = 100  # params per log_batch call (MLflow's limit)
SETUP_LOCK = ".zoo-setup.lock"  # .DATABASE.zoo-setup.lock beside a SQLite store's database: see setting_up
SQLITE_HEADER = b"SQLite format 3\x00"  # the first bytes of every SQLite database file
# The package that installs a database driver SQLAlchemy imports for a store's URI (the module's name otherwise).
DRIVERS = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary", "MySQLdb": "mysqlclient",
           "pymysql": "PyMySQL", "pyodbc": "pyodbc", "pymssql": "pymssql"}
ARTIFACT_FOLDER = "mlartifacts"  # beside a SQLite store's database: the artifacts of the experiments zoo creates


class Unreachable(Exception):
    """The tracking server did not answer."""


def tracking_uri(configured: str) -> str:
    import mlflow

    return configured or os.environ.get("MLFLOW_TRACKING_URI") or mlflow.get_tracking_uri()


# The stores MLflow's client opens: its REST server, local files, and the databases SQLAlchemy reaches.
KNOWN_SCHEMES = ("http", "https", "file", "sqlite", "postgresql", "mysql", "mssql", "databricks", "uc")


def check_uri(uri: str, configured: bool = True) -> None:
    """Refuse, before anything is trained, a URI no MLflow store answers to (a typo such as htp://), and
    a configured one (`configured`: from mlflow_uri, stored in config.json) that carries credentials."""
    parsed = urllib.parse.urlparse(uri)
    scheme = parsed.scheme.split("+")[0].lower()  # postgresql+psycopg2://
    if len(scheme) == 1:  # a Windows drive letter: a plain path
        return
    if scheme and scheme not in KNOWN_SCHEMES:
        raise ConfigError(f"mlflow_uri {redact(uri)!r}: MLflow has no tracking store for '{parsed.scheme}:'",
                          "Use http(s)://HOST:PORT for a server, or sqlite:///PATH/mlflow.db for a local store: "
                          "--set mlflow_uri=...")
    if scheme in ("http", "https") and not parsed.netloc:
        raise ConfigError(f"mlflow_uri {redact(uri)!r} names no server", "Write it as http://HOST:PORT.")
    secret_keys = [k for k, _ in urllib.parse.parse_qsl(parsed.query, keep_blank_values=True)
                   if SECRET_NAME.search(k)]
    if configured and ("@" in parsed.netloc or secret_keys):
        raise ConfigError(f"mlflow_uri {redact(uri)!r} carries a user name or password, which config.json and the "
                          "model card would keep and `zoo push` would publish",
                          ("Give the URI without them and pass the credentials the way MLflow reads them: "
                           "$MLFLOW_TRACKING_USERNAME and $MLFLOW_TRACKING_PASSWORD, or $MLFLOW_TRACKING_TOKEN."
                           if scheme in ("http", "https") else
                           "Pass a database URI with its password in $MLFLOW_TRACKING_URI instead (never stored), "
                           "and leave mlflow_uri unset."))


def check_file_store(uri: str, source: str) -> None:
    """Refuse, before anything is trained, a file store (file:PATH or a folder) when the installed MLflow
    refuses to open one: MLflow 3 put it in maintenance mode, and from 3.13 opens it only with
    MLFLOW_ALLOW_FILE_STORE=true (MLflow 2 opens it)."""
    try:
        from mlflow import environment_variables as mlflow_env
    except ImportError:  # an MLflow 2 older than its environment_variables module: it opens file stores
        return
    allowed = getattr(mlflow_env, "MLFLOW_ALLOW_FILE_STORE", None)  # MLflow >= 3.13
    if allowed is None or allowed.get() or not is_file_store(uri):
        return
    raise ConfigError(f"{source} {redact(uri)!r} is a file store, which MLflow no longer opens (its filesystem "
                      "backend is in maintenance mode)",
                      "Use a SQLite store instead: --set mlflow_uri=sqlite:///PATH/mlflow.db (`mlflow "
                      "migrate-filestore` copies an existing one into it), or set MLFLOW_ALLOW_FILE_STORE=true "
                      "to keep MLflow's file store.")


def is_file_store(uri: str) -> bool:
    scheme = urllib.parse.urlparse(uri).scheme
    return scheme == "file" or len(scheme) <= 1 and not uri.startswith("databricks")  # a path, C:\...


def local_store(uri: str) -> Path | None:
    """The folder a local tracking store writes into (file:PATH, sqlite:///PATH, a plain path), else None."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path))
    if not parsed.scheme and uri and not uri.startswith("databricks"):  # MLflow reads a bare path as a folder
        return Path(uri)
    if parsed.scheme == "sqlite" and parsed.path not in ("", "/", "/:memory:"):
        return Path(parsed.path[1:]).parent  # sqlite:///relative.db, sqlite:////absolute.db
    return None


def absolute_store(uri: str) -> str:
    """A local store's URI with its path absolute (sqlite:///rel.db -> sqlite:////CWD/rel.db, a folder's path);
    any other URI as it is."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "sqlite" and parsed.path not in ("", "/", "/:memory:") and not parsed.path.startswith("//"):
        return f"sqlite:///{Path(parsed.path[1:]).absolute()}" + (f"?{parsed.query}" if parsed.query else "")
    if parsed.scheme == "file" and not parsed.netloc and not parsed.path.startswith("/"):
        return Path(urllib.request.url2pathname(parsed.path)).absolute().as_uri()
    if not parsed.scheme and uri and not uri.startswith("databricks"):
        return str(Path(uri).expanduser().absolute())
    return uri


def without_userinfo(uri: str) -> str:
    """The URI without user name and password (urllib would read them as part of the host name)."""
    parsed = urllib.parse.urlparse(uri)
    return urllib.parse.urlunparse(parsed._replace(netloc=parsed.netloc.rpartition("@")[2]))


def probe(uri: str) -> None:
    """Fail fast, before any MLflow call retries for minutes, when an HTTP tracking server is down."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(without_userinfo(uri).rstrip("/") + "/health", timeout=PROBE_SECONDS):
            pass
    except urllib.error.HTTPError:
        return  # it answered: a server without /health, or behind a proxy
    except (OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise Unreachable(f"cannot reach the MLflow server at {redact(uri)} ({reason})") from None


def client_for(uri: str):
    """MLflow's client, with short retries: a server that goes down costs seconds, not minutes."""
    from mlflow.tracking import MlflowClient

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # stdout is the commands' (--json)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
    probe(uri)
    database = sqlite_file(uri)
    with setting_up(database), holding_interrupts():  # a new SQLite store is migrated to MLflow's schema: not cut
        return MlflowClient(tracking_uri=uri)


@contextlib.contextmanager
def setting_up(database: Path | None):
    """One zoo process at a time opens a SQLite store: two migrating a new one to MLflow's schema at once left it
    broken for good (a table `_alembic_tmp_*` left behind, "duplicate column name"), and the second training
    unlogged. A lock file of its own beside the database (flock, dropped when the process ends, however it
    ends): SQLite's own locks on the database file must not be touched. No lock where there are no flocks."""
    if database is None or fcntl is None:
        yield
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.parent / f".{database.name}{SETUP_LOCK}", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # waits for the one setting it up (seconds)
        yield


def sqlite_file(uri: str) -> Path | None:
    """The database file of a sqlite:/// URI (None for another URI, or a database in memory)."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme != "sqlite" or parsed.path in ("", "/", "/:memory:"):
        return None
    return Path(parsed.path[1:])


def check_store(uri: str, source: str) -> None:
    """Refuse, before anything is trained, a store that could never take the run: a SQLite path that is a file
    but not a database, a database whose driver is not installed, an experiment of a local store that was
    deleted (MLflow logs no run into it). A server is not asked here: one that is down must not stop training."""
    database = sqlite_file(uri)
    if database is not None and database.is_file():
        with database.open("rb") as f:
            header = f.read(len(SQLITE_HEADER))
        if header and header != SQLITE_HEADER:  # an empty file is a new database to SQLite
            raise ConfigError(f"{source} {redact(uri)}: {database} is not an SQLite database",
                              "Give the path of an MLflow store, or of a new file: "
                              "--set mlflow_uri=sqlite:///PATH/mlflow.db")
        if header:
            try:
                experiment_id(client_for(uri), experiment_name(), create=False)
            except ConfigError:
                raise
            except Exception:  # noqa: BLE001 - a store that fails to open now: said by open, as a server's failure
                pass
    scheme = urllib.parse.urlparse(uri).scheme.lower()
    if scheme.split("+")[0] in ("postgresql", "mysql", "mssql"):
        import sqlalchemy

        try:  # loads the dialect and imports its driver; connects to nothing
            sqlalchemy.create_engine(uri).dispose()
        except ImportError as e:
            module = getattr(e, "name", None) or str(e)
            raise ConfigError(f"{source} {redact(uri)} needs the database driver '{module}', which is not installed",
                              f'Install it: pip install "{DRIVERS.get(module, module)}"') from None
        except Exception as e:  # noqa: BLE001 - SQLAlchemy's reading of a mistyped URI (an unknown driver, a port
            # that is no number) was a raw traceback
            raise ConfigError(f"{source} {redact(uri)} is not a database URI MLflow can use ({failure(e)})",
                              "Check the URI: dialect+driver://user:password@host:port/database.") from None


def experiment_name() -> str:
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or "zoo"


def experiment_id(client, name: str, create: bool = True) -> str:
    """The experiment `name`, created when missing (`create`); in a SQLite store, with its artifacts beside the
    database (MLflow's default would be ./mlruns in whatever folder zoo runs in). A deleted one is refused:
    MLflow logs no run into it, nor creates another of its name."""
    found = client.get_experiment_by_name(name)
    if found is not None and found.lifecycle_stage == "deleted":
        raise ConfigError(f"the MLflow experiment '{name}' in {redact(client.tracking_uri)} is deleted: MLflow logs "
                          "no run into it",
                          f"Restore it (mlflow experiments restore --experiment-id {found.experiment_id}, with "
                          "MLFLOW_TRACKING_URI set to the store), or choose another name: $MLFLOW_EXPERIMENT_NAME.")
    if found is not None or not create:
        return found.experiment_id if found is not None else ""
    uri = client.tracking_uri
    local = local_store(uri) if uri.startswith("sqlite:") else None
    location = (local / ARTIFACT_FOLDER).absolute().as_uri() if local is not None else None
    return client.create_experiment(name, artifact_location=location)


def log_params(client, run_id: str, params: dict[str, Any]) -> None:
    from mlflow.entities import Param

    items = [Param(k, str(v)) for k, v in params.items()]
    for i in range(0, len(items), BATCH):
        client.log_batch(run_id, params=items[i:i + BATCH])


def log_metrics(client, run_id: str, values: dict[str, float], step: int) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, v, now, step) for k, v in values.items()])


def run_tags(run: RunView) -> dict[str, str]:
    """The tags of a run's MLflow run: its model and its folder."""
    return {"zoo.model": str(run.config.get("model", "")), "zoo.run_folder": str(run.folder.absolute())}


class MLflow(Logger):
    name = "mlflow"
    description = ("an MLflow run per training: params, per-epoch metrics, the weights and model card as artifacts "
                   "(--set mlflow_uri=... or $MLFLOW_TRACKING_URI)")
    requires = "mlflow"
    install = "zoo[mlflow]"
    run_files = (RUN_FILE,)  # --overwrite removes it: the new run is a new MLflow run, not the old one's

    def __init__(self, train, say):
        super().__init__(train, say)
        self.client = None
        self.run_id = ""
        self.experiment_id = ""
        self.logged_trials: set[str] | None = None  # a search's trials already children of its parent run

    def prepare(self, folder: Path) -> None:
        """Refused before the run folder exists: a URI no store answers to, a mlflow_uri with credentials
        (config.json is published), a file store the installed MLflow no longer opens, and a local store
        (file:, sqlite:, a plain path) that cannot be written."""
        uri = tracking_uri(self.train.mlflow_uri)
        check_uri(uri, configured=bool(self.train.mlflow_uri))
        source = ("mlflow_uri" if self.train.mlflow_uri else "$MLFLOW_TRACKING_URI"
                  if os.environ.get("MLFLOW_TRACKING_URI") else "MLflow's default tracking URI")
        check_file_store(uri, source)
        parsed = urllib.parse.urlparse(uri)
        if parsed.scheme == "sqlite" and parsed.path in ("", "/", "/:memory:"):  # gone when the process ends
            raise ConfigError(f"{source} {redact(uri)} is an SQLite database in memory: everything logged to it "
                              "is lost when the command ends", "Give it a file: --set mlflow_uri=sqlite:///mlflow.db "
                              "(or $MLFLOW_TRACKING_URI).")
        local = local_store(uri)
        if local is not None:
            check_writable(local, "the MLflow tracking store", "--set mlflow_uri=...")
        check_store(uri, source)
        # config.json keeps it (written after this): a --resume from another folder then logs to the same store
        self.train.mlflow_uri = absolute_store(self.train.mlflow_uri)

    def open(self, run: RunView) -> int:
        if self.mlflow_run(run.folder, run.resumed, run.name, run_tags(run), flat_params(run.config)):
            return 0
        history = self.client.get_metric_history(self.run_id, "images_per_s")
        return max((m.step for m in history), default=0)

    def params_since(self, params: dict[str, Any]) -> None:
        """A run gone on in (a resume with more --epochs, a logger turned on): MLflow keeps a param's first value,
        so a value changed since is set as the tag zoo.resumed.KEY (and said), and a param not logged yet is
        logged."""
        logged = self.client.get_run(self.run_id).data.params
        changed = {k: str(v) for k, v in params.items() if k in logged and logged[k] != str(v)}
        log_params(self.client, self.run_id, {k: v for k, v in params.items() if k not in logged})
        for k, v in changed.items():
            self.client.set_tag(self.run_id, f"zoo.resumed.{k}", v)
        if changed:
            self.say("mlflow: a param keeps its first value, so " + ", ".join(
                f"{k}={v} (was {logged[k]})" for k, v in changed.items()) + " are tags zoo.resumed.KEY")

    def mlflow_run(self, folder: Path, resumed: bool, name: str, tags: dict[str, str], params: dict[str, Any]) -> bool:
        """Go on in the MLflow run FOLDER/mlflow.json names (when resumed, on the same server and still
        there), else create one with `params`; returns whether it was created."""
        uri = tracking_uri(self.train.mlflow_uri)
        local = local_store(uri)
        if local is not None:  # MLflow makes a store's own folder, not the folders above it
            local.mkdir(parents=True, exist_ok=True)
        self.client = client_for(uri)
        known = folder / RUN_FILE
        saved = ckpt.read_json(known) if resumed and known.is_file() else {}
        # Only the redacted URI is stored (no password is written); compared redacted, the same store is equal
        # (a relative path of an earlier zoo's, from the working directory).
        same = absolute_store(redact(saved.get("tracking_uri", ""))) == absolute_store(redact(uri))
        if same and self.goes_on(saved.get("run_id", "")):
            self.run_id = saved["run_id"]
            self.params_since(params)
            return False
        if saved.get("run_id"):  # its epochs so far are logged again into the new run
            self.say(f"note: mlflow: {known} names run {saved['run_id']} in {saved.get('tracking_uri') or '?'}, "
                     f"which {redact(uri)} does not hold (another store, or the run deleted): logging to a new run")
        experiment = experiment_name()
        found = experiment_id(self.client, experiment)
        self.run_id = self.client.create_run(found, run_name=name, tags=tags).info.run_id
        log_params(self.client, self.run_id, params)
        ckpt.write_json(known, {"tracking_uri": redact(uri), "run_id": self.run_id, "experiment": experiment})
        artifacts = self.client.get_experiment(found).artifact_location
        self.say(f"mlflow: logging to run {self.run_id} in experiment '{experiment}' at {redact(uri)}, "
                 f"artifacts in {redact(artifacts)}")
        return True

    def where(self) -> str:
        """The run's page on a tracking server (its id elsewhere)."""
        uri = redact(self.client.tracking_uri)
        if not uri.startswith(("http://", "https://")):
            return f"run {self.run_id} in {uri} (to see it: mlflow ui --backend-store-uri {uri})"
        info = self.client.get_run(self.run_id).info
        return f"{uri.rstrip('/')}/#/experiments/{info.experiment_id}/runs/{self.run_id}"

    def goes_on(self, run_id: str) -> bool:
        """Whether the tracking server still holds this run (it may have been deleted meanwhile)."""
        from mlflow.exceptions import MlflowException

        if not run_id:
            return False
        try:
            return self.client.get_run(run_id).info.lifecycle_stage == "active"
        except MlflowException:
            return False

    def log_epoch(self, record: dict[str, Any]) -> None:
        log_metrics(self.client, self.run_id, scalars(record), record["epoch"])

    def close(self, run: RunView, status: str) -> None:
        if not self.run_id:
            return
        if status == "finished" and run.history:
            log_metrics(self.client, self.run_id, final_metrics(run.history), run.history[-1]["epoch"])
            for name in ARTIFACTS:
                path = Path(run.folder) / name
                if path.is_file():
                    self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(self.run_id, STATUS[status])
        self.say(f"mlflow: {status}: {self.where()}")

    def log_eval(self, run: RunView, figures: dict[str, float], step: int, files: list[Path]) -> None:
        """Into the MLflow run RUN/mlflow.json names (the run's own, where it trained with --log mlflow), else
        a new one: the figures as metrics at the run's last epoch, the files as artifacts."""
        created = self.mlflow_run(run.folder, True, run.name, run_tags(run), flat_params(run.config))
        # an evaluation logged again (the same eval.json): no second point of a figure at its step
        figures = {k: v for k, v in figures.items() if not self.holds(k, v, step)}
        log_metrics(self.client, self.run_id, figures, step)
        for path in files:
            self.client.log_artifact(self.run_id, str(path))
        if created:
            self.client.set_terminated(self.run_id, "FINISHED")
        self.say(f"mlflow: the evaluation is logged: {self.where()}")

    def holds(self, key: str, value: float, step: int) -> bool:
        """Whether the run holds `value` for metric `key` at `step` already."""
        return any(m.step == step and math.isclose(m.value, value, rel_tol=1e-9, abs_tol=0.0)
                   for m in self.client.get_metric_history(self.run_id, key))

    def log_study(self, study: StudyView) -> None:
        """The study as a parent run (STUDY/mlflow.json; its fixed keys as params, its outputs as
        artifacts), each finished trial a child run: its drawn values as params, the objective's metric
        at each epoch, its results. Trials already logged as children are left as they are."""
        from mlflow.entities import Metric

        if self.logged_trials is None:  # the first call of this search: the parent, and the children it has
            self.mlflow_run(study.folder, True, study.name,
                            {"zoo.model": study.model, "zoo.study": study.name,
                             "zoo.study_folder": str(study.folder.absolute())},
                            {**flat_params({"train": study.fixed}), "model": study.model, "metric": study.metric})
            parent = self.client.get_run(self.run_id).info
            self.experiment_id = parent.experiment_id
            if not study.finished and parent.status != "RUNNING":  # a resumed search: running again
                self.client.update_run(self.run_id, status="RUNNING")
            self.logged_trials = set()
        if any(str(t.number) not in self.logged_trials for t in study.trials):
            # the children as the store holds them now: another `zoo search` on the study logs its trials too
            children = self.client.search_runs([self.experiment_id], f"tags.mlflow.parentRunId = '{self.run_id}'",
                                               max_results=MAX_TRIALS)
            self.logged_trials |= {r.data.tags.get("zoo.trial") for r in children}
        for trial in study.trials:
            if str(trial.number) in self.logged_trials:
                continue
            child = self.client.create_run(self.experiment_id, run_name=f"trial-{trial.number}",
                                           tags={"mlflow.parentRunId": self.run_id, "zoo.trial": str(trial.number),
                                                 "zoo.state": trial.state}).info.run_id
            log_params(self.client, child, trial.params)
            now = int(time.time() * 1000)
            curves = trial.curves()  # with CV, one per fold: val_loss/fold1, ...
            curve = [Metric(study.metric + ending, v, now, step)
                     for ending, points in curves.items() for step, v in sorted(points.items())]
            last = max((max(points, default=0) for points in curves.values()), default=0)
            results = {**trial.metrics, **({"objective": trial.value} if trial.value is not None else {})}
            self.client.log_batch(child, metrics=curve + [Metric(k, v, now, last) for k, v in results.items()])
            self.client.set_terminated(child, "FAILED" if trial.state == "fail" else "FINISHED")
            self.logged_trials.add(str(trial.number))
        if not study.finished:
            return  # the parent stays RUNNING; its results and outputs come once the search has ended
        best = next((t for t in study.trials if t.number == study.best), None)
        # at the count of finished trials: each end of a resumed search adds a point of its own, and a search
        # ended again with no new trial adds none
        step = sum(t.state in ("complete", "pruned") for t in study.trials)  # as the search counts its trials
        held = {m.step for m in self.client.get_metric_history(self.run_id, "best_objective")}
        if best is not None and step not in held:
            log_metrics(self.client, self.run_id, {"best_objective": best.value, "best_trial": float(best.number)},
                        step)
        for name in STUDY_ARTIFACTS:
            if (study.folder / name).is_file():
                self.client.log_artifact(self.run_id, str(study.folder / name))
        status = "KILLED" if study.stopped else "FINISHED"  # as a training stopped by Ctrl-C: resumable
        self.client.set_terminated(self.run_id, status)
        self.say(f"mlflow: the study and {len(study.trials)} trial(s), {status}: {self.where()}")


@hookimpl
def zoo_loggers():
    return [MLflow]
