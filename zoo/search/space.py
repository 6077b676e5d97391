"""Search-space files for `zoo search`: which config keys to search, how, and the search's defaults.

A space file is TOML:

    [search]                 # defaults for the command line (each option overrides its key)
    preset = "convae-lab"    # start every trial from this preset
    sampler = "tpe"          # tpe | random | grid
    pruner = "auto"          # auto | median | hyperband | none (auto: see zoo.search.study.auto_pruning)
    trials = 40
    cv = 0                   # k > 1: k-fold cross-validation of every trial
    seed = 0                 # the sampler's seed

    [objective]
    metric = "loss"          # the model's validation metric
    reduce = "best"          # best | mean | last over the epochs
    time_penalty = 0.0       # + λ × training minutes (per fold)
    latent_penalty = 0.0     # + μ × latent size
    latent_key = "latent_dim"

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

import ast
import itertools
import json
import math
import operator
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from zoo.runs.config import check_range, coerce, describe_range, type_name
from zoo.errors import ConfigError

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("auto", "median", "hyperband", "none")
TABLES = ("search", "objective", "fixed", "params")
SEARCH_KEYS = {"preset": str, "sampler": str, "pruner": str, "trials": int, "cv": int, "seed": int,
               "description": str, "source": str}
OBJECTIVE_KEYS = {"metric": str, "reduce": str, "time_penalty": float, "latent_penalty": float,
                  "latent_key": str}
SPEC_KEYS = {"type", "choices", "low", "high", "step", "log", "when", "helper", "length", "element", "elements",
             "value"}
TYPES = ("categorical", "int", "float", "list", "value")
GRID_MAX = 1000  # values of one integer range that a grid may enumerate
GRID_POINTS_MAX = 100_000  # points of a whole grid (Optuna's grid sampler lists them all)
MAX_LENGTH = 256  # elements of a searched list
ENUM_MAX = 10_000  # draws of the keys an expression reads, each checked before the first trial

# What an expression may compute (see the module's docstring).
MAX_TEXT = 1000   # characters of one expression
MAX_DEPTH = 50    # nesting of its syntax tree
MAX_INT_BITS = 64  # integers within ±2**64
MAX_ITEMS = 1000  # items of a list (nested ones counted) or characters of a string
MAX_ROUND = 100   # |ndigits| of round(): round(5, -10**18) would compute 10**(10**18)
LIMITS_HINT = (f"Space expressions compute integers within ±2**{MAX_INT_BITS}, finite floats, and lists and "
               f"strings of up to {MAX_ITEMS} items.")


# ----------------------------------------------------------------------------------------- expressions

_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**"}
_CMP = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
        ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_, ast.Invert: operator.invert}


class Beyond(ValueError):
    """A value outside what the space language holds; reported with the key that computed it."""


def checked(v: Any) -> Any:
    """`v` if the space language may hold it (a bool, an integer within ±2**64, a finite float, a
    string or list of at most MAX_ITEMS items); else Beyond, saying what it is."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        if v.bit_length() > MAX_INT_BITS:
            raise Beyond(f"an integer beyond ±2**{MAX_INT_BITS}")
        return v
    if isinstance(v, float):
        if not math.isfinite(v):
            raise Beyond(f"{v}, not a finite number")
        return v
    if isinstance(v, (str, list)):
        if _size(v) > MAX_ITEMS:
            raise Beyond(f"a {type(v).__name__} of more than {MAX_ITEMS} items")
        if isinstance(v, list):
            for x in v:
                checked(x)
        return v
    raise Beyond(f"a value of type {type(v).__name__}, which space expressions do not compute")


def _size(v: Any) -> int:
    """Items of a value: a string's characters, a list's elements and theirs."""
    if isinstance(v, str):
        return len(v)
    if isinstance(v, list):
        return len(v) + sum(_size(x) for x in v if isinstance(x, (str, list)))
    return 1


def _number(v: Any) -> bool:
    return isinstance(v, (int, float))


