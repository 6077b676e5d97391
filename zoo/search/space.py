"""Search-space files for `zoo search`: which config keys to search, how, and the search's defaults.

A space file is TOML:

    [search]                 # defaults for the command line (each option overrides its key)
    preset = "convae-lab"    # start every trial from this preset
    strategy = "tpe"         # tpe | random | grid
    pruner = "auto"          # auto | median | hyperband | none (auto: see zoo.search.study.auto_pruning)
    trials = 40
    cv = 0                   # k > 1: k-fold cross-validation of every trial
    seed = 0                 # the seed of the trials' draws

    [objective]
    metric = "loss"          # the model's validation metric
    reduce = "best"          # best | mean | last over the epochs
    time_penalty = 0.0       # + λ × training minutes (per fold)
    latent_penalty = 0.0     # + μ × latent size
    latent_key = "latent_dim"   # the model's config key the latent penalty reads (needed with it)

    [fixed]                  # config keys every trial shares
    epochs = 10

    [params]                 # the searched keys, in order (a key may use those above it)
    optimizer = { choices = ["adam", "sgd"] }                   # categorical
    lr = { low = 1e-5, high = 1e-2, log = true }                # float (log scale)
    latent_dim = { low = 2, high = 6 }                          # int
    n_conv = { low = 2, high = 4, helper = true }               # a helper: not a config key
    channels = { length = "n_conv", element = { low = 4, high = "4 * 2 ** (i + 1)" } }
    padding = { length = "n_conv", element = { low = 0, high = "kernel[i] // 2" } }
    hidden = { elements = [ { choices = [32, 64] } ] }          # one spec per element
    decoder_channels = { value = "[2 * n, n]" }                 # computed from other keys
    prune_encoder_linear = { low = 0.0, high = 0.5, when = "prune_every > 0" }   # conditional

Types are inferred (choices: categorical; integer bounds: int; float bounds: float) or given with
`type`; `step` and `log` work as in Optuna. Bounds, lengths, `value` and `when` may be expressions
over the keys sampled before them (and `i`, an element's index): numbers, + - * / // % **, comparisons,
and/or/not, `x if c else y`, [lists], x[i], and min, max, abs, int, float, round, len.

The language is bounded, so that every expression evaluates at once or fails with a message naming
its key: at most MAX_TEXT characters nested MAX_DEPTH deep, integers within ±2**64, finite floats,
lists and strings of at most MAX_ITEMS items (checked before `[0] * n` or `a ** b` is computed).
Every number in a space (bounds, choices, values, penalties) must be finite; a searched list has at
most MAX_LENGTH elements and a grid at most GRID_POINTS_MAX points. An expression without names is
evaluated when the file is read, so its mistakes show before any trial runs.

Before a search, `Space.check_values` checks every searched key against the config key it sets: its
choices, the kind of its range and its bounds (those computed from drawn keys for every draw of the keys
they read, where those are few and fixed) must fit the key's type and range.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from zoo.errors import ConfigError
from zoo.search.expressions import known, literal, resolve
from zoo.search.param_checks import ENUM_MAX
from zoo.search.params import Param

STRATEGIES = ("tpe", "random", "grid")  # how trials are drawn (Optuna samplers)
PRUNERS = ("auto", "median", "hyperband", "none")
TABLES = ("search", "objective", "fixed", "params")
SEARCH_KEYS = {"preset": str, "strategy": str, "pruner": str, "trials": int, "cv": int, "seed": int,
               "description": str, "source": str}
OBJECTIVE_KEYS = {"metric": str, "reduce": str, "time_penalty": float, "latent_penalty": float,
                  "latent_key": str}
GRID_POINTS_MAX = 100_000  # points of a whole grid (Optuna's grid sampler lists them all)


def _draw_values(p: "Param") -> list | None:
    """The values a draw of `p` can take, when few and fixed: its choices, a range with fixed bounds that
    a grid could enumerate (integers, or floats with a step), its constant value; else None."""
    if p.kind == "categorical":
        return list(p.choices)
    if p.kind == "value" and known(p.value):
        return [resolve(p.value, {})]
    if p.kind in ("int", "float") and known(p.low, p.high, p.step) and (p.kind == "int" or p.step is not None):
        try:
            return p.grid_values()
        except ConfigError:  # too many values: checked draw by draw
            return None
    return None


# ----------------------------------------------------------------------------------------- spaces

class _GridPoint:
    """Stands in for an Optuna trial: answers one grid point's values, noting those the draw asks for."""

    def __init__(self, point: dict[str, Any]):
        self.point, self.asked = point, {}

    def suggest_categorical(self, name: str, choices: list) -> Any:
        self.asked[name] = self.point[name]
        return self.point[name]


