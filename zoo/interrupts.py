"""Ctrl-C held back across the few steps that must not be cut in two: renaming a study's outputs into
place, every write to Optuna's journal file, and MLflow's first set-up of a SQLite store. A Ctrl-C inside
Optuna's journal lock (acquiring it, writing the line, renaming the lock away) used to leave a storage error
instead of an interrupted search, or a lock renamed from under another writer; one inside MLflow's schema
migration, a store MLflow can no longer open. Held back, it lands just after, as an interrupt."""

from __future__ import annotations

import contextlib
import functools
import signal
import threading
from typing import Callable, Iterator, TypeVar

T = TypeVar("T")


@contextlib.contextmanager
def holding_ctrl_c() -> Iterator[None]:
    """Ctrl-C (SIGINT) is held back inside, and handed on leaving to the handler that was in place (Python's
    default raises KeyboardInterrupt; an ignored SIGINT stays ignored). Only the main thread receives SIGINT
    in Python, so in any other thread this holds nothing back and needs not to."""
    previous = signal.getsignal(signal.SIGINT) if threading.current_thread() is threading.main_thread() else None
    if previous is None or previous is signal.SIG_IGN:  # another thread, a handler not set from Python, or ignored
        yield
        return
    caught: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if not caught:
        return
    if callable(previous) and previous is not signal.default_int_handler:  # the caller's own handler has it
        previous(signal.SIGINT, None)
    else:  # Python's default (or SIG_DFL, which would end the process): as Ctrl-C
        raise KeyboardInterrupt


def held_ctrl_c(write: Callable[..., T]) -> Callable[..., T]:
    """`write` with Ctrl-C held back while it runs."""
    @functools.wraps(write)
    def held(*args, **kwargs) -> T:
        with holding_ctrl_c():
            return write(*args, **kwargs)
    return held