def _binop(op: type, a: Any, b: Any) -> Any:
    """a <op> b between numbers; + joins two strings or two lists; * repeats one. Refused before
    computing a result beyond the language's bounds (pow and repetition could run for ever)."""
    if _number(a) and _number(b):
        if op is ast.Pow and isinstance(a, int) and isinstance(b, int) and b > 0 and abs(a) > 1 \
                and (abs(a).bit_length() - 1) * b > MAX_INT_BITS:
            raise Beyond(f"{a} ** {b} is an integer beyond ±2**{MAX_INT_BITS}")
        return _BIN[op](a, b)
    if op is ast.Add and type(a) is type(b) and isinstance(a, (str, list)):
        return a + b
    if op is ast.Mult and isinstance(a, int) and isinstance(b, (str, list)):
        a, b = b, a
    if op is ast.Mult and isinstance(a, (str, list)) and isinstance(b, int):
        if b > 0 and _size(a) * b > MAX_ITEMS:
            raise Beyond(f"a {type(a).__name__} repeated {b} times has more than {MAX_ITEMS} items")
        return a * b
    raise TypeError(f"unsupported operand types for {_SYMBOL[op]}: '{type(a).__name__}' and '{type(b).__name__}'")


def _round(x: Any, ndigits: Any = None) -> Any:
    if ndigits is not None and (not isinstance(ndigits, int) or abs(ndigits) > MAX_ROUND):
        raise Beyond(f"round() to {ndigits!r} digits (at most {MAX_ROUND} either way)")
    return round(x, ndigits)


_FUNCS = {"min": min, "max": max, "abs": abs, "int": int, "float": float, "round": _round, "len": len}


class Expr:
    """A small arithmetic expression over earlier keys; parsed once, evaluated without `eval`, within
    the language's bounds. One without names is evaluated at once (`constant`)."""

    def __init__(self, text: str, where: str):
        self.text = text
        self.where = where
        self.shown = text if len(text) <= 80 else text[:77] + "..."  # for messages
        if len(text) > MAX_TEXT:
            raise ConfigError(f"{where}: the expression '{self.shown}' has {len(text)} characters "
                              f"(at most {MAX_TEXT})")
        try:
            self.tree = ast.parse(text.strip(), mode="eval").body
        except SyntaxError as e:
            raise ConfigError(f"{where}: '{self.shown}' is not a valid expression ({e.msg})") from None
        except (RecursionError, MemoryError, ValueError) as e:  # the parser's own limits
            raise ConfigError(f"{where}: '{self.shown}' is not a valid expression ({type(e).__name__})") from None
        self.names = set()
        self._check(self.tree, 0)
        self.constant = not self.names - {"true", "false"}
        if self.constant:
            self.value = self({})  # its mistakes show when the file is read

    def _check(self, node, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise ConfigError(f"{self.where}: '{self.shown}' is nested more than {MAX_DEPTH} deep")
        allowed = (ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.Subscript, ast.Name, ast.Constant,
                   ast.List, ast.Tuple, ast.Call, ast.Load, ast.operator, ast.unaryop, ast.boolop, ast.cmpop,
                   ast.Slice)
        if not isinstance(node, allowed):
            raise ConfigError(f"{self.where}: '{self.shown}' uses {type(node).__name__}, which space expressions "
                              "do not allow", "Use numbers, names of earlier keys, arithmetic, comparisons and "
                              "min/max/abs/int/float/round/len.")
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCS or node.keywords:
                raise ConfigError(f"{self.where}: '{self.shown}' calls something other than "
                                  f"{', '.join(_FUNCS)}")
            for a in node.args:
                self._check(a, depth + 1)
            return
        if isinstance(node, ast.Name):
            self.names.add(node.id)
        if isinstance(node, ast.BinOp) and type(node.op) not in _BIN:
            raise ConfigError(f"{self.where}: '{self.shown}' uses an operator space expressions do not allow")
        for child in ast.iter_child_nodes(node):
            self._check(child, depth + 1)

    def __call__(self, env: dict[str, Any]) -> Any:
        try:
            return self._eval(self.tree, env)
        except ConfigError:
            raise
        except (Beyond, OverflowError) as e:
            what = "a number beyond what a float holds" if isinstance(e, OverflowError) else str(e)
            raise ConfigError(f"{self.where}: '{self.shown}' is beyond what a space expression may compute: {what}",
                              LIMITS_HINT) from None
        except Exception as e:  # noqa: BLE001 - a user's expression: any failure is their message
            raise ConfigError(f"{self.where}: '{self.shown}' cannot be evaluated ({type(e).__name__}: {e})") from None

    def _eval(self, node, env):
        """The node's value, checked against the language's bounds (a slice is only an index)."""
        value = self._value(node, env)
        return value if isinstance(node, ast.Slice) else checked(value)

    def _value(self, node, env):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in env:
                return env[node.id]
            if node.id in ("true", "false"):
                return node.id == "true"
            raise ConfigError(f"{self.where}: '{self.shown}' uses '{node.id}', which is not set at this point",
                              "An expression may use keys defined above it (a conditional key that was skipped "
                              "is not set).")
        if isinstance(node, ast.BinOp):
            return _binop(type(node.op), self._eval(node.left, env), self._eval(node.right, env))
        if isinstance(node, ast.UnaryOp):
            return _UNARY[type(node.op)](self._eval(node.operand, env))
        if isinstance(node, ast.BoolOp):
            if isinstance(node.op, ast.And):
                v = True
                for n in node.values:
                    v = self._eval(n, env)
                    if not v:
                        return v
                return v
            v = False
            for n in node.values:
                v = self._eval(n, env)
                if v:
                    return v
            return v
        if isinstance(node, ast.Compare):
            left = self._eval(node.left, env)
            for op, comp in zip(node.ops, node.comparators):
                right = self._eval(comp, env)
                if not _CMP[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.IfExp):
            return self._eval(node.body, env) if self._eval(node.test, env) else self._eval(node.orelse, env)
        if isinstance(node, ast.Subscript):
            return self._eval(node.value, env)[self._eval(node.slice, env)]
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self._eval(e, env) for e in node.elts]
        if isinstance(node, ast.Call):
            return _FUNCS[node.func.id](*[self._eval(a, env) for a in node.args])
        if isinstance(node, ast.Slice):
            return slice(*(self._eval(x, env) if x is not None else None for x in (node.lower, node.upper, node.step)))
        raise ConfigError(f"{self.where}: cannot evaluate '{self.shown}'")


