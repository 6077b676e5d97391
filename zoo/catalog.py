"""Catalogue files: presets (named configurations, [presets.NAME]) and pretrained weights ([weights.NAME]).

zoo reads its own registry.toml, the files a plugin ships (the `zoo_catalogs` hook) and the files a user names in
$ZOO_CATALOG. Each file is checked whole when it is read, and the files together when they are merged, so that a
mistake in one (a TOML error, a preset's values outside its `config` table, a name catalogued twice, two defaults
for one model) is one message naming the file and the entry, not a traceback or a value silently ignored."""

from __future__ import annotations

import datetime
import math
import os
import re
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BUNDLED = "zoo"  # the owner of zoo's own registry.toml
USER = "ZOO_CATALOG"  # the owner of a file the user names in $ZOO_CATALOG

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # a name goes on command lines, as `--preset NAME` takes it
SHA256 = re.compile(r"[0-9a-f]{64}")

# What each kind of entry may hold: its key, the type the key's value must have, and whether it is required.
PRESET_KEYS = {"model": (str, True), "config": (dict, True), "description": (str, False), "source": (str, False)}
WEIGHTS_KEYS = {"model": (str, True), "dataset": (str, True), "description": (str, False), "path": (str, False),
                "hub": (str, False), "sha256": (str, False), "command": (str, False), "metrics": (dict, False),
                "default": (bool, False), "sampler": (str, False)}
KINDS = {"presets": PRESET_KEYS, "weights": WEIGHTS_KEYS}


@dataclass(frozen=True)
class CatalogFile:
    """One catalogue file as read and checked: where it is, whose it is (BUNDLED, USER or "package NAME" of the
    plugin that ships it) and its entries of each kind."""

    path: Path
    owner: str
    presets: dict[str, dict[str, Any]]
    weights: dict[str, dict[str, Any]]

    @property
    def bundled(self) -> bool:
        return self.owner == BUNDLED

    def said(self) -> str:
        """The file as a message names it: whose and where."""
        return {BUNDLED: f"zoo's registry.toml ({self.path})", USER: f"{self.path} (in $ZOO_CATALOG)"}.get(
            self.owner, f"{self.path} (of {self.owner})")

    def fix(self) -> str:
        """What to do about a mistake in this file."""
        if self.bundled:
            return "Reinstall zoo."
        if self.owner == USER:
            return f"Fix {self.path}, or take it out of $ZOO_CATALOG."
        return f"Reinstall or fix {self.owner.removeprefix('package ')}."


@dataclass(frozen=True)
class Catalog:
    """The merged entries of every catalogue file, each name once, with the file it came from."""

    presets: dict[str, dict[str, Any]]
    weights: dict[str, dict[str, Any]]
    files: dict[tuple[str, str], CatalogFile]  # (kind, name) -> the file that catalogues it

    def file_of(self, kind: str, name: str) -> CatalogFile | None:
        return self.files.get((kind, name))


_read: dict[tuple[Path, str], tuple[tuple[int, int], CatalogFile]] = {}  # read once while the file is unchanged


def read(path: Path, owner: str) -> CatalogFile:
    """The catalogue file at `path`, checked (see `check_entry`); a ConfigError names what is wrong in it."""
    path = Path(path)
    blank = CatalogFile(path, owner, {}, {})
    try:
        stat = path.stat()
    except (OSError, ValueError) as e:  # ValueError: a path with a NUL byte in it
        raise ConfigError(f"the catalogue {blank.said()} cannot be read: {getattr(e, 'strerror', None) or e}",
                          blank.fix()) from None
    key, stamp = (path, owner), (stat.st_mtime_ns, stat.st_size)
    if key in _read and _read[key][0] == stamp:
        return _read[key][1]
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, ValueError) as e:  # UnicodeDecodeError and TOMLDecodeError are ValueErrors
        raise ConfigError(f"the catalogue {blank.said()} cannot be read: {e}", blank.fix()) from None
    unknown = sorted(set(data) - set(KINDS))
    if unknown:
        raise ConfigError(f"the catalogue {blank.said()} has {unknown[0]!r} at its top level",
                          "A catalogue holds only [presets.NAME] and [weights.NAME] tables. " + blank.fix())
    entries = {}
    for kind in KINDS:
        table = data.get(kind, {})
        if not isinstance(table, dict):
            raise ConfigError(f"the catalogue {blank.said()} has {kind} = {table!r:.40}, not [{kind}.NAME] tables",
                              blank.fix())
        for name, entry in table.items():
            problem = check_entry(kind, name, entry)
            if problem:
                raise ConfigError(f"the catalogue {blank.said()}: [{kind}.{name}] {problem}", blank.fix())
        entries[kind] = table
    for entry in entries["weights"].values():
        entry.update(_hub_from_file(entry, path))
    checked = CatalogFile(path, owner, entries["presets"], entries["weights"])
    _read[key] = (stamp, checked)
    return checked


