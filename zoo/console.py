"""Where the library's progress notes go: long operations take a `log(msg)` callable, by default one of
these (the CLI passes its own; tests pass `quiet`)."""

from __future__ import annotations

import sys


def to_stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def to_stdout(msg: str) -> None:
    print(msg, flush=True)


def quiet(_msg: str) -> None:
    """Say nothing."""
