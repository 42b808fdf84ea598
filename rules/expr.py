"""Rule expressions, parsed once and compiled into closures: no eval of user text.

The language is a small subset of Python's expression syntax: point names, numbers, strings,
true/false, arithmetic, comparisons (chains too), `in` a list, `and`/`or`/`not`, and four
functions that look beyond the latest values:

- `rate(point, 5m)`: the point's change per minute over the window; unknown until the readings
  in the window span at least half of it;
- `count(condition, 1h)`: how many times `condition` (a bool point or a comparison) went from
  false to true within the window; unknown until the condition has had a known value;
- `stale(point)`: the point's latest reading is marked stale (no fresh value in time);
- `offline()`: the device's latest readings are marked no-communication.

A window is a duration (`500ms`, `30s`, `5m`, `2h`, `1d`, or plain seconds) and is allowed only
there, so that `level > 1.5m` cannot silently mean 90 seconds.

A point with no usable value (missing, or of bad quality) is *unknown*, and unknown propagates
the way it does in three-valued logic: `unknown and false` is false, `unknown or true` is true,
anything else that touches unknown is unknown. A condition that is unknown neither raises nor
clears an alarm; communication loss has rules of its own.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from facility.duration import parse_duration
from facility.errors import Invalid


class _Unknown:
    def __repr__(self) -> str:
        return "unknown"

    def __bool__(self) -> bool:
        raise TypeError("unknown has no truth value; test `is UNKNOWN`")


UNKNOWN: Any = _Unknown()
Values = Mapping[str, Any]


class Scope(Protocol):
    """What the functions read besides the latest values: one device's recent past and quality.
    The rule engine implements it, judging windows back from the time of the evaluation."""

    def rate(self, point: str, window_ns: int) -> Any: ...

    def count(self, key: str, window_ns: int) -> Any: ...

    def stale(self, point: str) -> Any: ...

    def offline(self) -> Any: ...


class _NoPast:
    """A scope without history or quality: every function is unknown."""

    def rate(self, point: str, window_ns: int) -> Any:
        return UNKNOWN

    def count(self, key: str, window_ns: int) -> Any:
        return UNKNOWN

    def stale(self, point: str) -> Any:
        return UNKNOWN

    def offline(self) -> Any:
        return UNKNOWN


NO_PAST: Scope = _NoPast()
Compiled = Callable[[Values, Scope], Any]

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
_USAGE = {
    "rate": "rate(point, window)",
    "count": "count(condition, window)",
    "stale": "stale(point)",
    "offline": "offline()",
}
_ARITY = {"rate": 2, "count": 2, "stale": 1, "offline": 0}
# A string literal (skipped) or a duration such as 5m that Python's grammar would refuse.
_DURATION = re.compile(r"""("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?<![\w.])(\d+(?:\.\d+)?(?:ms|s|m|h|d))(?![\w.])""")


class ExprError(Invalid):
    """An expression that cannot be compiled (invalid input, so still a ValueError); `column` is 1-based."""

    def __init__(self, message: str, column: int | None = None) -> None:
        self.column = column
        super().__init__(f"{message} (column {column})" if column else message)


@dataclass(frozen=True)
class Counter:
    """A `count(condition, window)`: the engine keeps the condition's rising edges under `key`."""

    key: str  # the condition's normalised text, shared by every count of the same condition
    fn: Compiled
    names: frozenset[str]
    window_ns: int


@dataclass(frozen=True)
class Comparison:
    """A point tested for equality with a text (`mode == "defrost"`, `mode in ["a", "b"]`): the
    loader checks the text against the labels of the point's enum, since a label the device can
    never send makes a condition that can never hold, and no run-time error would say so."""

    point: str
    label: str
    column: int  # 1-based, of the text


@dataclass(frozen=True)
class Expression:
    text: str
    names: frozenset[str]  # the points it reads, inside functions too
    fn: Compiled
    rates: frozenset[tuple[str, int]] = frozenset()  # (point, window ns) of each rate()
    counters: tuple[Counter, ...] = ()
    reads_quality: bool = False  # uses stale() or offline(): a rule about communication, not values
    labels: tuple[Comparison, ...] = ()  # texts compared with points, inside functions too

    def evaluate(self, values: Values, scope: Scope = NO_PAST) -> Any:
        return self.fn(values, scope)

    @property
    def windowed(self) -> bool:
        """Its value can change with time alone (a window moves on)."""
        return bool(self.rates or self.counters)