def literal(v: Any, where: str) -> Any:
    """A value written in the space file, if the space language may hold it (finite numbers, ...)."""
    try:
        return checked(v)
    except Beyond as e:
        raise ConfigError(f"{where} is {e}", LIMITS_HINT) from None


def _value(v: Any, where: str) -> Any:
    """A literal stays itself; a string in a numeric slot is an expression."""
    return Expr(v, where) if isinstance(v, str) else literal(v, where)


def _resolve(v: Any, env: dict[str, Any]) -> Any:
    if isinstance(v, Expr):
        return v.value if v.constant else v(env)
    return v


def _known(*values: Any) -> bool:
    """True when the values do not depend on sampled keys (literals and constant expressions)."""
    return not any(isinstance(v, Expr) and not v.constant for v in values)


def _draw_values(p: "Param") -> list | None:
    """The values a draw of `p` can take, when few and fixed: its choices, a range with fixed bounds that
    a grid could enumerate (integers, or floats with a step), its constant value; else None."""
    if p.kind == "categorical":
        return list(p.choices)
    if p.kind == "value" and _known(p.value):
        return [_resolve(p.value, {})]
    if p.kind in ("int", "float") and _known(p.low, p.high, p.step) and (p.kind == "int" or p.step is not None):
        try:
            return p.grid_values()
        except ConfigError:  # too many values: checked draw by draw
            return None
    return None


def _element_type(tp: Any) -> Any:
    """The type of a key's values: int for list[int] and for int | None (a union of several types stays)."""
    if typing.get_origin(tp) in (list, tuple):
        return _element_type(typing.get_args(tp)[0])
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if len(args) == 1 and typing.get_origin(tp) is not None else tp


def _fits(value: Any, f, tp: Any) -> bool:
    """Whether `value`, as written in the space, is a value of config key `f` (of type `tp`): of the key's
    type (an int for a float is fine; "3" or true for an int is not), and within its range. A list key
    also takes one element (`kernel = 3`: every layer)."""
    if typing.get_origin(tp) in (list, tuple):
        inner = typing.get_args(tp)[0]
        return all(_fits(v, f, inner) for v in (value if isinstance(value, list) else [value]))
    try:
        v = coerce(value, tp, f.name)
    except (ValueError, TypeError):
        return False
    return v == value and isinstance(v, bool) == isinstance(value, bool) and check_range(v, f)


