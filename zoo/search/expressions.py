"""The space language's expressions (zoo.search.space): `Expr`, a safe evaluator of the small arithmetic
over earlier keys that bounds, lengths, `value` and `when` may use, the bounds of what it computes (`checked`,
`Beyond`, the MAX_* limits and LIMITS_HINT), and the helpers that read a spec's literal or expression values.
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Any

from zoo.errors import ConfigError

# What an expression may compute (see zoo.search.space's docstring).
MAX_TEXT = 1000   # characters of one expression
MAX_DEPTH = 50    # nesting of its syntax tree
MAX_INT_BITS = 64  # integers within ±2**64
MAX_ITEMS = 1000  # items of a list (nested ones counted) or characters of a string
MAX_ROUND = 100   # |ndigits| of round(): round(5, -10**18) would compute 10**(10**18)
LIMITS_HINT = (f"Space expressions compute integers within ±2**{MAX_INT_BITS}, finite floats, and lists and "
               f"strings of up to {MAX_ITEMS} items.")


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


def number(v: Any) -> bool:
    return isinstance(v, (int, float))


def _binop(op: type, a: Any, b: Any) -> Any:
    """a <op> b between numbers; + joins two strings or two lists; * repeats one. Refused before
    computing a result beyond the language's bounds (pow and repetition could run for ever)."""
    if number(a) and number(b):
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


def spec_value(v: Any, where: str) -> Any:
    """A literal stays itself; a string in a numeric slot is an expression."""
    return Expr(v, where) if isinstance(v, str) else literal(v, where)


def resolve(v: Any, env: dict[str, Any]) -> Any:
    if isinstance(v, Expr):
        return v.value if v.constant else v(env)
    return v


def known(*values: Any) -> bool:
    """True when the values do not depend on sampled keys (literals and constant expressions)."""
    return not any(isinstance(v, Expr) and not v.constant for v in values)