@dataclass
class _Builder:
    known: set[str] | None
    durations: dict[int, float]  # UTF-8 column of a duration literal -> seconds
    names: set[str] = field(default_factory=set)
    rates: set[tuple[str, int]] = field(default_factory=set)
    counters: list[Counter] = field(default_factory=list)
    reads_quality: bool = False
    labels: list[Comparison] = field(default_factory=list)


def compile_expr(text: str, known_names: set[str] | None = None) -> Expression:
    """Compile `text`; with `known_names`, a name outside it is an error (a misspelt point)."""
    source, durations = _durations(text.strip())
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise ExprError(f"syntax error: {exc.msg}", exc.offset) from None
    b = _Builder(known_names, durations)
    fn = _compile(tree.body, b)
    return Expression(
        text, frozenset(b.names), fn, frozenset(b.rates), tuple(b.counters), b.reads_quality, tuple(b.labels)
    )


def _durations(text: str) -> tuple[str, dict[int, float]]:
    """Replace each duration literal by zeros of the same length, so that Python parses it and
    columns stay true; return the text and the durations by the column of their zeros."""
    found: dict[int, float] = {}

    def one(match: re.Match[str]) -> str:
        if match.group(1):
            return match.group(0)
        found[len(text[: match.start()].encode())] = parse_duration(match.group(2))
        return "0" * len(match.group(2))

    return _DURATION.sub(one, text), found


def _compile(node: ast.AST, b: _Builder) -> Compiled:
    if isinstance(node, ast.Constant) and node.col_offset in b.durations:
        raise ExprError("a duration is allowed only as the window of rate() or count()", node.col_offset + 1)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str):
        value = node.value
        return lambda _v, _s: value
    if isinstance(node, ast.Name):
        return _name(node, b)
    if isinstance(node, ast.Call):
        return _call(node, b)
    if isinstance(node, ast.List | ast.Tuple):
        if all(isinstance(e, ast.Constant) and e.col_offset not in b.durations for e in node.elts):
            constants = tuple(e.value for e in node.elts if isinstance(e, ast.Constant))
            return lambda _v, _s: constants
        items = [_compile(e, b) for e in node.elts]
        return lambda v, s: tuple(i(v, s) for i in items)
    if isinstance(node, ast.BoolOp):
        parts = [_compile(p, b) for p in node.values]
        return _and(parts) if isinstance(node.op, ast.And) else _or(parts)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.USub):
        inner = _compile(node.operand, b)
        negate: Callable[[Any], Any] = operator.not_ if isinstance(node.op, ast.Not) else operator.neg
        return lambda v, s: _apply(negate, inner(v, s))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _binary(_BINARY[type(node.op)], _compile(node.left, b), _compile(node.right, b))
    if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
        operands = [_compile(node.left, b)] + [_compile(c, b) for c in node.comparators]
        ops = [_COMPARE[type(op)] for op in node.ops]
        _collect_labels(node, b)
        return _compare(ops[0], *operands) if len(ops) == 1 else _chain(ops, operands)
    raise ExprError(f"{type(node).__name__} is not allowed in a rule expression", getattr(node, "col_offset", -1) + 1)


def _collect_labels(node: ast.Compare, b: _Builder) -> None:
    """Record each point compared for (in)equality or membership with string constants."""
    operands = [node.left, *node.comparators]
    for k, op in enumerate(node.ops):
        if not isinstance(op, ast.Eq | ast.NotEq | ast.In | ast.NotIn):
            continue
        for name, other in ((operands[k], operands[k + 1]), (operands[k + 1], operands[k])):
            if not isinstance(name, ast.Name) or name.id in _CONSTANTS:
                continue
            texts = other.elts if isinstance(other, ast.List | ast.Tuple) else [other]
            for text in texts:
                if isinstance(text, ast.Constant) and isinstance(text.value, str):
                    b.labels.append(Comparison(name.id, text.value, text.col_offset + 1))


def _name(node: ast.Name, b: _Builder) -> Compiled:
    if node.id in _CONSTANTS:
        constant = _CONSTANTS[node.id]
        return lambda _v, _s: constant
    key = _point(node, b)

    def get(v: Values, _s: Scope) -> Any:
        value = v.get(key)
        return UNKNOWN if value is None else value

    return get


