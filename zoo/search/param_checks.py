"""Checks of a searched parameter's values: a searched list's length, and (before a search) `KeyChecks`,
the part of `Param` that refuses a value its config key cannot take, for every draw of the keys it reads.
"""

from __future__ import annotations

import json
import typing
from typing import Any, Callable

from zoo.errors import ConfigError
from zoo.runs.config import check_range, coerce, describe_range, type_name
from zoo.search.expressions import Expr, known, number, resolve

MAX_LENGTH = 256  # elements of a searched list
ENUM_MAX = 10_000  # draws of the keys an expression reads, each checked before the first trial


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


def checked_length(n: Any, where: str) -> int:
    """A searched list's length: a whole number from 0 to MAX_LENGTH."""
    if isinstance(n, float) and n.is_integer():
        n = int(n)
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ConfigError(f"{where}: length is {n!r}, not a count")
    if n > MAX_LENGTH:
        raise ConfigError(f"{where}: length {n} is more than a searched list may have ({MAX_LENGTH})")
    return n


class KeyChecks:
    """`Param`'s checks against the config key it sets (`check_key`), kept apart from its parsing and
    drawing (zoo.search.params)."""

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
                                  f"{'are' if many else 'is'} not {'values' if many else 'a value'} "
                                  f"that {f.name} takes",
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
        if scalar is float and self.kind == "int" and self.inferred:  # low = 0, high = 1 drew only 0 and 1
            raise ConfigError(f"{w}: integer bounds draw whole numbers only, and {f.name} takes fractions",
                              f"{_takes(f, tp)}. Give float bounds (low = 0.0, high = 1.0); or type = \"int\" "
                              "for whole numbers only.")
        unknown = False
        for label in ("low", "high"):
            bound = getattr(self, label)
            outcomes = self._outcomes(bound, envs)
            unknown = unknown or outcomes is None
            for env, value in outcomes or []:
                if number(value) and not isinstance(value, bool) and not check_range(value, f):
                    raise ConfigError(f"{w}: {_said(label, bound, value, env)} is outside the range of {f.name}",
                                      f"{_takes(f, tp)}. Give bounds within that range"
                                      + (" for every draw of the keys they read." if env else "."))
        return [f.name] if unknown else []

    def _outcomes(self, v: Any, envs: Callable[[set[str]], list[dict] | None]) -> list[tuple[dict, Any]] | None:
        """(draw, value) of `v`, a literal or an expression, for every draw of the keys it reads in which this
        parameter is drawn (its `when` holds); None where those draws are not few and fixed. An expression
        that fails for one of them is refused now, naming that draw (each trial drawing it would fail)."""
        if known(v):
            return [({}, resolve(v, {}))]
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
                    n = resolve(self.length, env) if indexed else None
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

