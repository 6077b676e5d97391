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
    """Ctrl-C (SIGINT) is held back inside, and raised as KeyboardInterrupt on leaving. Only the main
    thread receives SIGINT in Python, so in any other thread this holds nothing back and needs not to."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def held_ctrl_c(write: Callable[..., T]) -> Callable[..., T]:
    """`write` with Ctrl-C held back while it runs."""
    @functools.wraps(write)
    def held(*args, **kwargs) -> T:
        with holding_ctrl_c():
            return write(*args, **kwargs)
    return held