def _takes(f, tp: Any) -> str:
    """What a config key takes: `latent_dim takes an int, 1 .. 4096 (size of the latent code)`."""
    name = type_name(tp)
    limits = describe_range(f)
    about = f.metadata.get("help", "")
    return (f"{f.name} takes {'an' if name[0] in 'aeiou' else 'a'} {name}" + (f", {limits}" if limits else "")
            + (f" ({about})" if about else ""))


def _shown(v: Any) -> str:
    """A value as TOML writes it (true, "3", 2)."""
    return json.dumps(v)


def _said(label: str, v: Any, value: Any, env: dict[str, Any]) -> str:
    """`high = 20`, or for an expression `high = 'n * 10' (20 when n = 2)`."""
    if not isinstance(v, Expr) or (v.constant and not env):
        return f"{label} = {_shown(value)}"
    when = f" when {_assigned(env)}" if env else ""
    return f"{label} = '{v.shown}' ({_shown(value)}{when})"


def _assigned(env: dict[str, Any]) -> str:
    """A draw as `n = 2, i = 1`."""
    return ", ".join(f"{k} = {_shown(x)}" for k, x in env.items())


def _count(n: Any, where: str) -> int:
    """A searched list's length: a whole number from 0 to MAX_LENGTH."""
    if isinstance(n, float) and n.is_integer():
        n = int(n)
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ConfigError(f"{where}: length is {n!r}, not a count")
    if n > MAX_LENGTH:
        raise ConfigError(f"{where}: length {n} is more than a searched list may have ({MAX_LENGTH})")
    return n


# ----------------------------------------------------------------------------------------- parameters

