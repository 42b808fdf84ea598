"""Rule expressions, parsed once and compiled into closures: no eval of user text.

The language is a small subset of Python's expression syntax: point names, numbers, strings,
true/false, arithmetic, comparisons (chains too), `in` a list, and `and`/`or`/`not`.

A point with no usable value (missing, or of bad quality) is *unknown*, and unknown propagates
the way it does in three-valued logic: `unknown and false` is false, `unknown or true` is true,
anything else that touches unknown is unknown. A condition that is unknown neither raises nor
clears an alarm; communication loss has rules of its own.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class _Unknown:
    def __repr__(self) -> str:
        return "unknown"

    def __bool__(self) -> bool:
        raise TypeError("unknown has no truth value; test `is UNKNOWN`")


UNKNOWN: Any = _Unknown()
Values = Mapping[str, Any]
Compiled = Callable[[Values], Any]

_CONSTANTS = {"true": True, "false": False, "True": True, "False": False}
_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
}
_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


class ExprError(ValueError):
    """An expression that cannot be compiled; `column` is 1-based."""

    def __init__(self, message: str, column: int | None = None) -> None:
        self.column = column
        super().__init__(f"{message} (column {column})" if column else message)


@dataclass(frozen=True)
class Expression:
    text: str
    names: frozenset[str]  # the points it reads
    evaluate: Compiled


def compile_expr(text: str, known_names: set[str] | None = None) -> Expression:
    """Compile `text`; with `known_names`, a name outside it is an error (a misspelt point)."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExprError(f"syntax error: {exc.msg}", exc.offset) from None
    names: set[str] = set()
    fn = _compile(tree.body, names, known_names)
    return Expression(text, frozenset(names), fn)


def _compile(node: ast.AST, names: set[str], known: set[str] | None) -> Compiled:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str):
        value = node.value
        return lambda _v: value
    if isinstance(node, ast.Name):
        return _name(node, names, known)
    if isinstance(node, ast.List | ast.Tuple):
        items = [_compile(e, names, known) for e in node.elts]
        return lambda v: tuple(i(v) for i in items)
    if isinstance(node, ast.BoolOp):
        parts = [_compile(p, names, known) for p in node.values]
        return _and(parts) if isinstance(node.op, ast.And) else _or(parts)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.USub):
        inner = _compile(node.operand, names, known)
        negate: Callable[[Any], Any] = operator.not_ if isinstance(node.op, ast.Not) else operator.neg
        return lambda v: _apply(negate, inner(v))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _binary(_BINARY[type(node.op)], _compile(node.left, names, known), _compile(node.right, names, known))
    if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
        operands = [_compile(node.left, names, known)] + [_compile(c, names, known) for c in node.comparators]
        return _chain([_COMPARE[type(op)] for op in node.ops], operands)
    what = type(node).__name__
    hint = " (calls are not allowed)" if isinstance(node, ast.Call) else ""
    raise ExprError(f"{what} is not allowed in a rule expression{hint}", getattr(node, "col_offset", -1) + 1)


def _name(node: ast.Name, names: set[str], known: set[str] | None) -> Compiled:
    if node.id in _CONSTANTS:
        constant = _CONSTANTS[node.id]
        return lambda _v: constant
    if known is not None and node.id not in known:
        raise ExprError(f"unknown point {node.id!r}", node.col_offset + 1)
    names.add(node.id)
    key = node.id

    def get(v: Values) -> Any:
        value = v.get(key)
        return UNKNOWN if value is None else value

    return get


def _apply(fn: Callable[[Any], Any], value: Any) -> Any:
    return UNKNOWN if value is UNKNOWN else fn(value)


def _binary(fn: Callable[[Any, Any], Any], left: Compiled, right: Compiled) -> Compiled:
    def run(v: Values) -> Any:
        a, b = left(v), right(v)
        if a is UNKNOWN or b is UNKNOWN:
            return UNKNOWN
        try:
            return fn(a, b)
        except (TypeError, ZeroDivisionError):
            return UNKNOWN

    return run


def _chain(ops: list[Callable[[Any, Any], bool]], operands: list[Compiled]) -> Compiled:
    def run(v: Values) -> Any:
        values = [o(v) for o in operands]
        if any(x is UNKNOWN for x in values):
            return UNKNOWN
        try:
            return all(op(values[i], values[i + 1]) for i, op in enumerate(ops))
        except TypeError:  # e.g. a string compared with a number: the data is not what the rule expects
            return UNKNOWN

    return run


def _and(parts: list[Compiled]) -> Compiled:
    def run(v: Values) -> Any:
        unknown = False
        for part in parts:
            value = part(v)
            if value is UNKNOWN:
                unknown = True
            elif not value:
                return False
        return UNKNOWN if unknown else True

    return run


def _or(parts: list[Compiled]) -> Compiled:
    def run(v: Values) -> Any:
        unknown = False
        for part in parts:
            value = part(v)
            if value is UNKNOWN:
                unknown = True
            elif value:
                return True
        return UNKNOWN if unknown else False

    return run
