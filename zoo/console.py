"""Where the library's progress notes go: long operations take a `log(msg)` callable, by default one of
these (the CLI passes its own; tests pass `quiet`)."""

from __future__ import annotations

import sys

from zoo.errors import ConfigError


def to_stderr(msg: str) -> None:
    """A line for the user on stderr. One that cannot be written (stderr closed, 2>&-, or a full device) is dropped:
    a training's notes are not its work, which goes on (metrics.jsonl holds its numbers). A reader that went away
    (a closed pipe) still ends the command, as it does every command (exit 141)."""
    if sys.stderr is None:  # started with its stderr closed
        return
    try:
        print(msg, file=sys.stderr, flush=True)
    except BrokenPipeError:
        raise
    except (OSError, ValueError):  # ValueError: a stream closed from Python
        pass


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