def _hub_from_file(entry: dict[str, Any], path: Path) -> dict[str, str]:
    """A `hub = "file://RELATIVE"` as `path` is read: from the catalogue file's folder, not from wherever zoo
    runs (which folder loaded under the entry's name changed with the working directory)."""
    hub = entry.get("hub", "")
    rest = urllib.parse.unquote(hub[len("file://"):]) if hub.startswith("file://") else ""
    if not rest or rest.startswith(("/", "~", "localhost/")):
        return {}
    return {"hub": Path(os.path.abspath(path.parent / rest)).as_uri()}  # ../hub/x: normalised, as parse() does


def check_entry(kind: str, name: str, entry: Any) -> str | None:
    """What is wrong with one entry (None: nothing): a name that is not one word, an entry that is not a table,
    a key the kind does not have (a preset's values belong in its `config` table), a value of the wrong type, a
    required key missing; for weights, neither `path` nor `hub`, a sha256 that is not 64 hex digits, a metric
    that is not a finite number."""
    if not NAME.fullmatch(name):
        return "is not named by one word of letters, digits, '.', '_' and '-'"
    if not isinstance(entry, dict):
        return f"is {entry!r:.40}, not a table"
    keys = KINDS[kind]
    for key, value in entry.items():
        if key not in keys:
            where = f"; a preset's values go in its table [presets.{name}.config]" if kind == "presets" else ""
            return f"has the key {key!r}, which a {kind[:-1]} entry does not take (it takes {', '.join(keys)}){where}"
        wanted = keys[key][0]
        if not isinstance(value, wanted) or (wanted is not bool and isinstance(value, bool)):
            return f"has {key} = {value!r:.40}, not a {_TYPE_WORDS[wanted]}"
    missing = [key for key, (_, required) in keys.items() if required and key not in entry]
    if missing:
        return f"has no {missing[0]} (a {kind[:-1]} entry needs {' and '.join(k for k, (_, r) in keys.items() if r)})"
    if kind == "presets":
        for key, value in entry["config"].items():  # TOML has dates and times, which no config key takes
            items = value if isinstance(value, list) else [value]
            if any(isinstance(v, (datetime.date, datetime.time)) for v in items):
                return (f"has {key} = {value!s:.40} in its config, a TOML date or time: a preset's values are "
                        "numbers, strings, true or false, or lists of them")
        return None
    if "path" not in entry and "hub" not in entry:
        return "has neither `path` (a folder with config.json and model.safetensors) nor `hub` (hf://... or file://...)"
    if "hub" in entry and not entry["hub"].startswith(("hf://", "file://")):
        return f"has hub = {entry['hub']!r:.70}, not a hub location (hf://ORG/NAME[@REVISION] or file:///PATH)"
    if "sha256" in entry and not SHA256.fullmatch(entry["sha256"]):
        return f"has sha256 = {entry['sha256']!r:.70}, not 64 lowercase hex digits (of its model.safetensors)"
    for metric, value in entry.get("metrics", {}).items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            return f"has the metric {metric} = {value!r:.40}, not a finite number"
    return None


_TYPE_WORDS = {str: "string", dict: "table", bool: "true or false"}


WHAT = {"presets": "preset", "weights": "weights"}  # an entry of each kind, as a message names it


def merge(files: list[CatalogFile], models: set[str], ignored: list[str] | None = None) -> Catalog:
    """The entries of `files` together. A name catalogued in two files, a name of an installed model given to a
    catalogue entry of anyone's but zoo's, and two weights marked the default of one model are each refused.
    With `ignored` (a list), an entry of a user's file ($ZOO_CATALOG) whose name an earlier file catalogues is
    left out and said there instead: a plugin installed later that catalogues the same name breaks no command
    but the ones using that name (they get the earlier file's entry, and the caller says so)."""
    found: dict[str, dict] = {"presets": {}, "weights": {}}
    where: dict[tuple[str, str], CatalogFile] = {}
    for file in files:
        for kind in KINDS:
            for name, entry in getattr(file, kind).items():
                first = where.get((kind, name))
                # two files of the user's clash: their mistake, said as one (neither is zoo's or a plugin's)
                if first is not None and ignored is not None and file.owner == USER and first.owner != USER:
                    ignored.append(f"{file.said()} catalogues the {WHAT[kind]} '{name}', which {first.said()} "
                                   "already catalogues: yours is ignored; give it another name (a catalogue of "
                                   "yours cannot replace an entry of zoo's or of a plugin's)")
                    continue
                if first is not None:
                    raise ConfigError(f"the {WHAT[kind]} '{name}' is catalogued twice: in {first.said()} and in "
                                      f"{file.said()}", f"Give one of them another name. {file.fix()}")
                if name in models and not file.bundled:
                    raise ConfigError(f"the catalogue {file.said()} names a {WHAT[kind]} '{name}', the name of an "
                                      "installed model", f"Give it another name. {file.fix()}")
                found[kind][name], where[(kind, name)] = entry, file
    defaults: dict[str, str] = {}
    for name, entry in found["weights"].items():
        if entry.get("default"):
            other = defaults.setdefault(entry["model"], name)
            if other != name:
                later = where[("weights", name)]
                raise ConfigError(f"two weights are the default of model '{entry['model']}': '{other}' (in "
                                  f"{where[('weights', other)].said()}) and '{name}' (in {later.said()})",
                                  f"Keep `default = true` on one of them only. {later.fix()}")
    return Catalog(found["presets"], found["weights"], where)
