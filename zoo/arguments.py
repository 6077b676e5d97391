"""The public functions' keywords as Python spells them: a keyword a function does not take (the CLI's
spelling, `zoo.compare(runs, sort=...)` for `metric=`, or a metric's option given as a keyword,
`zoo.evaluate(run, iwae_k=100)`) ends in one ConfigError naming the keyword meant, not a bare TypeError."""

from __future__ import annotations

import difflib
import functools
import inspect
import os
from pathlib import Path

from zoo.errors import ConfigError, out_of_memory

# The commands' options whose Python keyword is another name.
PYTHON_NAMES = {"sort": "metric", "from": "start", "from_": "start", "to": "end", "class": "class_label",
                "class_": "class_label", "noise_scale": "spread", "fid_n": "n", "fid_seeds": "seeds", "iwae_k": "k"}


# zoo eval's options that are other functions' in Python
ELSEWHERE = {"fid": "sample_quality", "features": "sample_quality", "fid_n": "sample_quality",
             "inception": "sample_quality", "sampler": "sample_quality", "noise_sweep": "noise_sweep",
             "fid_seeds": "sample_quality", "baseline": "noise_sweep", "noise": "noise_sweep"}

# The commands' options that the functions taking config keys as keywords (zoo.run_search, zoo.cross_validate)
# would otherwise call unknown config keys: what each is in Python.
COMMAND_OPTIONS = {
    "run_search": {"sampler": "Write strategy= (--sampler was the command's name for --strategy before zoo 0.2).",
                   "metric": "The objective is the space file's: [objective] metric = \"...\".",
                   "reduce": "The objective is the space file's: [objective] reduce = \"best\" (mean, last)."},
    "cross_validate": {"folds": "Write folds_k= (the command's --folds is folds_k= in Python)."},
}
EVERY_COMMAND = {"json": "zoo.{name} returns its result as a dict: --json is how the command prints it.",
                 "set": "Config keys go as keywords (epochs=5) or in overrides={{...}}: the command's --set KEY=VALUE."}


def refuse_command_options(name: str, keys) -> None:
    """A command's option among the config keys given to zoo.`name` as keywords: one ConfigError saying what
    it is in Python (it read "unknown key 'folds'", pointing at `zoo info`'s keys)."""
    for key in keys:
        said = COMMAND_OPTIONS.get(name, {}).get(key) or EVERY_COMMAND.get(key, "").format(name=name)
        if said:
            raise ConfigError(f"zoo.{name} has no option {key}=", said)


# The public functions' arguments that name files and folders: a leading ~ is the user's home there, as in
# a shell (without it, out="~/runs/x" made a folder named "~" in the working directory).
PATHS = {"source", "sources", "out", "resume", "run", "run_dir", "per_image", "config", "space", "folder", "input"}


def home(value):
    """`value` with a leading ~ (or ~user) expanded, where it is a path; anything else as it is."""
    if isinstance(value, str) and value.startswith("~"):
        return os.path.expanduser(value)
    if isinstance(value, Path) and str(value).startswith("~"):
        return Path(os.path.expanduser(value))
    return value


def clear_arguments(function, module: str):
    """`function`, its arguments checked against its signature first: a call that does not fit it is a
    ConfigError saying which keyword to write (the function itself is called as it was), and an allocation
    that fails in it a zoo.OutOfMemory (as the command line says it). `module`: where
    the checked function is found by name (zoo.api), so that it pickles (a process pool's task)."""
    signature = inspect.signature(function)
    takes = [name for name, p in signature.parameters.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    @functools.wraps(function)
    def call(*args, **kwargs):
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as e:
            unknown = [k for k in kwargs if k not in takes]
            shown = function.__qualname__ if "." in function.__qualname__ else f"zoo.{function.__name__}"  # Run.nll
            raise ConfigError(f"{shown}: {e}".replace(f"{function.__name__}() ", "", 1),
                              _hint(function.__name__, takes, unknown)) from None
        for name in PATHS & set(bound.arguments):
            value = bound.arguments[name]
            bound.arguments[name] = [home(v) for v in value] if isinstance(value, list) else home(value)
        try:
            return function(*bound.args, **bound.kwargs)
        except (MemoryError, RuntimeError) as e:  # an allocation that failed (building a model too): said as the
            oom = out_of_memory(e)                 # CLI says it, a zoo.OutOfMemory, not torch's allocator text
            if oom is None:
                raise
            raise oom from e
    call.__module__ = module
    return call


def _hint(name: str, takes: list[str], unknown: list[str]) -> str:
    for key in unknown:
        meant = PYTHON_NAMES.get(key)
        if meant in takes:
            return f"Write {meant}= (the command's --{key.rstrip('_').replace('_', '-')} is {meant}= in Python)."
        close = difflib.get_close_matches(key, takes, 1)
        if close:
            return f"Did you mean {close[0]}=?"
        if name == "evaluate" and key in ELSEWHERE:
            meant = PYTHON_NAMES.get(key, key)
            return (f"zoo eval --{key.replace('_', '-')} is zoo.{ELSEWHERE[key]}(..., {meant}=...) in Python."
                    if key != "fid" else f"zoo eval --fid is zoo.{ELSEWHERE[key]}(...) in Python.")
        if name == "evaluate" and key == "json":
            return "zoo.evaluate returns the figures as a dict: --json is how the command prints them."
        if "options" in takes:  # zoo.evaluate: a metric's option given as a keyword of its own
            return (f"A metric's option goes in options=: zoo.{name}(..., options={{{key!r}: ...}}) "
                    f"(zoo eval --{key.replace('_', '-')} on the command line).")
    return f"zoo.{name} takes: {', '.join(takes)} (help(zoo.{name}))."