@dataclass
class Param:
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
        p = cls(name=name, kind=kind, log=bool(spec.get("log", False)), helper=bool(spec.get("helper", False)))
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
                raise ConfigError(f"{w}: an {kind} range needs both low and high")
            p.low, p.high = _value(spec["low"], f"{w}.low"), _value(spec["high"], f"{w}.high")
            p.step = _value(spec["step"], f"{w}.step") if "step" in spec else None
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
                _count(len(spec["elements"]), w)
                p.elements = [cls.parse(f"{name}[{i}]", e, where, element=True) for i, e in enumerate(spec["elements"])]
                if "length" in spec or "element" in spec:
                    raise ConfigError(f"{w}: give either `elements` or `length` and `element`, not both")
            else:
                if "length" not in spec or "element" not in spec:
                    raise ConfigError(f"{w}: a list needs `length` and `element` (or `elements`)")
                p.length = _value(spec["length"], f"{w}.length")
                if not isinstance(p.length, (Expr, int)) or isinstance(p.length, bool):
                    raise ConfigError(f"{w}: length must be an integer or an expression")
                if _known(p.length):
                    _count(_resolve(p.length, {}), w)
                p.element = cls.parse(f"{name}[i]", spec["element"], where, element=True)
        elif kind == "value":
            if "value" not in spec:
                raise ConfigError(f"{w}: a computed key needs `value`")
            p.value = _value(spec["value"], f"{w}.value")
        return p

    def _check_bounds(self, env: dict[str, Any] | None, where: str) -> tuple[Any, Any, Any]:
        """(low, high, step) as numbers; ConfigError for a range Optuna cannot sample. Without `env`
        (reading the file), only bounds that depend on no sampled key are checked."""
        if env is None and not _known(self.low, self.high, self.step):
            return None, None, None
        low, high = _resolve(self.low, env or {}), _resolve(self.high, env or {})
        step = _resolve(self.step, env or {}) if self.step is not None else None
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
        return low, high, step

    # ------------------------------------------------------------------ against the config key
    def check_key(self, f, tp: Any, where: str, envs: Callable[[set[str]], list[dict] | None]) -> list[str]:
        """Refuse a value of this parameter that its config key (field `f`, of type `tp`) cannot take: a
        choice of another type or outside the key's range, a range of the wrong kind, a bound (or a
        computed value) outside the key's range. An expression over drawn keys is checked for every
        draw of the keys it reads where `envs(names)` lists those draws (few, fixed values: choices,
        integer ranges with fixed bounds); returns [the key's name] where it cannot, so that only each
        draw can be checked (a draw outside the range is then pruned with its reason)."""
        w = f"{where}: {self.name}"
        listed = typing.get_origin(tp) in (list, tuple)
        scalar = _element_type(tp)
        if self.kind == "list":
            if not listed:
                raise ConfigError(f"{w}: a searched list, and {f.name} is not a list",
                                  f"{_takes(f, tp)}. Search it with `choices` or `low`/`high`.")
            element_envs = self._element_envs(envs)
            return [n for e in (self.elements or [self.element]) for n in e.check_key(f, tp, where, element_envs)]
        if self.kind == "categorical":
            bad = [c for c in self.choices if not _fits(c, f, tp)]
            if bad:
                many = len(bad) > 1
                raise ConfigError(f"{w}: the choice{'s' if many else ''} {', '.join(_shown(c) for c in bad)} "
                                  f"{'are' if many else 'is'} not {'values' if many else 'a value'} that {f.name} takes",
                                  f"{_takes(f, tp)}. Give choices of that type within that range"
                                  + (" (numbers without quotes)." if scalar in (int, float) else "."))
            return []
        if self.kind == "value":
            outcomes = self._outcomes(self.value, envs)
            for env, value in outcomes or []:
                if not _fits(value, f, tp):
                    raise ConfigError(f"{w}: {_said('value', self.value, value, env)} is not one that {f.name} "
                                      "takes", f"{_takes(f, tp)}.")
            return [f.name] if outcomes is None else []
        if isinstance(scalar, type) and scalar not in (int, float):
            raise ConfigError(f"{w}: a range draws numbers, and {f.name} takes a {type_name(scalar)}",
                              f"{_takes(f, tp)}. Search it with `choices`.")
        if scalar is int and self.kind == "float":
            raise ConfigError(f"{w}: a float range draws fractions, and {f.name} takes whole numbers",
                              f"{_takes(f, tp)}. Give integer bounds (low = 2, not 2.0).")
        unknown = False
        for label in ("low", "high"):
            bound = getattr(self, label)
            outcomes = self._outcomes(bound, envs)
            unknown = unknown or outcomes is None
            for env, value in outcomes or []:
                if _number(value) and not isinstance(value, bool) and not check_range(value, f):
                    raise ConfigError(f"{w}: {_said(label, bound, value, env)} is outside the range of {f.name}",
                                      f"{_takes(f, tp)}. Give bounds within that range"
                                      + (" for every draw of the keys they read." if env else "."))
        return [f.name] if unknown else []

    def _outcomes(self, v: Any, envs: Callable[[set[str]], list[dict] | None]) -> list[tuple[dict, Any]] | None:
        """(draw, value) of `v`, a literal or an expression, for every draw of the keys it reads in which this
        parameter is drawn (its `when` holds); None where those draws are not few and fixed. An expression
        that fails for one of them is refused now, naming that draw (each trial drawing it would fail)."""
        if _known(v):
            return [({}, _resolve(v, {}))]
        names = v.names | (self.when.names if self.when is not None else set())
        found = envs(names - {"true", "false"})
        if found is None:
            return None
        out = []
        for env in found:
            try:
                if self.when is None or self.when(env):
                    out.append((env, v(env)))
            except ConfigError as e:
                raise ConfigError(f"{e.message} (when {_assigned(env)})", e.hint) from None
        return out

    def _element_envs(self, envs: Callable[[set[str]], list[dict] | None]) -> Callable[[set[str]], list[dict] | None]:
        """`envs` for this list's elements: the draws in which the list is drawn (its `when` holds), and with
        `length`/`element`, `i` below the length of each draw. None for an element that reads the list's
        own earlier elements."""
        def element_envs(names: set[str]) -> list[dict] | None:
            if self.name in names:
                return None
            indexed = "i" in names and self.element is not None
            extra = set(self.when.names) if self.when is not None else set()
            if indexed and isinstance(self.length, Expr):
                extra |= self.length.names
            found = envs((names - {"i"} if indexed else names) | (extra - {"true", "false"}))
            if found is None:
                return None
            out: list[dict] = []
            for env in found:
                try:
                    if self.when is not None and not self.when(env):
                        continue
                    n = _resolve(self.length, env) if indexed else None
                except ConfigError:  # refused by the list's own checks, or failing each such draw
                    continue
                if not indexed:
                    out.append(env)
                elif isinstance(n, int):
                    out += [{**env, "i": i} for i in range(min(n, MAX_LENGTH))]
                if len(out) > ENUM_MAX:
                    return None
            return out

        return element_envs

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
            return _resolve(self.value, env)
        if self.kind == "list":
            if self.elements:
                return [e.sample(trial, env, grid) for e in self.elements]
            n = _count(_resolve(self.length, env), self.name)
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
            if not _known(self.low, self.high, self.step):
                raise ConfigError(f"{self.name}: the grid sampler needs fixed values; this range depends on "
                                  "other keys", "Give it `choices`, or use the tpe or random sampler.")
            low, high, step = self._check_bounds({}, self.name)
            if self.kind == "float" and step is None:
                raise ConfigError(f"{self.name}: the grid sampler cannot enumerate a continuous range",
                                  "Give it `choices` or a `step`.")
            step = step or 1
            count = int(math.floor((high - low) / step + 1e-9)) + 1
            if count > GRID_MAX:
                raise ConfigError(f"{self.name}: {count} grid values is too many (most {GRID_MAX})")
            return [low + k * step if self.kind == "int" else round(low + k * step, 12) for k in range(count)]
        raise ConfigError(f"{self.name}: cannot be enumerated for a grid")

    def grid_space(self) -> dict[str, list]:
        """{optuna name: values} for the grid sampler."""
        if self.kind == "value":
            return {}
        if self.kind == "list":
            if self.elements:
                out: dict[str, list] = {}
                for e in self.elements:
                    out.update(e.grid_space())
                return out
            if not _known(self.length):
                raise ConfigError(f"{self.name}: the grid sampler needs a fixed length (not '{self.length.text}')",
                                  "Give the list a fixed length, or use the tpe or random sampler.")
            out = {}
            for i in range(_count(_resolve(self.length, {}), self.name)):
                el = Param(**{**self.element.__dict__, "name": f"{self.name}[{i}]"})
                out.update(el.grid_space())
            return out
        return {self.name: self.grid_values()}


