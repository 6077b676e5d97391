"""`Param`, one searched key of a space file (zoo.search.space): parsed from its spec, with its bounds
checked, drawn for a trial and enumerated for a grid. Its checks against the config key it sets are
`KeyChecks` (zoo.search.param_checks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from zoo.errors import ConfigError
from zoo.search.expressions import Expr, known, literal, resolve, spec_value
from zoo.search.param_checks import KeyChecks, checked_length

SPEC_KEYS = {"type", "choices", "low", "high", "step", "log", "when", "helper", "length", "element", "elements",
             "value"}
TYPES = ("categorical", "int", "float", "list", "value")
COMMON = {"type", "when", "helper"}
OWN_FIELDS = {"categorical": COMMON | {"choices"}, "int": COMMON | {"low", "high", "step", "log"},
              "float": COMMON | {"low", "high", "step", "log"},
              "list": COMMON | {"length", "element", "elements"}, "value": COMMON | {"value"}}
GRID_MAX = 1000  # values of one integer range that a grid may enumerate


@dataclass
class Param(KeyChecks):
    name: str                       # the config key (or helper name); elements: key[i]
    kind: str
    choices: list | None = None
    low: Any = None
    high: Any = None
    step: Any = None
    log: bool = False
    when: Expr | None = None
    helper: bool = False
    length: Any = None
    element: "Param | None" = None
    elements: list["Param"] = field(default_factory=list)
    value: Any = None
    inferred: bool = False          # an int or float range whose kind was read from its bounds (no `type`)

    # ------------------------------------------------------------------ parsing
    @classmethod
    def parse(cls, name: str, spec: Any, where: str, element: bool = False) -> "Param":
        w = f"{where}: {name}"
        if not isinstance(spec, dict):
            if element:
                raise ConfigError(f"{w} must be a table such as {{ low = 1, high = 8 }}")
            raise ConfigError(f"{w} must be a table such as {{ low = 1, high = 8 }} or {{ choices = [...] }}",
                              "Keys every trial shares go in [fixed].")
        unknown = set(spec) - SPEC_KEYS
        if unknown:
            raise ConfigError(f"{w}: unknown field(s) {', '.join(sorted(unknown))}",
                              f"A parameter may have: {', '.join(sorted(SPEC_KEYS))}.")
        kind = spec.get("type")
        if kind is None:
            if "choices" in spec:
                kind = "categorical"
            elif "value" in spec:
                kind = "value"
            elif "length" in spec or "elements" in spec or "element" in spec:
                kind = "list"
            elif "low" in spec or "high" in spec:
                lo, hi, st = spec.get("low"), spec.get("high"), spec.get("step")
                kind = "float" if any(isinstance(v, float) for v in (lo, hi, st)) else "int"
            else:
                raise ConfigError(f"{w}: say what to search: choices, low/high, length/element(s) or value")
        if kind not in TYPES:
            raise ConfigError(f"{w}: unknown type '{kind}'", f"Use one of {', '.join(TYPES)}.")
        if element and kind in ("list",):
            raise ConfigError(f"{w}: a list's elements cannot be lists")
        for flag in ("log", "helper"):  # "false", a string, is no false: say so rather than read it as true
            if flag in spec and not isinstance(spec[flag], bool):
                raise ConfigError(f"{w}: {flag} = {spec[flag]!r:.40} is not true or false",
                                  f"Write {flag} = true or {flag} = false (no quotes).")
        # fields another kind of search takes, which this one would ignore: a choice outside the low..high written
        # beside it was drawn
        alien = sorted(set(spec) & (SPEC_KEYS - OWN_FIELDS[kind]))
        if alien:
            raise ConfigError(f"{w}: {', '.join(alien)} {'do' if len(alien) > 1 else 'does'} not go with "
                              f"{'a computed value' if kind == 'value' else f'a search of {kind} values'}",
                              f"A {kind} parameter takes: {', '.join(sorted(OWN_FIELDS[kind] - {'type'}))}.")
        p = cls(name=name, kind=kind, log=spec.get("log", False), helper=spec.get("helper", False),
                inferred="type" not in spec)
        if "when" in spec:
            if element:
                raise ConfigError(f"{w}: `when` belongs to the whole key, not to an element")
            p.when = Expr(str(spec["when"]), f"{w}.when")
        if kind == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                raise ConfigError(f"{w}: choices must be a non-empty list")
            for c in choices:
                if not isinstance(c, (bool, int, float, str)):
                    raise ConfigError(f"{w}: choice {c!r} is not a number, string or boolean",
                                      "A list-valued key is searched with `length` and `element`.")
                literal(c, f"{w}: choice {c!r}")
            p.choices = list(choices)
        elif kind in ("int", "float"):
            if "low" not in spec or "high" not in spec:
                raise ConfigError(f"{w}: a{'n' * (kind == 'int')} {kind} range needs both low and high")
            p.low, p.high = spec_value(spec["low"], f"{w}.low"), spec_value(spec["high"], f"{w}.high")
            p.step = spec_value(spec["step"], f"{w}.step") if "step" in spec else None
            if p.log and p.step is not None:
                raise ConfigError(f"{w}: log scale and step cannot be combined")
            for attr in ("low", "high", "step"):
                v = getattr(p, attr)
                if v is not None and not isinstance(v, (Expr, int, float)) or isinstance(v, bool):
                    raise ConfigError(f"{w}: {attr} must be a number or an expression")
            p._check_bounds(None, w)
        elif kind == "list":
            if "elements" in spec:
                if not isinstance(spec["elements"], list) or not spec["elements"]:
                    raise ConfigError(f"{w}: elements must be a non-empty list of tables")
                checked_length(len(spec["elements"]), w)
                p.elements = [cls.parse(f"{name}[{i}]", e, where, element=True) for i, e in enumerate(spec["elements"])]
                if "length" in spec or "element" in spec:
                    raise ConfigError(f"{w}: give either `elements` or `length` and `element`, not both")
            else:
                if "length" not in spec or "element" not in spec:
                    raise ConfigError(f"{w}: a list needs `length` and `element` (or `elements`)")
                p.length = spec_value(spec["length"], f"{w}.length")
                if not isinstance(p.length, (Expr, int)) or isinstance(p.length, bool):
                    raise ConfigError(f"{w}: length must be an integer or an expression")
                if known(p.length):
                    checked_length(resolve(p.length, {}), w)
                p.element = cls.parse(f"{name}[i]", spec["element"], where, element=True)
        elif kind == "value":
            if "value" not in spec:
                raise ConfigError(f"{w}: a computed key needs `value`")
            p.value = spec_value(spec["value"], f"{w}.value")
        return p

    def _check_bounds(self, env: dict[str, Any] | None, where: str) -> tuple[Any, Any, Any]:
        """(low, high, step) as numbers; ConfigError for a range Optuna cannot sample. Without `env`
        (reading the file), only bounds that depend on no sampled key are checked."""
        if env is None and not known(self.low, self.high, self.step):
            return None, None, None
        low, high = resolve(self.low, env or {}), resolve(self.high, env or {})
        step = resolve(self.step, env or {}) if self.step is not None else None
        for label, v in (("low", low), ("high", high), ("step", step)):
            if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool)):
                raise ConfigError(f"{where}: {label} is {v!r}, not a number")
            if v is not None:
                literal(v, f"{where}.{label}")  # finite: nan or inf is no bound
        if not math.isfinite(high - low):
            raise ConfigError(f"{where}: the range {low}..{high} is wider than a float can hold")
        if self.kind == "int":
            for label, v in (("low", low), ("high", high), ("step", step)):
                if isinstance(v, float) and not v.is_integer():
                    raise ConfigError(f"{where}: {label} {v} is not an integer")
            low, high = int(low), int(high)
            step = int(step) if step is not None else None
        if high < low:
            raise ConfigError(f"{where}: empty range {low}..{high}")
        if self.log and low <= 0:
            raise ConfigError(f"{where}: a log-scale range must start above 0 (low = {low})")
        if step is not None and step <= 0:
            raise ConfigError(f"{where}: step must be positive")
        if step is not None and not _divides(step, high - low):  # Optuna would search low .. the last step below high
            last = low + math.floor((high - low) / step + 1e-9) * step
            raise ConfigError(f"{where}: step {step} does not divide the range {low}..{high}: it would be searched as "
                              f"{low}..{last:g}", f"Make high - low a multiple of the step (e.g. high = "
                              f"{last + step:g}), or leave the step out.")
        return low, high, step

    def names(self) -> set[str]:
        """Keys this parameter's expressions read."""
        out: set[str] = set()
        for v in (self.low, self.high, self.step, self.when, self.length, self.value):
            if isinstance(v, Expr):
                out |= v.names
        for e in [self.element, *self.elements]:
            if e is not None:
                out |= e.names()
        return out

    # ------------------------------------------------------------------ sampling
    def sample(self, trial, env: dict[str, Any], grid: bool = False) -> Any:
        if self.kind == "value":
            return resolve(self.value, env)
        if self.kind == "list":
            if self.elements:
                return [e.sample(trial, env, grid) for e in self.elements]
            n = checked_length(resolve(self.length, env), self.name)
            out = []
            for i in range(n):
                el = Param(**{**self.element.__dict__, "name": f"{self.name}[{i}]"})
                out.append(el.sample(trial, {**env, "i": i, self.name: out}, grid))
            return out
        if grid or self.kind == "categorical":
            return trial.suggest_categorical(self.name, self.grid_values() if grid else self.choices)
        low, high, step = self._check_bounds(env, self.name)
        if self.kind == "int":
            return trial.suggest_int(self.name, low, high, step=step or 1, log=self.log)
        return trial.suggest_float(self.name, float(low), float(high), step=step, log=self.log)

    def grid_values(self) -> list:
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind in ("int", "float"):
            if not known(self.low, self.high, self.step):
                raise ConfigError(f"{self.name}: the grid strategy needs fixed values; this range depends on "
                                  "other keys", "Give it `choices`, or use the tpe or random strategy.")
            low, high, step = self._check_bounds({}, self.name)
            if self.kind == "float" and step is None:
                raise ConfigError(f"{self.name}: the grid strategy cannot enumerate a continuous range",
                                  "Give it `choices` or a `step`.")
            step = step or 1
            count = int(math.floor((high - low) / step + 1e-9)) + 1
            if count > GRID_MAX:
                raise ConfigError(f"{self.name}: {count} grid values is too many (most {GRID_MAX})")
            return [low + k * step if self.kind == "int" else round(low + k * step, 12) for k in range(count)]
        raise ConfigError(f"{self.name}: cannot be enumerated for a grid")

    def grid_space(self) -> dict[str, list]:
        """{optuna name: values} for the grid strategy."""
        if self.kind == "value":
            return {}
        if self.kind == "list":
            if self.elements:
                out: dict[str, list] = {}
                for e in self.elements:
                    out.update(e.grid_space())
                return out
            if not known(self.length):
                raise ConfigError(f"{self.name}: the grid strategy needs a fixed length (not '{self.length.text}')",
                                  "Give the list a fixed length, or use the tpe or random strategy.")
            out = {}
            for i in range(checked_length(resolve(self.length, {}), self.name)):
                el = Param(**{**self.element.__dict__, "name": f"{self.name}[{i}]"})
                out.update(el.grid_space())
            return out
        return {self.name: self.grid_values()}


def _divides(step, span) -> bool:
    """Whether `span` is a whole number of `step`s (to a float's rounding, as Optuna's check allows)."""
    n = span / step
    return math.isclose(n, round(n), rel_tol=1e-8, abs_tol=1e-8)
