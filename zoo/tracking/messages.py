"""How a tracking tool's failures and addresses are said: in one short line, and never with credentials."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from zoo.errors import Interrupted

NOTE_CHARS = 300  # at most this much of a failure's message in the note that says it
USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@")  # scheme://USER:PASSWORD@ in a URI


# Words in a query parameter's name that say it holds a secret (?password=..., &token=..., a cloud
# store's signature or key), and such a parameter's value in a URI, to redact.
SECRET_NAME = re.compile(r"pass|pwd|token|secret|key|sig|credential|auth", re.IGNORECASE)
SECRET_PARAM = re.compile(rf"([?&][^=&\s]*(?:{SECRET_NAME.pattern})[^=&\s]*=)[^&\s]*", re.IGNORECASE)


def redact(text: str) -> str:
    """`text` with the user name and password of every URI in it (scheme://USER:PASSWORD@host), and the
    values of query parameters named like secrets (?password=...), replaced by ***: a tracking URI may
    carry credentials, and messages and run files must never show them."""
    return SECRET_PARAM.sub(r"\1***", USERINFO.sub(r"\1***@", text))


def failure(e: BaseException) -> str:
    """An exception in a line: its type and first line, and the first line of the error it came from, where that
    says more ("attempt to write a readonly database" under MLflow's "raised as a result of Query-invoked
    autoflush")."""
    def line(x: BaseException) -> str:
        return shortened(redact((str(x).strip().splitlines() or [type(x).__name__])[0]))

    root, seen = e, {id(e)}
    while True:  # down the chain the traceback shows (a context raised `from None` is not), never round a cycle
        below = root.__cause__ or (None if root.__suppress_context__ else root.__context__)
        if below is None or id(below) in seen:
            break
        root = below
        seen.add(id(root))
    said = f"{type(e).__name__}: {line(e)}"
    return said if root is e or line(root) in said else f"{said}; from {type(root).__name__}: {line(root)}"


def shortened(text: str, limit: int = NOTE_CHARS) -> str:
    """`text` cut to about `limit` characters at a word's end, with an ellipsis (never mid-word)."""
    if len(text) <= limit:
        return text
    cut = text[:limit + 1].rsplit(" ", 1)[0] if " " in text[:limit + 1] else text[:limit]
    return cut.rstrip(" ,;:") + " ..."


def filling_in(run_dir: Path | None, names: list[str]) -> str:
    """What a training's logger failure leaves, and how to fill it in: a resume logs every epoch a logger's
    destination lacks (also of a finished run)."""
    kept = "metrics.jsonl in the run folder holds every epoch"
    if not run_dir or not names:
        return kept
    return (f"{kept}: `zoo train --resume {shlex.quote(str(run_dir))} --log {','.join(names)}` logs them there "
            "once that works (also after the run has finished).")


def interrupted_at_start(run_dir: Path | None, saved: int) -> KeyboardInterrupt:
    """A Ctrl-C while the loggers open (before the first epoch of this session): the run folder is there, so
    the message says what is saved and how to go on, as a stop during an epoch does."""
    if not run_dir:  # a fold or a search trial: its caller says what is kept
        return KeyboardInterrupt()
    what = f"epochs up to {saved} are saved" if saved else "no epoch was finished (a resume starts at epoch 1)"
    return Interrupted(f"interrupted while the loggers opened, before epoch {saved + 1}; {what}. Resume with: "
                       f"zoo train --resume {shlex.quote(str(run_dir))} (from Python: "
                       f"zoo.train(resume={str(run_dir)!r}))")