@dataclass
class Space:
    params: list[Param]
    fixed: dict[str, Any]
    search: dict[str, Any]
    objective: dict[str, Any]
    source: str = ""
    text: str = ""

    def sample(self, trial, grid: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
        """(config values, helper values) for one trial; ConfigError if a range or expression fails."""
        env: dict[str, Any] = {}
        helpers: dict[str, Any] = {}
        for p in self.params:
            if p.when is not None and not p.when(env):
                continue
            v = p.sample(trial, env, grid)
            env[p.name] = v
            if p.helper:
                helpers[p.name] = v
        return {k: v for k, v in env.items() if k not in helpers}, helpers

    def grid(self) -> dict[str, list]:
        """{optuna name: values}; at most GRID_POINTS_MAX points (Optuna's grid sampler lists them all)."""
        space: dict[str, list] = {}
        for p in self.params:
            space.update(p.grid_space())
        if not space:
            raise ConfigError("the space has nothing to search")
        n = 1
        for values in space.values():
            n *= len(values)
            if n > GRID_POINTS_MAX:
                raise ConfigError(f"{self.source}: the grid has more than {GRID_POINTS_MAX:,} points",
                                  "Search fewer values, or use the tpe or random strategy.")
        return space

    def grid_size(self) -> int:
        """The grid's distinct points (`distinct`)."""
        grid = self.grid()
        if all(p.when is None for p in self.params):
            return math.prod(len(values) for values in grid.values())
        return len(self.distinct(list(itertools.product(*grid.values())), list(grid)))

    def distinct(self, points: list[tuple], names: list[str]) -> list[tuple]:
        """The grid `points` (tuples of the values of `names`, as Optuna's grid sampler lists them) less those that
        draw what an earlier one draws: a key under `when` is not drawn where its condition is false, so the values
        the grid gives it there make no other configuration, only the same trial again."""
        if all(p.when is None for p in self.params):
            return points
        seen: set[str] = set()
        out = []
        for point in points:
            trial = _GridPoint(dict(zip(names, point)))
            try:
                self.sample(trial, grid=True)
                drawn = repr(sorted(trial.asked.items()))
            except ConfigError:  # kept: its trial is pruned with the reason
                drawn = repr(point)
            if drawn not in seen:
                seen.add(drawn)
                out.append(point)
        return out

    def keys(self) -> list[str]:
        return [p.name for p in self.params if not p.helper]

    def check_keys(self, known: set[str], model: str, others: dict[str, set[str]] | None = None) -> None:
        """Every searched or fixed key must be a config key of the model or of the training settings; `others`
        (each other model's config keys) names the model a key is of instead."""
        import difflib

        for key in [*self.keys(), *self.fixed]:
            if key not in known:
                owners = sorted(m for m, keys in (others or {}).items() if m != model and key in keys)
                close = [] if owners else difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.6)
                helper = "A parameter that only feeds others needs `helper = true`; " if key in self.keys() else ""
                raise ConfigError(f"{self.source}: '{key}' is not a config key of {model}",
                                  (f"{key} is a key of {', '.join(owners)}, not of {model}. " if owners else "")
                                  + (f"Did you mean: {', '.join(close)}? " if close else "")
                                  + f"{helper}`zoo info {model}` lists the keys.")
        overlap = set(self.keys()) & set(self.fixed)
        if overlap:
            raise ConfigError(f"{self.source}: {', '.join(sorted(overlap))} is both searched and fixed")

    def check_values(self, fields: dict[str, tuple[Any, Any]]) -> list[str]:
        """Refuse, before any trial, a searched value its config key cannot take (`Param.check_key`);
        `fields` maps each config key to (its dataclass field, its type). Returns notes for the search's
        log and summary: the keys whose values or bounds depend on drawn keys in ways that only each
        draw can check."""
        unchecked: list[str] = []
        for p in self.params:
            if p.helper:
                continue
            f, tp = fields[p.name]
            unchecked += [n for n in p.check_key(f, tp, self.source, self._draws) if n not in unchecked]
        if not unchecked:
            return []
        return [f"the values or bounds of {', '.join(unchecked)} depend on drawn keys that zoo cannot list before "
                "the search (a float range, a list, a computed key), so only each draw is checked against the "
                "key's range: a draw outside it is pruned as an invalid configuration"]

    def _draws(self, names: set[str]) -> list[dict[str, Any]] | None:
        """Every draw of the keys `names` (their product), where each takes few, fixed values (`_draw_values`)
        and there are at most ENUM_MAX; else None."""
        by_name = {p.name: p for p in self.params}
        values: dict[str, list] = {}
        for n in sorted(names):
            found = _draw_values(by_name[n]) if n in by_name else None
            if found is None:
                return None
            values[n] = found
        if math.prod(len(v) for v in values.values()) > ENUM_MAX:
            return None
        return [dict(zip(values, combo)) for combo in itertools.product(*values.values())]


