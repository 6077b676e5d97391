"""zoo.train's own arguments (not config keys), checked before anything is read or a folder touched: each of the
wrong kind refused in one zoo error, not a TypeError deep in the library, nor a text taken as True (a notebook's
overwrite="no" once replaced the run in --out)."""

from __future__ import annotations

from os import PathLike
from typing import Any

from zoo.console import check_log
from zoo.errors import ConfigError
from zoo.runs.config import check_flag
from zoo.runs.run import Run
from zoo.training import callbacks as zoo_callbacks
from zoo.training.engine import TrainResult


def resume_folder(resume: Any) -> Any:
    """resume= as a run folder, as every other task takes a run: a training's result (zoo.train, zoo.finetune)
    by its run_dir, a zoo.load Run by its folder; anything else as given (check_kinds checks it)."""
    if isinstance(resume, TrainResult):
        return resume.run_dir
    if isinstance(resume, Run):
        return resume.folder
    return resume


def check_flags(overwrite: Any, progress: Any) -> None:
    """overwrite= and progress= as True or False (progress also None: on a terminal), as save= is elsewhere."""
    check_flag(overwrite, "overwrite")
    check_flag(progress, "progress", none=True)


def check_hooks(log, callbacks, init) -> None:
    """A `log` that is no function, `callbacks` that are not zoo.Callback objects and an `init` that is no
    function, refused before any folder is touched (they failed once the run's first files were written, and
    blocked the retry)."""
    check_log(log)
    for cb in callbacks:
        if not isinstance(cb, zoo_callbacks.Callback):
            raise ConfigError(f"callbacks= takes zoo.Callback objects, not {cb!r:.60}",
                              "Subclass zoo.Callback and pass an instance; a plugin's callback is turned on by "
                              "its config key (`zoo list` shows them).")
    if init is not None and not callable(init):
        raise ConfigError(f"init= takes a function of the new model, not {init!r:.60}",
                          "Pass a function that sets the model's weights, init(model); leave init= out for zoo's.")


def check_kinds(**given) -> None:
    """Arguments of the wrong kind (preset=5, out=123), each refused in one zoo error, not a TypeError deep
    in the library. A None is always taken: the default."""
    for name, (value, kinds) in given.items():
        if value is not None and not isinstance(value, kinds):
            wanted = " or ".join({str: "a text", PathLike: "a path", dict: "a dict", list: "a list",
                                  tuple: "a tuple"}[k] for k in (kinds if isinstance(kinds, tuple) else (kinds,)))
            hint = "Or a run: zoo.train's result, or zoo.load's." if name == "resume" else None
            raise ConfigError(f"{name}= takes {wanted}, not {value!r:.60}", hint)
        if name in ("out", "resume", "config") and isinstance(value, str) and not value.strip():  # as the CLI has it
            raise ConfigError(f"{name}={value!r}: an empty value names nothing", f"Leave {name}= out for its default.")
