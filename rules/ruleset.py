"""Rule files: parse, validate against the site's devices and profiles, compile.

A rule file holds `rules:`, a list of rules. Every problem found is reported with its file,
line and field, and nothing of a file with problems is used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from facility.duration import Duration
from facility.model import Priority
from facility.site import Device, Site
from facility.yamlfile import ConfigError, Problem, YamlDoc, load_yaml, validate
from rules.expr import ExprError, Expression, compile_expr

LIBRARY_DIR = Path(__file__).parent / "library"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Text(_Strict):
    """A text in both languages of the desk; placeholders like {device_name} or {outlet_pressure:.2f}."""

    zh: str
    en: str


class DeviceMatch(_Strict):
    """Which devices a rule watches; every given criterion must match."""

    types: list[str] = Field(default_factory=list)
    ids: list[str] = Field(default_factory=list)
    buildings: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)

    def matches(self, device: Device) -> bool:
        return (
            (not self.types or device.type in self.types)
            and (not self.ids or device.id in self.ids)
            and (not self.buildings or device.location.building in self.buildings)
            and (not self.tags or bool(set(self.tags) & set(device.tags)))
        )


class RuleSpec(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    title: Text
    message: Text | None = None
    devices: DeviceMatch
    when: str
    for_: Duration = Field(default=0.0, alias="for")
    clear: str | None = None  # default: `when` no longer holds
    priority: Priority
    outcome: Literal["alarm"] = "alarm"


class RuleFile(_Strict):
    rules: list[RuleSpec]


@dataclass(frozen=True)
class Rule:
    """A compiled rule, bound to the devices it watches."""

    spec: RuleSpec
    when: Expression
    clear: Expression | None
    devices: tuple[str, ...]
    source: str  # file:line, to explain where a rule came from
    shown: frozenset[str] = frozenset()  # points the title and message show

    @property
    def reads(self) -> frozenset[str]:
        """Points whose changes the condition depends on."""
        return self.when.names | (self.clear.names if self.clear else frozenset())

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def for_ns(self) -> int:
        return int(self.spec.for_ * 1e9)


_PLACEHOLDER = re.compile(r"\{(\w+)(?::([^{}]*))?\}")


def render(template: str, values: dict[str, Any]) -> str:
    """Fill {name} and {name:spec} from `values`; no attribute or index access, unknown names stay."""

    def one(match: re.Match[str]) -> str:
        name, spec = match.group(1), match.group(2) or ""
        if name not in values or values[name] is None:
            return match.group(0) if name not in values else "?"
        try:
            return format(values[name], spec)
        except (ValueError, TypeError):
            return str(values[name])

    return _PLACEHOLDER.sub(one, template)


def rule_paths(site: Site) -> list[Path]:
    """Rule files in the order they load: the library (unless disabled), then the site's own."""
    sources = ([LIBRARY_DIR] if site.use_rule_library else []) + [site.path(p) for p in site.rules]
    paths: list[Path] = []
    for source in sources:
        paths.extend(sorted(source.glob("*.yaml")) if source.is_dir() else [source])
    return paths


def load_rules(site: Site, paths: list[Path] | None = None) -> list[Rule]:
    """Load and compile rule files for `site`. A later rule with the same id replaces an earlier one,
    so a site overrides a library rule by redefining its id."""
    problems: list[Problem] = []
    by_id: dict[str, Rule] = {}
    for path in paths if paths is not None else rule_paths(site):
        try:
            for rule in _load_file(path, site):
                by_id[rule.id] = rule
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return list(by_id.values())


def _load_file(path: Path, site: Site) -> list[Rule]:
    doc = load_yaml(path)
    parsed = validate(RuleFile, doc)
    problems: list[Problem] = []
    out: list[Rule] = []
    seen: set[str] = set()
    for i, spec in enumerate(parsed.rules):
        loc = ("rules", i)
        if spec.id in seen:
            problems.append(doc.problem((*loc, "id"), f"rule id {spec.id!r} appears twice in this file"))
        seen.add(spec.id)
        devices = [d for d in site.devices if spec.devices.matches(d)]
        points: set[str] = set()
        for device in devices:
            points.update(site.profile_of(device).points)
        try:
            when = _compile(doc, (*loc, "when"), spec.when, points if devices else None)
            clear = _compile(doc, (*loc, "clear"), spec.clear, points if devices else None) if spec.clear else None
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        texts = [spec.title.zh, spec.title.en] + ([spec.message.zh, spec.message.en] if spec.message else [])
        shown = frozenset(m.group(1) for text in texts for m in _PLACEHOLDER.finditer(text)) & points
        out.append(Rule(spec, when, clear, tuple(d.id for d in devices), f"{path}:{doc.line_of(loc)}", shown))
    if problems:
        raise ConfigError(problems)
    return out


def _compile(doc: YamlDoc, loc: tuple[str | int, ...], text: str, known: set[str] | None) -> Expression:
    try:
        return compile_expr(text, known)
    except ExprError as exc:
        raise ConfigError([doc.problem(loc, str(exc))]) from None
