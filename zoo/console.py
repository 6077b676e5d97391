"""Where the library's progress notes go: long operations take a `log(msg)` callable, by default one of
these (the CLI passes its own; tests pass `quiet`)."""

from __future__ import annotations

import sys

from zoo.errors import ConfigError


def to_stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def to_stdout(msg: str) -> None:
    print(msg, flush=True)


def quiet(_msg: str) -> None:
    """Say nothing."""


def check_log(log, loggers: bool = True) -> None:
    """A `log=` that is no function (a logger's name, None for silence), refused before anything is done.
    `loggers`: whether the function takes loggers= (a cross-validation logs to none)."""
    if callable(log):
        return
    hint = ((f"The loggers are named in loggers= (the command's --log): loggers={log!r}." if loggers else
             "A cross-validation logs to no tracker; log= is where its lines go.") if isinstance(log, str)
            else "Pass zoo.console.quiet to say nothing." if log is None else "")
    raise ConfigError(f"log= takes a function of one text (such as print), not {log!r:.60}", hint)
