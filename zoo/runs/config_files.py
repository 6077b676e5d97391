"""Config files: TOML read into flat keys (their [model]/[train]/[data] tables flattened), a run's config.json
read as the config it trained with, a config given as a dict or a path alike, and configs written back as TOML."""

from __future__ import annotations

import json
import re
import sys
from os import PathLike
from pathlib import Path
from typing import Any

import zoo
from zoo.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


MAX_CONFIG_BYTES = 10_000_000  # far beyond any config: a larger --config is some other file


def read_toml(path: str | Path) -> dict[str, Any]:
    """A TOML config file's keys, its sections flattened. A file that is missing, not a file, unreadable,
    too large, not UTF-8 or not TOML is a ConfigError that says which."""
    p = Path(path)
    try:
        if not p.is_file():
            hint = "--config takes a TOML file of config keys, or a run's config.json"
            if p.is_dir() and (p / "config.json").is_file():  # a run folder: its config.json is meant
                hint += f": {p / 'config.json'}"
            raise ConfigError(f"config file {p} is not a file" if p.exists() else f"config file not found: {p}",
                              hint + ".")
        if p.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{p} is too large to be a config file ({p.stat().st_size:,} bytes)",
                              "--config takes a TOML file of config keys.")
        text = p.read_bytes().decode("utf-8-sig")  # UTF-8, with or without the mark some editors begin with
        if p.suffix.lower() == ".json":
            return _record_values(_read_record(text, p))
        data = tomllib.loads(text)
    except OSError as e:  # unreadable: permissions, a name too long, a failing disk
        raise ConfigError(f"cannot read config file {p}: {(e.strerror or str(e)).lower()}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p} is not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start})",
                          "TOML files are UTF-8: save it in that encoding.") from None
    except tomllib.TOMLDecodeError as e:
        named_and_table = all(re.search(rf"^\s*{line}", text, re.M) for line in (r"model\s*=", r"\[\s*model\s*\]"))
        raise ConfigError(f"{p} is not valid TOML: {e}", 'A file that names its model and has a [model] table names '
                          'it inside the table: [model] then model = "NAME".' if named_and_table else None) from None
    except RecursionError:
        raise ConfigError(f"{p} is not valid TOML: its values are nested too deeply") from None
    return flatten_sections(data)


def _read_record(text: str, p: Path) -> dict[str, Any]:
    """A run's config.json, parsed; a file that is no JSON or no run's record refused."""
    try:
        run = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise ConfigError(f"{p} is not valid JSON: {e}") from None
    if not is_run_record(run):
        raise ConfigError(f"{p} is not a run's config.json (model, config and train)",
                          "--config takes a TOML file of config keys, or the config.json of a run.")
    return run


def is_run_record(config: Any) -> bool:
    """Whether `config` is a run's config.json as a dict (a model's name, its config and train tables)."""
    return isinstance(config, dict) and isinstance(config.get("model"), str) \
        and all(isinstance(config.get(k), dict) for k in ("config", "train"))


def _record_values(run: dict[str, Any]) -> dict[str, Any]:
    """A run's config.json as a config: its model and the config and training keys it trained with (the record's
    other fields, such as its devices, left out), so `--config RUN/config.json` trains or cross-validates it again."""
    return {"model": run["model"], **flatten_sections({"model": run["config"], "train": run["train"]})}


def run_record(config: str | PathLike | dict | None) -> dict[str, Any] | None:
    """The run's config.json that `config` is (a dict of one, or a .json file), else None: what a run trained
    from it records of it (its preset), and which zoo wrote the keys this one does not know."""
    if isinstance(config, dict):
        return config if is_run_record(config) else None
    if isinstance(config, (str, PathLike)) and Path(config).suffix.lower() == ".json":
        config_values(config)  # one that cannot be read, or is no run's, refused as --config refuses it
        return _read_record(Path(config).read_bytes().decode("utf-8-sig"), Path(config))
    return None


def recorded_preset(config: str | PathLike | dict | None) -> str | None:
    """The preset a run's config.json (as `config`) records its run started from, for a run trained from it."""
    preset = (run_record(config) or {}).get("preset")
    return preset if isinstance(preset, str) and preset else None


def refuse_newer_keys(config: str | PathLike | dict, values: dict[str, Any], known: set[str]) -> None:
    """A run's config.json with keys this zoo does not know was written by another zoo (a newer one, or one with
    another plugin): said as such, as --resume says it, not as a key the user mistyped."""
    record = run_record(config)
    foreign = sorted(set(values) - known - {"model"})
    if record is None or not foreign:
        return
    where = config if not isinstance(config, dict) else "config="
    raise ConfigError(f"{where} holds keys this zoo ({zoo.__version__}) does not know: {', '.join(foreign)} "
                      f"(written by zoo {record.get('zoo_version', '?')})",
                      "Train it with the zoo that wrote it, or leave those keys out (of a copy of the file).")


def config_values(config: str | PathLike | dict) -> dict[str, Any]:
    """The flat keys of a config: a dict (its tables flattened; a run's config.json as a dict read as the file
    is) or the path of a TOML file or of a run's config.json."""
    if isinstance(config, dict):
        return _record_values(config) if is_run_record(config) else flatten_sections(config)
    if not isinstance(config, (str, PathLike)):
        raise ConfigError(f"config= takes a text or a path or a dict, not {config!r:.60}",
                          "A dict of config keys or the path of a TOML file: config={'latent_dim': 16} or "
                          "config='best.toml'.")
    return read_toml(config)


def flatten_sections(data: dict[str, Any]) -> dict[str, Any]:
    """Accept flat keys, or [model]/[train]/[data] tables, in a config file. A key given twice with other
    values (flat and in a table, or in two tables) is refused: which one was meant is not for zoo to guess."""
    flat: dict[str, Any] = {}
    where: dict[str, str] = {}
    for key, value in data.items():
        table = key in ("model", "train", "data") and isinstance(value, dict)
        for k, v in (value.items() if table else [(key, value)]):
            if k in flat and flat[k] != v:
                raise ConfigError(f"config key {k} is given twice: {flat[k]!r:.40} {where[k]} and {v!r:.40} "
                                  f"{f'in [{key}]' if table else 'at the top'}", "Keep one of them.")
            flat[k], where[k] = v, f"in [{key}]" if table else "at the top"
    return flat


def to_toml(values: dict[str, Any]) -> str:
    """Write a flat dict of scalars and lists as TOML (enough for configs)."""
    lines = []
    for key, value in values.items():
        if value is None:
            continue
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    s = str(v).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{s}"'
