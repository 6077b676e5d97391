"""Loggers: where a run is watched besides metrics.jsonl (TensorBoard, MLflow, a plugin's).

A logger is a `Logger` subclass a plugin returns from the `zoo_loggers` hook (zoo's own register the
same way, in zoo.plugins.tensorboard_logger and zoo.plugins.mlflow_logger). A run turns it on by name:
`zoo train ... --log tensorboard,mlflow`, or the config key `loggers`.

metrics.jsonl stays the record: the engine writes it before the checkpoint, and resume and early
stopping read it. A logger only mirrors it, at each epoch's end (after the checkpoint, so it never
holds an epoch the run does not), and its failures never stop training: a logger that fails says once
what was not logged and is left out for the rest of the run.

A subclass writes four things, each in its own terms:

* `open(run)`: its destination for the run (a folder of event files, a tracking server's run), and
  returns the last epoch that destination already holds (0: none): on resume, the epochs after it are
  logged again from metrics.jsonl, and none twice;
* `log_epoch(record)`: an epoch's row of metrics.jsonl;
* `log_images(epoch, rows)`: labelled rows of images (the model's `preview`), every `plot_every` epochs
  and at the end;
* `close(run, status)`: the end of the run (its final metrics, files, status).
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import torch

from zoo.errors import ConfigError, PluginError
from zoo.registry import failed_plugins, load_registry
from zoo.runs import checkpoint as ckpt
from zoo.runs.config import flat_config
from zoo.runs.plugin_calls import blamed, model_preview
from zoo.runs.write_checks import nearest_existing, writable
from zoo.tracking.messages import failure, filling_in, interrupted_at_start
from zoo.tracking.views import RunView, StudyView, TrialView  # noqa: F401  (a logger's types, importable here)
from zoo.training.callbacks import Callback

if TYPE_CHECKING:  # pragma: no cover
    from zoo.runs.config import TrainConfig
    from zoo.training.engine import Trainer

JSONL = "jsonl"  # metrics.jsonl: always written, by the engine; named so `--log jsonl` is accepted
PREVIEW_IMAGES = 16  # test images in a logged preview, as in the run folder's pictures


def flat_params(config: dict[str, Any]) -> dict[str, Any]:
    """A run's hyperparameters as one flat dict of scalars (model name, model and training keys by the
    names `--set` takes; lists as text), as tracking tools take them."""
    params = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in flat_config(config).items()}
    return {"model": config.get("model", ""), **params}


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """The numbers of a metrics.jsonl row worth plotting: every finite number but the epoch itself."""
    return {k: float(v) for k, v in record.items()
            if k not in ("epoch", "best") and isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v)}


def final_metrics(history: list[dict[str, Any]]) -> dict[str, float]:
    """The run's result: the best epoch's validation metrics (the last epoch's when none is marked best),
    with the epochs trained."""
    row = ckpt.best_row(history)
    if row is None:
        return {}
    out = {f"best_{k}": v for k, v in scalars(row).items() if k.startswith("val_")}
    out["best_epoch"] = float(row["epoch"])
    out["epochs"] = float(history[-1]["epoch"])
    return out


class Logger(Callback):
    """Mirrors a run's metrics.jsonl to a tracking tool. A plugin's logger sets `name`, `description`,
    and the module it needs (`requires`) with the zoo extra or package that installs it (`install`)."""

    requires: ClassVar[str] = ""   # a module to import, e.g. "tensorboard"
    install: ClassVar[str] = ""    # what to pip install for it, e.g. 'zoo[tensorboard]'
    # What it writes into a run folder (names relative to it: files or folders), so that `--overwrite`
    # removes them with the run it replaces: a new run never shows, or continues, the old one's logs.
    run_files: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def logged_training(cls, run_dir: Path) -> list[str]:
        """Which of its `run_files` in `run_dir` show that a training of the run was logged here (a resume
        whose --log leaves this logger out says so). By default: those present."""
        return [f for f in cls.run_files if (run_dir / f).exists()]

    def __init__(self, train: "TrainConfig", say: Callable[[str], None]):
        self.train = train
        self.say = say
        self.failed = False  # after a failure the logger is left out for the rest of the run
        self.run: RunView | None = None
        self.seconds = 0.0  # wall time spent logging (what it cost the run)
        self.kept = "metrics.jsonl in the run folder holds every epoch"  # said with a failure: see filling_in

    # ---------------------------------------------------------------- what a subclass writes
    def prepare(self, folder: Path) -> None:
        """Refuse, with a ConfigError, a destination that cannot be written, before the run folder is
        touched (a new run) or training goes on (a resumed one)."""

    def open(self, run: RunView) -> int:
        raise NotImplementedError

    def log_epoch(self, record: dict[str, Any]) -> None:
        raise NotImplementedError

    def log_images(self, epoch: int, rows: list[tuple[str, torch.Tensor]]) -> None:
        """Labelled rows of images in [0, 1] ([n, C, H, W] each). By default: not logged."""

    def close(self, run: RunView, status: str) -> None:
        """The run ended: `status` is "finished", "failed" or "killed"; the run folder is complete
        (weights, config.json, model card) when it is "finished"."""

    def release(self) -> None:
        """After a failure: let go of what the logger holds (an open file, a thread), writing nothing more.
        By default: nothing held."""

    def prepare_study(self, folder: Path) -> None:
        """Refuse, with a ConfigError, a destination a search in `folder` could not log to."""
        self.prepare(folder)

    def log_study(self, study: StudyView) -> None:
        """A search: each finished trial not logged before. Called as trials finish, and once more when
        the search has ended (`study.finished`); a resumed search logs only the new trials."""
        raise NotImplementedError

    def log_eval(self, run: RunView, figures: dict[str, float], step: int, files: list[Path]) -> None:
        """A `zoo eval --log NAME` of the run: its figures (`test_KEY`, as zoo compare names them) at `step`
        (the run's last epoch), and the `files` it wrote (eval.json); `run.folder` is where the evaluation's
        results go. A logger without it is refused by `zoo eval --log`."""
        raise NotImplementedError

    @staticmethod
    def log_codes(folder: Path, codes: torch.Tensor, labels: torch.Tensor | None, images: torch.Tensor,
                  names: list[str] | None = None) -> Path:
        """Latent codes (a row per image) with their labels and images, for the tool's embedding viewer,
        into `folder`; returns where they are. A logger without one leaves this out."""
        raise NotImplementedError

    # ---------------------------------------------------------------- the training hooks, guarded
    def guarded(self, what: str, fn: Callable, *args,
                kept: str = "metrics.jsonl in the run folder holds every epoch") -> Any:
        """Call `fn`; a failure is said once (with where the figures are `kept` all the same), and the logger
        is left out from then on."""
        if self.failed:
            return None
        start = time.perf_counter()
        quiet_before = logging.root.manager.disable
        logging.disable(logging.ERROR)  # its library's own account of a failure (SQLAlchemy's 80-line traceback)
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001 - a tracking tool's failure must never stop training
            self.failed = True
            self.say(f"note: {self.name}: {what} failed ({failure(e)}); the rest of this run is not logged there. "
                     f"{kept}")
            with contextlib.suppress(Exception):
                self.release()
            return None
        finally:
            logging.disable(quiet_before)
            self.seconds += time.perf_counter() - start

    def on_train_start(self, trainer: "Trainer") -> None:
        names = [n for n in logger_names(self.train.loggers) if n != JSONL]
        self.kept = filling_in(trainer.run_dir, names)
        try:
            self.run = RunView(trainer.run_dir, run_config(trainer), list(trainer.history), trainer.resumed)
            if trainer.resumed and names[:1] == [self.name]:  # said once, by the first logger
                self.say_left_out(trainer.run_dir, names)
            done = self.guarded("opening the run", self._open_checked, self.run, kept=self.kept)
            for record in trainer.history:  # what the destination misses (a new logger on resume)
                if done is not None and record["epoch"] > done:
                    self.guarded(f"logging epoch {record['epoch']}", self.log_epoch, record, kept=self.kept)
            last = trainer.history[-1]["epoch"] if trainer.history else 0
            every = trainer.train.plot_every
            if done is not None and done < last and every and last % every == 0 and last != trainer.train.epochs:
                # the pictures due at the checkpoint's epoch, which a stop right after it may have cut off: the
                # weights are that epoch's again
                self.guarded(f"logging epoch {last}'s images", lambda: self.log_images(last, preview_rows(trainer)))
        except KeyboardInterrupt:
            raise interrupted_at_start(trainer.run_dir, trainer.saved_epoch) from None

    def _open_checked(self, run: RunView) -> int | None:
        """`open(run)`, its answer checked: the last epoch the destination holds, a whole number 0 or more (None: the
        epochs from now on are logged); another answer fails as an exception does (said once, the logger left out)."""
        done = self.open(run)
        if done is not None and (isinstance(done, bool) or not isinstance(done, int) or done < 0):
            raise TypeError(f"its open() returned {done!r:.40}, not the last epoch it holds (an int, 0: none); a bug "
                            "in the logger's plugin")
        return done

    def say_left_out(self, run_dir: Path, names: list[str]) -> None:
        """A resume whose --log leaves out a logger the run was logged to (its files are in the run folder):
        that destination silently stopped at the checkpoint's epoch, so say so."""
        for name, cls in installed().items():
            held = cls.logged_training(run_dir)
            if name not in names and held:
                self.say(f"note: this run was logged to {name} ({', '.join(held)} in the run folder), which --log "
                         f"{','.join(names)} leaves out: its epochs from now on are not logged there. "
                         f"{filling_in(run_dir, [*names, name])}")

    def on_epoch_end(self, trainer: "Trainer", epoch: int, record: dict[str, Any]) -> None:
        if self.run is not None:
            self.run.history.append(record)
        self.guarded(f"logging epoch {epoch}", self.log_epoch, record, kept=self.kept)
        every = trainer.train.plot_every
        if every and epoch % every == 0 and epoch != trainer.train.epochs:
            self.guarded(f"logging epoch {epoch}'s images", lambda: self.log_images(epoch, preview_rows(trainer)))

    def on_train_end(self, trainer: "Trainer") -> None:
        """The best weights are back: the last picture is of them, at the last epoch's step."""
        if trainer.history:
            last = trainer.history[-1]["epoch"]
            self.guarded("logging the final images", lambda: self.log_images(last, preview_rows(trainer)))

    def finish(self, status: str) -> None:
        if self.run is not None:
            self.guarded("closing the run", self.close, self.run, status)


@contextlib.contextmanager
def finishing(loggers: list[Logger]):
    """Close the loggers when training ends: "finished" after the block, "killed" on Ctrl-C, else
    "failed" (the error goes on)."""
    try:
        yield
    except BaseException as e:
        status = "killed" if isinstance(e, KeyboardInterrupt) or getattr(e, "exit_code", None) == 130 else "failed"
        for logger in loggers:
            logger.finish(status)
        raise
    for logger in loggers:
        logger.finish("finished")


def check_writable(path: Path, what: str, instead: str) -> None:
    """Refuse, before anything is trained, a folder that cannot be made or written (tried for real: to
    root, permission bits say nothing). `instead`: the option that chooses another."""
    existing = nearest_existing(path)
    if not existing.is_dir():
        raise ConfigError(f"cannot write {what} to {path}: {existing} is not a folder",
                          f"Choose another folder ({instead}).")
    if not writable(existing):
        raise ConfigError(f"cannot write {what} to {path}: {existing} is not writable",
                          f"Make it writable, or choose another folder ({instead}).")


def run_config(trainer: "Trainer") -> dict[str, Any]:
    """The run's config.json (written once training has begun)."""
    return ckpt.read_json(trainer.run_dir / ckpt.CONFIG)


def preview_rows(trainer: "Trainer") -> list[tuple[str, torch.Tensor]]:
    """The model's preview rows of the first test images, in [0, 1], as the run folder's pictures show."""
    model = trainer.model
    x = trainer.data.test_x[:PREVIEW_IMAGES].to(model.device).float() / 255.0
    return [(label, images.detach().float().clamp(0, 1).cpu()) for label, images in model_preview(model, x)]


# -------------------------------------------------------------------- choosing loggers

def installed() -> dict[str, type[Logger]]:
    """Every logger class the installed plugins provide, by name."""
    return {name: e.cls for name, e in load_registry().loggers.items()}


def logger_run_files() -> list[str]:
    """What the installed loggers write into a run folder (their `run_files`), each once: `--overwrite`
    removes these with the old run. Only plain relative names count (never an absolute path or ..)."""
    names: list[str] = []
    for cls in installed().values():
        for name in cls.run_files:
            path = Path(name)
            if name and not path.is_absolute() and ".." not in path.parts and name not in names:
                names.append(name)
    return names


def logger_names(value: Any) -> list[str]:
    """`--log tensorboard,mlflow`, ["tensorboard"], "tensorboard": the names, lower-case, each once."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    names = []
    for item in items:
        name = str(item).strip().lower()
        if name and name not in names:
            names.append(name)
    return names


def logger_classes(names: Any, *, resume: bool = False) -> list[type[Logger]]:
    """The logger classes `names` name (`jsonl`, always on, needs none); an unknown name, or one whose
    package is missing, is refused with what to do (before anything is written). The installed loggers it
    names are those `zoo list` shows; `resume`: a resumed run's, whose own loggers are asked for again."""
    available = installed()
    classes = []
    for name in logger_names(names):
        if name == JSONL:
            continue
        cls = available.get(name)
        if cls is None:
            close = difflib.get_close_matches(name, sorted([JSONL, *available]), n=2, cutoff=0.5)
            raise ConfigError(f"unknown logger '{name}'",
                              (f"Did you mean: {', '.join(close)}? " if close else "")
                              + f"The installed loggers are: {', '.join(sorted(available)) or 'none'} (`zoo list` "
                              "shows them); jsonl names metrics.jsonl, which is always written."
                              + (" On --resume the run's own loggers are asked for, unless --log names others."
                                 if resume else "") + failed_plugins())
        require(cls)
        classes.append(cls)
    return classes


def loggers_for(train: "TrainConfig", say: Callable[[str], None], *, resume: bool = False) -> list[Logger]:
    """The loggers `train.loggers` names, made for a run (`resume`: a resumed one) or a search."""
    return [made(cls, train, say) for cls in logger_classes(train.loggers, resume=resume)]


def made(cls: type[Logger], train: "TrainConfig", say: Callable[[str], None]) -> Logger:
    """A logger of `cls`; a plugin's (not zoo's own) has its `__init__`, `prepare` and `prepare_study` said as its
    package's bug where they raise other than a ConfigError: called before training, unguarded, a RuntimeError
    was a traceback and a ConnectionError was said as the disk's fault, the logger not named."""
    entry = load_registry().loggers.get(cls.name)
    if entry is None or entry.cls is not cls or entry.package == "zoo":
        return cls(train, say)
    with blamed(cls, "__init__"):
        logger = cls(train, say)
    for method in ("prepare", "prepare_study"):
        setattr(logger, method, _blamed_call(logger, method, getattr(logger, method)))
    return logger


def _blamed_call(logger: Logger, method: str, call: Callable) -> Callable:
    def blamed_call(*args):
        try:
            with blamed(logger, method):
                return call(*args)
        except PluginError as e:
            leave = f" Or leave {logger.name} out of --log."
            e.hint = e.hint if (e.hint or "").endswith(leave) else f"{e.hint or ''}{leave}"  # said once, if nested
            raise

    return blamed_call


def code_loggers(names: Any) -> list[type[Logger]]:
    """The logger classes `names` name, each one that can show latent codes (`log_codes`)."""
    return _able(names, "log_codes", "has no viewer for latent codes", "Loggers that show them")


def eval_loggers(train: "TrainConfig", names: Any, say: Callable[[str], None]) -> list[Logger]:
    """The loggers `names` name, made with the run's training settings (its mlflow_uri, tensorboard_dir),
    each one that can log an evaluation (`log_eval`)."""
    return [made(cls, train, say) for cls in _able(names, "log_eval", "does not log evaluations", "Loggers that do")]


def logging_evaluations(names: Any) -> tuple[list[str], list[str]]:
    """The names among `names` of loggers that log an evaluation (`log_eval`), and of those that do not."""
    classes = logger_classes(names)
    able = [c.name for c in classes if c.log_eval is not Logger.log_eval]
    return able, [c.name for c in classes if c.name not in able]


def study_loggers(train: "TrainConfig", say: Callable[[str], None]) -> list[Logger]:
    """The loggers `train.loggers` names, for a search: each one that can log a study (`log_study`)."""
    return [made(cls, train, say) for cls in _able(train.loggers, "log_study", "does not log searches",
                                                   "Loggers that do")]


def _able(names: Any, method: str, lacking: str, others: str) -> list[type[Logger]]:
    """The logger classes `names` name, refused (naming the installed ones that can) where one leaves out
    the optional `method`."""
    classes = logger_classes(names)
    can = lambda c: getattr(c, method) is not getattr(Logger, method)  # noqa: E731
    for cls in classes:
        if not can(cls):
            able = sorted(n for n, c in installed().items() if can(c))
            raise ConfigError(f"--log {cls.name}: {cls.name} {lacking}",
                              f"{others}: {', '.join(able) or 'none installed'}.")
    return classes


def require(cls: type[Logger]) -> None:
    """Refuse a logger whose package is not installed, in one line that says what to install."""
    if not cls.requires:
        return
    try:
        importlib.import_module(cls.requires)
    except ImportError as e:  # not installed, or installed broken (a mismatched dependency)
        why = "which is not installed" if isinstance(e, ModuleNotFoundError) and e.name == cls.requires else \
            f"which cannot be imported ({e})"
        raise ConfigError(f"--log {cls.name} needs the '{cls.requires}' package, {why}",
                          f'Install it: pip install "{cls.install or cls.requires}"') from None
