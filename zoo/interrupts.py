"""Ctrl-C (and SIGTERM, SIGHUP) held back across the few steps that must not be cut in two: an epoch's
files (best weights, metrics line, checkpoint), renaming a study's outputs into place, every write to
Optuna's journal file, and MLflow's first set-up of a SQLite store. A Ctrl-C inside Optuna's journal lock
(acquiring it, writing the line, renaming the lock away) used to leave a storage error instead of an
interrupted search, or a lock renamed from under another writer; one inside MLflow's schema migration, a
store MLflow can no longer open; a SIGTERM between an epoch's metrics line and its checkpoint, a
training log one epoch ahead of its weights. Held back, it lands just after, as an interrupt."""

from __future__ import annotations

import contextlib
import functools
import signal
import threading
from typing import Callable, Iterator, TypeVar

T = TypeVar("T")


# Signals that stop work: Ctrl-C; and SIGTERM (`kill`, `timeout`, a scheduler) and SIGHUP (a closed terminal),
# which zoo's commands take as Ctrl-C and which end a Python program that set no handler.
STOPPING = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def holding_interrupts() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP are held back inside, and the first one caught is handed on leaving (also when
    the body raises: a stop the user asked for is not lost to an error) to the handler that was in place: a
    handler set from Python is called (Python's default SIGINT one raises KeyboardInterrupt), a default that
    ends the process ends it then, once the files are whole; an ignored signal stays ignored. Only the main
    thread receives signals in Python, so in any other thread this holds nothing back and needs not to."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in STOPPING}
    held = [sig for sig, handler in previous.items()  # None: a handler not set from Python, left alone
            if handler is not None and handler is not signal.SIG_IGN]
    caught: list[int] = []
    for sig in held:
        signal.signal(sig, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        _restore(previous, held)
        if caught:
            _hand_on(caught[0], previous[caught[0]])


def _restore(previous: dict, held: list[int]) -> None:
    """Put the handlers back with the signals blocked meanwhile: one that lands then goes, once unblocked, to the
    handler put back, never to the hold's (which would swallow it for good were the loop cut short)."""
    mask = getattr(signal, "pthread_sigmask", None)
    blocked = mask(signal.SIG_BLOCK, held) if mask else None
    try:
        for sig in held:
            signal.signal(sig, previous[sig])
    finally:
        if mask:
            mask(signal.SIG_SETMASK, blocked)


def _hand_on(sig: int, handler) -> None:
    if callable(handler) and handler is not signal.default_int_handler:  # the caller's own handler
        handler(sig, None)
    elif sig == signal.SIGINT:  # Python's default (or SIG_DFL, which would end the process): as Ctrl-C
        raise KeyboardInterrupt
    else:  # SIG_DFL: the process ends, as the signal asked, now that the files are whole
        signal.raise_signal(sig)


def held_interrupts(write: Callable[..., T]) -> Callable[..., T]:
    """`write` with Ctrl-C, SIGTERM and SIGHUP held back while it runs."""
    @functools.wraps(write)
    def held(*args, **kwargs) -> T:
        with holding_interrupts():
            return write(*args, **kwargs)
    return held