# ----------------------------------------------------------------------------------------- spaces

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
                                  "Search fewer values, or use the tpe or random sampler.")
        return space

    def grid_size(self) -> int:
        return math.prod(len(values) for values in self.grid().values())

    def keys(self) -> list[str]:
        return [p.name for p in self.params if not p.helper]

    def check_keys(self, known: set[str], model: str) -> None:
        """Every searched or fixed key must be a config key of the model or of the training settings."""
        import difflib

        for key in [*self.keys(), *self.fixed]:
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.6)
                raise ConfigError(f"{self.source}: '{key}' is not a config key of {model}",
                                  (f"Did you mean: {', '.join(close)}? " if close else "")
                                  + "A parameter that only feeds others needs `helper = true`; "
                                    f"`zoo info {model}` lists the keys.")
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
    if search.get("sampler", "tpe") not in SAMPLERS:
        raise ConfigError(f"{source}: unknown sampler '{search['sampler']}'", f"Use one of {', '.join(SAMPLERS)}.")
    if search.get("pruner", "auto") not in PRUNERS:
        raise ConfigError(f"{source}: unknown pruner '{search['pruner']}'", f"Use one of {', '.join(PRUNERS)}.")
    from zoo.search.cv import REDUCE

    if objective.get("reduce", "best") not in REDUCE:
        raise ConfigError(f"{source}: unknown reduce '{objective['reduce']}'", f"Use one of {', '.join(REDUCE)}.")
    params: list[Param] = []
    defined: set[str] = set()
    for name, spec in data.get("params", {}).items():
        p = Param.parse(name, spec, source)
        missing = p.names() - defined - {"i", name, "true", "false"}
        if missing:
            raise ConfigError(f"{source}: {name} uses {', '.join(sorted(missing))}, which is not defined above it",
                              "Keys are sampled in file order: define a key before the keys that use it.")
        params.append(p)
        defined.add(name)
    if not params:
        raise ConfigError(f"{source}: [params] lists nothing to search")
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