def parse_space(data: dict[str, Any], source: str = "space", text: str = "") -> Space:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: not a table of settings")
    unknown = set(data) - set(TABLES)
    if unknown:
        raise ConfigError(f"{source}: unknown table(s) {', '.join(sorted(unknown))}",
                          f"A space file has [{'], ['.join(TABLES)}].")
    for t in TABLES:
        if t in data and not isinstance(data[t], dict):
            raise ConfigError(f"{source}: [{t}] must be a table")
    search = dict(data.get("search", {}))
    objective = dict(data.get("objective", {}))
    for table, allowed, values in (("search", SEARCH_KEYS, search), ("objective", OBJECTIVE_KEYS, objective)):
        for k, v in values.items():
            if table == "search" and k == "sampler":  # zoo 0.1's name, beside the latent samplers of generate
                raise ConfigError(f"{source}: [search] sampler is now called strategy (zoo 0.2)",
                                  f"Write strategy = {json.dumps(v)} in [search].")
            if k not in allowed:
                raise ConfigError(f"{source}: unknown key '{k}' in [{table}]", f"[{table}] may have: "
                                  f"{', '.join(allowed)}.")
            tp = allowed[k]
            ok = isinstance(v, tp) and not isinstance(v, bool) or (tp is float and isinstance(v, int)
                                                                    and not isinstance(v, bool))
            if not ok:
                raise ConfigError(f"{source}: [{table}] {k} = {v!r} is not a{'n' if tp is int else ''} "
                                  f"{tp.__name__}")
            literal(v, f"{source}: [{table}] {k}")
    for k in ("time_penalty", "latent_penalty"):  # a negative one would reward the slowest, widest trial
        if objective.get(k, 0) < 0:
            raise ConfigError(f"{source}: [objective] {k} = {objective[k]} is negative: a penalty adds to the "
                              "objective, and the search would favour the trials it should penalise",
                              f"Give {k} 0 (none) or more.")
    if search.get("strategy", "tpe") not in STRATEGIES:
        raise ConfigError(f"{source}: unknown search strategy '{search['strategy']}'",
                          f"Use one of {', '.join(STRATEGIES)}.")
    if search.get("pruner", "auto") not in PRUNERS:
        raise ConfigError(f"{source}: unknown pruner '{search['pruner']}'", f"Use one of {', '.join(PRUNERS)}.")
    from zoo.training.fit import REDUCE  # here, not at the top: reading a space needs no torch

    if objective.get("reduce", "best") not in REDUCE:
        raise ConfigError(f"{source}: unknown reduce '{objective['reduce']}'", f"Use one of {', '.join(REDUCE)}.")
    params: list[Param] = []
    defined: set[str] = set()
    for name, spec in data.get("params", {}).items():
        p = Param.parse(name, spec, source)
        missing = p.names() - defined - {"i", name, "true", "false"}
        fixed = sorted(missing & set(data.get("fixed", {})))
        if fixed:  # a constant, and one --set may change: the expression would read the file's value
            k, v = fixed[0], data["fixed"][fixed[0]]
            one = (f"{{ value = {json.dumps(json.dumps(v))} }}" if isinstance(v, list)  # a list is no choice
                   else f"{{ choices = [{json.dumps(v)}] }}")
            raise ConfigError(f"{source}: {name} uses {', '.join(fixed)}, which {'is' if len(fixed) == 1 else 'are'} "
                              "in [fixed]: expressions read the [params] keys above them, not [fixed] ones",
                              "Write the expression without it (its value is known), or move it to [params] above "
                              f"{name} with its one value: {k} = {one}.")
        if missing:
            raise ConfigError(f"{source}: {name} uses {', '.join(sorted(missing))}, which is not defined above it",
                              "Keys are sampled in file order: define a key before the keys that use it.")
        params.append(p)
        defined.add(name)
    if not params:
        raise ConfigError(f"{source}: [params] lists nothing to search")
    read = set().union(*(p.names() for p in params))
    for p in params:  # a helper nothing reads changes no trial: its search would repeat one configuration
        if p.helper and p.name not in read:
            raise ConfigError(f"{source}: {p.name} is a helper (`helper = true`) that no key below it reads, so "
                              "every trial would train the same configuration",
                              f"Use it in a later key's bounds, length, value or when; or, if {p.name} is a "
                              "config key, drop `helper = true`.")
    return Space(params=params, fixed=dict(data.get("fixed", {})), search=search, objective=objective,
                 source=source, text=text)


