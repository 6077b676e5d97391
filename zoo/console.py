"""Where the library's progress notes go: long operations take a `log(msg)` callable, by default one of
these (the CLI passes its own; tests pass `quiet`)."""

from __future__ import annotations

import sys

from zoo.errors import ConfigError


class Forgiving:
    """A stream as zoo writes its notes and progress to stderr: a line that cannot be written (stderr closed,
    2>&-, or on a full device) is dropped and the work goes on, its notes not being its work (a training died at
    its first note, before any epoch); a reader that went away (a closed pipe) still ends it (the CLI's 141)."""

    def __init__(self, stream):
        self._stream = stream

    def __getattr__(self, name):
        return getattr(self._stream, name)

    def write(self, text):
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except (OSError, ValueError):  # ValueError: a stream closed from Python
            return len(text)

    def flush(self):
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except (OSError, ValueError):
            pass


def forgive_stderr() -> None:
    """Make sys.stderr Forgiving, for a whole command (the CLI's entry point: click's own notes too)."""
    if sys.stderr is not None and not isinstance(sys.stderr, Forgiving):
        sys.stderr = Forgiving(sys.stderr)


def to_stderr(msg: str) -> None:
    """A line for the user on stderr, written as Forgiving writes it (also where no CLI made stderr so)."""
    if sys.stderr is not None:  # None: started with its stderr closed
        stream = sys.stderr if isinstance(sys.stderr, Forgiving) else Forgiving(sys.stderr)
        print(msg, file=stream, flush=True)


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


def with_article(word: str) -> str:
    """`word` after its indefinite article as it is spoken: a vae, an iwae, a gan."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"