def _point(node: ast.AST, b: _Builder, usage: str = "a function") -> str:
    """The point a name refers to, checked against the known points."""
    if not isinstance(node, ast.Name) or node.id in _CONSTANTS:
        raise ExprError(f"{usage} takes a point name first", getattr(node, "col_offset", -1) + 1)
    if b.known is not None and node.id not in b.known:
        raise ExprError(f"unknown point {node.id!r}", node.col_offset + 1)
    b.names.add(node.id)
    return node.id


def _window(node: ast.Call, usage: str, b: _Builder) -> int:
    """The window (second argument) of rate() or count(), in ns."""
    arg = node.args[1]
    seconds: object = b.durations.get(arg.col_offset) if isinstance(arg, ast.Constant) else None
    if seconds is None and isinstance(arg, ast.Constant) and type(arg.value) in (int, float):
        seconds = arg.value
    if not isinstance(seconds, int | float) or seconds <= 0:
        raise ExprError(f"the window of {usage} must be a positive duration such as 5m", arg.col_offset + 1)
    return int(seconds * 1e9)


def _call(node: ast.Call, b: _Builder) -> Compiled:
    name = node.func.id if isinstance(node.func, ast.Name) else ""
    column = node.col_offset + 1
    usage = _USAGE.get(name)
    if usage is None:
        raise ExprError(f"unknown function; the functions are {', '.join(_USAGE.values())}", column)
    if node.keywords or len(node.args) != _ARITY[name]:
        n = _ARITY[name]
        raise ExprError(f"{name}() takes {n} argument{'s' if n != 1 else ''}: write {usage}", column)
    if name == "offline":
        b.reads_quality = True
        return lambda _v, s: s.offline()
    if name == "stale":
        point = _point(node.args[0], b, usage)
        b.reads_quality = True
        return lambda _v, s: s.stale(point)
    window = _window(node, usage, b)
    if name == "rate":
        point = _point(node.args[0], b, usage)
        b.rates.add((point, window))
        return lambda _v, s: s.rate(point, window)
    inner = _Builder(b.known, b.durations)
    fn = _compile(node.args[0], inner)
    if inner.rates or inner.counters:
        raise ExprError("count() counts a point or a comparison, not rate() or count()", column)
    key = ast.unparse(node.args[0])
    b.names |= inner.names
    b.reads_quality |= inner.reads_quality
    b.labels.extend(inner.labels)
    b.counters.append(Counter(key, fn, frozenset(inner.names), window))
    return lambda _v, s: s.count(key, window)


def _apply(fn: Callable[[Any], Any], value: Any) -> Any:
    return UNKNOWN if value is UNKNOWN else fn(value)


def _binary(fn: Callable[[Any, Any], Any], left: Compiled, right: Compiled) -> Compiled:
    def run(v: Values, s: Scope) -> Any:
        a, b = left(v, s), right(v, s)
        if a is UNKNOWN or b is UNKNOWN:
            return UNKNOWN
        try:
            return fn(a, b)
        except (TypeError, ZeroDivisionError):
            return UNKNOWN

    return run


def _compare(op: Callable[[Any, Any], bool], left: Compiled, right: Compiled) -> Compiled:
    """One comparison, the common case (`level > 0.8`), without the generality of a chain."""

    def run(v: Values, s: Scope) -> Any:
        a = left(v, s)
        if a is UNKNOWN:
            return UNKNOWN
        b = right(v, s)
        if b is UNKNOWN:
            return UNKNOWN
        try:
            return op(a, b)
        except TypeError:  # e.g. a string compared with a number: the data is not what the rule expects
            return UNKNOWN

    return run


def _chain(ops: list[Callable[[Any, Any], bool]], operands: list[Compiled]) -> Compiled:
    def run(v: Values, s: Scope) -> Any:
        values = [o(v, s) for o in operands]
        if any(x is UNKNOWN for x in values):
            return UNKNOWN
        try:
            return all(op(values[i], values[i + 1]) for i, op in enumerate(ops))
        except TypeError:  # e.g. a string compared with a number: the data is not what the rule expects
            return UNKNOWN

    return run


def _and(parts: list[Compiled]) -> Compiled:
    def run(v: Values, s: Scope) -> Any:
        unknown = False
        for part in parts:
            value = part(v, s)
            if value is UNKNOWN:
                unknown = True
            elif not value:
                return False
        return UNKNOWN if unknown else True

    return run


def _or(parts: list[Compiled]) -> Compiled:
    def run(v: Values, s: Scope) -> Any:
        unknown = False
        for part in parts:
            value = part(v, s)
            if value is UNKNOWN:
                unknown = True
            elif value:
                return True
        return UNKNOWN if unknown else False

    return run