def bundled_spaces() -> dict[str, Path]:
    """The example spaces shipped with zoo: {name: path}."""
    try:
        folder = resources.files("zoo") / "spaces"
        return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith(".toml")}
    except (FileNotFoundError, NotADirectoryError, ModuleNotFoundError):
        return {}


def load_space(source: str | Path) -> Space:
    """A space file by path, or by the name of one zoo ships (`zoo search --list-spaces`)."""
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    if not isinstance(source, (str, Path)):  # a study keeps its space file's text, and is named after it
        raise ConfigError(f"a search space is a TOML file or the name of an example space, not a "
                          f"{type(source).__name__}", "Write it to a file and give its path (docs/search.md shows "
                          "the format; `zoo search --list-spaces` the examples).")
    path = Path(source)
    if not path.is_file():
        bundled = bundled_spaces()
        name = str(source)[:-5] if str(source).endswith(".toml") else str(source)
        if name in bundled:
            path = bundled[name]
        else:
            raise ConfigError(f"space file not found: {source}",
                              "Give a TOML file, or one of zoo's example spaces: " + ", ".join(sorted(bundled)))
    try:
        text = path.read_text()
        data = tomllib.loads(text)
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from None
    except RecursionError:
        raise ConfigError(f"{path} is not valid TOML: its values are nested too deeply") from None
    return parse_space(data, source=str(path), text=text)
