"""The environment variables zoo reads as switches and numbers, each read one way wherever it is read.

ZOO_OFFLINE and HF_HUB_OFFLINE (on: 1, true, yes, on; off: unset, empty, 0, false, no, off) turn downloads of
data sets and hub locations off alike; HF_HUB_DOWNLOAD_TIMEOUT and HF_HUB_ETAG_TIMEOUT are whole seconds, as
huggingface-hub reads them on import (anything else failed there with a traceback). ZOO_CATALOG names the
user's own catalogue files of presets and pretrained weights."""

from __future__ import annotations

import os
import re
from pathlib import Path

from zoo.errors import ConfigError

ON = ("1", "true", "yes", "on")
OFF = ("", "0", "false", "no", "off")
HF_TIMEOUTS = ("HF_HUB_DOWNLOAD_TIMEOUT", "HF_HUB_ETAG_TIMEOUT")


def flag(name: str) -> bool:
    """Whether the switch `name` is on; a value that is neither on nor off is a ConfigError (ZOO_OFFLINE=false
    turned zoo offline)."""
    value = os.environ.get(name, "").strip().lower()
    if value in ON:
        return True
    if value in OFF:
        return False
    raise ConfigError(f"{name}={os.environ[name]!r} is neither on nor off",
                      f"Set {name}=1 (on) or {name}=0 (off), or unset it.")


def offline() -> bool:
    """Whether zoo may download nothing: data sets and hub locations alike."""
    return flag("ZOO_OFFLINE") or flag("HF_HUB_OFFLINE")


def check_hf_timeouts() -> None:
    """The hub's time-outs as huggingface-hub will read them: whole seconds."""
    for name in HF_TIMEOUTS:  # set but empty (a script's unset $VAR) too: huggingface-hub's int('') failed
        if name in os.environ and not re.fullmatch(r"[0-9]+", os.environ[name].strip()):  # ASCII: int('²') fails
            raise ConfigError(f"{name}={os.environ[name]!r} is not a whole number of seconds",
                              "Set it to one (the default is 10), or unset it.")


_catalogs: list[tuple[str, list[Path]]] = []  # the $ZOO_CATALOG value last read, and its files as found then


def catalog_paths() -> list[Path]:
    """The catalogue files the user names in $ZOO_CATALOG (separated by os.pathsep, as in PATH; `~` expanded),
    read after zoo's own registry.toml and the plugins' (zoo.catalog). A relative one is of the working directory
    where the value was first read after it was set: an os.chdir later does not move it, and the same text set
    again after another value is read anew (in the folder it is then read in)."""
    value = os.environ.get("ZOO_CATALOG", "")
    if not _catalogs or _catalogs[-1][0] != value:
        parts = [part.strip() for part in value.split(os.pathsep)]
        _catalogs[:] = [(value, [Path(part).expanduser().absolute() for part in parts if part])]
    return list(_catalogs[-1][1])


def cache_home() -> Path:
    """$XDG_CACHE_HOME, else ~/.cache. A relative value is ignored, as the XDG specification says: taken from
    each command's working directory, one cache was two, and a copy pulled from one folder was not known as
    zoo's (so not protected) from another."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    return Path(base) if os.path.isabs(base) else Path(os.path.expanduser("~")) / ".cache"
