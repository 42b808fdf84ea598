"""Unit tests for rules, in the spirit of promtool's rule tests.

A test file names a site and rule files (paths relative to the test file) and lists tests: input
series per device point, sampled every `interval` from time 0, and what must be active at given
times. An engineer can then change a rule and know at once what it now raises, without a plant.

A series is written as in promtool: `0.5 0.4 0.2x3 _ 0.3`. `axN` is `a` N+1 times, `a+bxN` and
`a-bxN` step by b, `_` is no sample (`_xN`: N of them), `stale` a sample of stale quality;
`true`/`false` are booleans and strings are quoted: `"dry_run"` or `"dry_run"x2`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator

from facility.duration import Duration
from facility.model import Quality, Reading, Value
from facility.site import Site, load_site
from facility.yamlfile import ConfigError, Loc, Problem, YamlDoc, load_yaml, validate
from rules.backtest import span
from rules.engine import Change, Engine
from rules.ruleset import Rule, load_rules, rule_paths

Step = tuple[Value, Quality] | None  # one step of a series; None: no sample at that step
_TOKEN = re.compile(r'"[^"]*"(?:x\d+)?|\'[^\']*\'(?:x\d+)?|\S+')
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_EXPANDING = re.compile(rf"^({_NUMBER})(?:([-+])({_NUMBER}))?x(\d+)$")
_WORDS: dict[str, Step] = {"true": (True, Quality.GOOD), "false": (False, Quality.GOOD), "stale": (None, Quality.STALE)}


def parse_series(text: object) -> list[Step]:
    """The samples a series describes; raises ValueError naming the token it cannot read."""
    if isinstance(text, bool | int | float):
        return [(text, Quality.GOOD)]
    if not isinstance(text, str):
        raise ValueError('expected a series such as "0.5 0.4 0.2x3 _ 0.3"')
    out: list[Step] = []
    for token in _TOKEN.findall(text):
        out.extend(_expand(token))
    if not out:
        raise ValueError("the series is empty")
    return out


def _expand(token: str) -> list[Step]:
    if token[0] in "\"'":
        quoted, _, times = token[1:].partition(token[0])
        return [(quoted, Quality.GOOD)] * (int(times[1:]) + 1 if times else 1)
    word, _, times = token.partition("x")
    if word == "_" or word in _WORDS:
        if times and not times.isdigit():
            raise ValueError(f"{token!r}: write the count after x as a number, e.g. {word}x3")
        if word == "_":
            return [None] * (int(times) if times else 1)
        return [_WORDS[word]] * (int(times) + 1 if times else 1)
    match = _EXPANDING.match(token)
    if match:
        start, sign, step, count = match.groups()
        if not step:
            return [(_number(start), Quality.GOOD)] * (int(count) + 1)
        first, delta = Decimal(start), Decimal(step) * (-1 if sign == "-" else 1)  # 0.2+0.05x2 ends on 0.3 exactly
        return [(float(first + delta * i), Quality.GOOD) for i in range(int(count) + 1)]
    if re.fullmatch(_NUMBER, token):
        return [(_number(token), Quality.GOOD)]
    raise ValueError(f"{token!r} is not a sample: write a number, true, false, _, stale or a quoted string")


def _number(text: str) -> int | float:
    return int(text) if re.fullmatch(r"[-+]?\d+", text) else float(text)


Series = Annotated[list[Step], PlainValidator(parse_series)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Fired(_Strict):
    """An active condition: a rule on a device; `suppressed` when inhibited by design."""

    rule: str
    device: str
    suppressed: bool = False

    def __str__(self) -> str:
        return f"{{rule: {self.rule}, device: {self.device}{', suppressed: true' if self.suppressed else ''}}}"


class Expect(_Strict):
    """Exactly what is active at `at`: alarms and tasks left out mean none."""

    at: Duration
    alarms: list[Fired] = Field(default_factory=list)
    tasks: list[Fired] = Field(default_factory=list)


class Case(_Strict):
    name: str
    interval: Annotated[Duration, Field(gt=0)] = 60.0
    input: dict[str, dict[str, Series]]
    expect: list[Expect] = Field(min_length=1)


class _TestFile(_Strict):
    site: str
    rules: list[str] | None = None  # rule files or folders; default: the site's own
    tests: list[Case] = Field(min_length=1)


@dataclass(frozen=True)
class Suite:
    """A loaded test file: its cases and the rules they run against."""

    path: Path
    rules: list[Rule]
    cases: list[Case]


@dataclass(frozen=True)
class Mismatch:
    """What was active at a time differs from what the test expects."""

    at: float  # seconds from the start of the test
    kind: Literal["alarms", "tasks"]
    expected: frozenset[Fired]
    got: frozenset[Fired]

    def __str__(self) -> str:
        def listed(items: frozenset[Fired]) -> str:
            return "[" + ", ".join(sorted(map(str, items))) + "]"

        return f"at {span(self.at)}, {self.kind}:\n  expected: {listed(self.expected)}\n  got:      {listed(self.got)}"


def rule_files(paths: Sequence[Path]) -> list[Path]:
    """Files named, and the *.yaml files of folders named, in order."""
    out: list[Path] = []
    for path in paths:
        out.extend(sorted(path.glob("*.yaml")) if path.is_dir() else [path])
    return out


def load_suite(path: Path) -> Suite:
    """Load a test file, its site and its rules; every problem names file, line and field."""
    doc = load_yaml(path)
    parsed = validate(_TestFile, doc)
    base = path.parent
    named: list[tuple[Loc, str]] = [(("site",), parsed.site)] + [
        (("rules", i), p) for i, p in enumerate(parsed.rules or [])
    ]
    missing = [doc.problem(loc, f"no such file or folder: {base / p}") for loc, p in named if not (base / p).exists()]
    if missing:
        raise ConfigError(missing)
    site = load_site(base / parsed.site)
    files = rule_files([base / p for p in parsed.rules]) if parsed.rules is not None else rule_paths(site)
    rules = load_rules(site, files)
    problems = [p for i, case in enumerate(parsed.tests) for p in _case_problems(doc, ("tests", i), case, site, rules)]
    if problems:
        raise ConfigError(problems)
    return Suite(path, rules, parsed.tests)


def _case_problems(doc: YamlDoc, loc: Loc, case: Case, site: Site, rules: list[Rule]) -> list[Problem]:
    """Devices and points that the site lacks, and expected rules that are not loaded: typos that
    would otherwise only show up as a puzzling failure."""
    problems = []
    devices = {d.id: d for d in site.devices}
    for device_id, points in case.input.items():
        device = devices.get(device_id)
        if device is None:
            problems.append(doc.problem((*loc, "input", device_id), f"no device {device_id!r} in the site"))
            continue
        known = site.profile_of(device).points
        for point in points:
            if point not in known:
                message = f"{device_id} has no point {point!r} (known: {', '.join(sorted(known))})"
                problems.append(doc.problem((*loc, "input", device_id, point), message))
    ids = {r.id for r in rules}
    for k, expect in enumerate(case.expect):
        for kind in ("alarms", "tasks"):
            for j, fired in enumerate(getattr(expect, kind)):
                where = (*loc, "expect", k, kind, j)
                if fired.rule not in ids:
                    problems.append(doc.problem((*where, "rule"), f"no rule {fired.rule!r} is loaded"))
                if fired.device not in devices:
                    problems.append(doc.problem((*where, "device"), f"no device {fired.device!r} in the site"))
    return problems


def run_case(rules: Sequence[Rule], case: Case) -> list[Mismatch]:
    """Feed the case's series through an engine and compare what is active at each expected time."""
    active: dict[tuple[str, str], Change] = {}

    def changed(change: Change) -> None:
        if change.active:
            active[(change.rule.id, change.device)] = change
        else:
            active.pop((change.rule.id, change.device), None)

    engine = Engine(rules, changed)
    step = int(case.interval * 1e9)
    readings: dict[int, list[Reading]] = {}
    for device, points in case.input.items():
        for point, series in points.items():
            for i, sample in enumerate(series):
                if sample is not None:
                    readings.setdefault(i * step, []).append(Reading(device, point, sample[0], sample[1], i * step))
    expects: dict[int, list[Expect]] = {}
    for expect in case.expect:
        expects.setdefault(int(expect.at * 1e9), []).append(expect)
    end = max(readings.keys() | expects.keys())
    mismatches = []
    for t in sorted(readings.keys() | expects.keys() | set(range(0, end, step))):  # ticks every interval too
        engine.tick(t)
        engine.handle(sorted(readings.get(t, []), key=lambda r: r.device))
        for expect in expects.get(t, []):
            mismatches += _compare(expect, active.values())
    return mismatches


_KINDS: tuple[tuple[Literal["alarms", "tasks"], tuple[str, ...]], ...] = (
    ("alarms", ("alarm", "both")),
    ("tasks", ("task", "both")),
)


def _compare(expect: Expect, active: Iterable[Change]) -> list[Mismatch]:
    out = []
    for kind, outcomes in _KINDS:
        got = frozenset(
            Fired(rule=c.rule.id, device=c.device, suppressed=c.suppressed)
            for c in active
            if getattr(c.rule.spec, "outcome", "alarm") in outcomes
        )
        expected = frozenset(getattr(expect, kind))
        if got != expected:
            out.append(Mismatch(expect.at, kind, expected, got))
    return out
