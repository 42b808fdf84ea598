"""Rule files: parse, validate against the site's devices and profiles, compile.

A rule file holds `rules:`, a list of rules. Every problem found is reported with its file,
line and field, and nothing of a file with problems is used. One rule:

    - id: lighting-circuit-off            # ASCII id; a later file redefining it overrides it
      title: {zh: "...", en: "{device_name}: circuit 1 off"}   # {device_name} {building}
      message: {zh: "...", en: "..."}     # {location_floor} {room} and point values {lux:.0f}
                                          # {points_in:fire}: the points `fire`, by label;
                                          # it grows while active (rules.engine: spread)
      devices: {types: [...], ids: [...], buildings: [...], tags: [...]}
      when: circuit_1_command and not circuit_1_on   # see rules.expr for the language
      for: 30s                            # must hold this long before it is active
      clear: circuit_1_on                 # default: `when` no longer holds
      unless: not running                 # inhibition on the device's own points
      suppressed_by: {rule: fire-zone-alarm, scope: building}   # device | building | site; or a list
      priority: emergency | high | medium | low
      outcome: alarm | task | both        # default alarm
      task: {kind: repair, team: electricians, sla: 4h, checklist: [{zh: "...", en: "..."}]}
      plan: fire                          # an emergency plan id; priority emergency only
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from facility.duration import Duration
from facility.model import Priority
from facility.site import ID_PATTERN, Device, Site
from facility.yamlfile import ConfigError, ConfigWarning, Loc, Problem, YamlDoc, load_yaml, validate
from rules.expr import ExprError, Expression, compile_expr
from rules.plans import load_plans
from rules.texts import PLACEHOLDER, POINTS_IN, TEXT_FIELDS, FileText, point_names, render, text_values

LIBRARY_DIR = Path(__file__).parent / "library"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


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


class Suppressor(_Strict):
    """While rule `rule` is active on a device in `scope` of this rule's device, this rule is
    suppressed by design (a fire in a building suppresses its lighting alarms)."""

    rule: str
    scope: Literal["device", "building", "site"] = "device"


TaskKind = Literal["inspection", "repair", "preventive", "emergency", "complaint"]


class TaskSpec(_Strict):
    """The work order a rule with outcome `task` or `both` opens."""

    kind: TaskKind | None = None  # filled from the priority: emergency -> emergency, else repair
    team: str | None = Field(default=None, min_length=1)  # a team or vendor id
    sla: Duration | None = None  # due this long after the task opens
    checklist: list[FileText | str] = Field(default_factory=list)  # {zh, en} each, or one text for both


class RuleSpec(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    title: FileText
    message: FileText | None = None
    devices: DeviceMatch
    when: str
    for_: Duration = Field(default=0.0, alias="for")
    clear: str | None = None  # default: `when` no longer holds
    unless: str | None = None  # while it holds, the rule is suppressed by design
    suppressed_by: list[Suppressor] = Field(default_factory=list)
    priority: Priority
    outcome: Literal["alarm", "task", "both"] = "alarm"
    task: TaskSpec | None = None  # set whenever the outcome includes a task
    plan: str | None = Field(default=None, pattern=ID_PATTERN)  # the emergency plan the alarm opens

    @field_validator("suppressed_by", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _task_kind(self) -> RuleSpec:
        if self.outcome == "alarm" or (self.task is not None and self.task.kind is not None):
            return self
        kind = "emergency" if self.priority is Priority.EMERGENCY else "repair"
        return self.model_copy(update={"task": (self.task or TaskSpec()).model_copy(update={"kind": kind})})


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
    unless: Expression | None = None
    buildings: tuple[str, ...] = ()  # the building of each of `devices`, for suppression by building
    warnings: tuple[ConfigWarning, ...] = ()  # what in its file loads but is likely a slip
    # (point, value) of each point a `{points_in:value}` of the title or message may list: while
    # the condition is active, the text follows these points (a zone joining a fire), no others.
    lists: frozenset[tuple[str, str]] = frozenset()

    @property
    def expressions(self) -> tuple[Expression, ...]:
        return tuple(e for e in (self.when, self.clear, self.unless) if e is not None)

    @cached_property
    def reads(self) -> frozenset[str]:
        """Points whose changes the condition depends on."""
        return frozenset().union(*(e.names for e in self.expressions))

    @cached_property
    def judges_values(self) -> bool:
        """A rule about values, not communication: an offline device suppresses it."""
        return not (self.when.reads_quality or (self.clear is not None and self.clear.reads_quality))

    @cached_property
    def windowed(self) -> bool:
        """Time alone can change it (rate or count windows move on)."""
        return any(e.windowed for e in self.expressions)

    @property
    def id(self) -> str:
        return self.spec.id

    @cached_property
    def for_ns(self) -> int:
        return int(self.spec.for_ * 1e9)


@dataclass(frozen=True)
class RuleTexts:
    """A rule's title and message filled in for one device, in both languages."""

    title_zh: str
    title_en: str
    message_zh: str
    message_en: str


def rule_texts(spec: RuleSpec, site: Site, device_id: str, values: dict[str, Any]) -> RuleTexts:
    """The title and message an alarm and its task show: each language with its own point names
    (for `{points_in:...}`), an absent message empty in both."""
    device = site.device(device_id)
    filled = text_values(device, values)
    profile = site.profile_of(device)
    zh, en = point_names(profile, "zh"), point_names(profile, "en")
    zh_words, en_words = profile.words_of(values, "zh"), profile.words_of(values, "en")
    message = spec.message
    return RuleTexts(
        render(spec.title.zh, filled, zh, zh_words),
        render(spec.title.en, filled, en, en_words),
        render(message.zh, filled, zh, zh_words) if message else "",
        render(message.en, filled, en, en_words) if message else "",
    )


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
    try:
        plan_ids: frozenset[str] | None = frozenset(load_plans(site))
    except ConfigError as exc:
        problems.extend(exc.problems)
        plan_ids = None  # the plan files' problems are reported; rules are not judged against them
    by_id: dict[str, Rule] = {}
    references: dict[str, list[tuple[str, Problem]]] = {}
    for path in paths if paths is not None else rule_paths(site):
        try:
            for rule, refs in _load_file(path, site, plan_ids):
                by_id[rule.id] = rule
                references[rule.id] = refs
        except ConfigError as exc:
            problems.extend(exc.problems)
    problems.extend(problem for refs in references.values() for ref, problem in refs if ref not in by_id)
    if problems:
        raise ConfigError(problems)
    return list(by_id.values())


def _load_file(
    path: Path, site: Site, plan_ids: frozenset[str] | None = None
) -> list[tuple[Rule, list[tuple[str, Problem]]]]:
    """The file's rules, each with the rule ids it is suppressed by (checked once all files are
    loaded, as a site rule may name a library rule) and the problem to report if one is missing."""
    doc = load_yaml(path)
    parsed = validate(RuleFile, doc)
    problems: list[Problem] = []
    out: list[tuple[Rule, list[tuple[str, Problem]]]] = []
    seen: set[str] = set()
    for i, spec in enumerate(parsed.rules):
        loc = ("rules", i)
        if spec.id in seen:
            problems.append(doc.problem((*loc, "id"), f"rule id {spec.id!r} appears twice in this file"))
        seen.add(spec.id)
        problems.extend(_outcome_problems(doc, loc, spec, plan_ids))
        refs = _suppressor_refs(doc, loc, spec)
        problems.extend(p for ref, p in refs if ref == spec.id)
        devices = [d for d in site.devices if spec.devices.matches(d)]
        problems.extend(_selector_problems(doc, (*loc, "devices"), spec.devices, site))
        points: set[str] = set()
        for device in devices:
            points.update(site.profile_of(device).points)
        known = points if devices else None
        compiled: dict[str, Expression | None] = {}
        for name in ("when", "clear", "unless"):
            text = getattr(spec, name)
            try:
                compiled[name] = _compile(doc, (*loc, name), text, known) if text is not None else None
            except ConfigError as exc:
                problems.extend(exc.problems)
        if len(compiled) < 3 or compiled["when"] is None:  # a problem was found in an expression
            continue
        problems.extend(_label_problems(doc, loc, compiled, devices, site))
        states = _enum_states(site, devices)
        if devices:
            problems.extend(_placeholder_problems(doc, loc, points, states))
        texts = [spec.title.zh, spec.title.en] + ([spec.message.zh, spec.message.en] if spec.message else [])
        named = [(m.group(1), m.group(2)) for text in texts for m in PLACEHOLDER.finditer(text)]
        lists = frozenset(
            (p, value) for name, value in named if name == POINTS_IN and value for p in states.get(value, ())
        )
        shown = (frozenset(name for name, _ in named) & points) | {p for p, _ in lists}
        rule = Rule(
            spec,
            compiled["when"],
            compiled["clear"],
            tuple(d.id for d in devices),
            f"{path}:{doc.line_of(loc)}",
            shown,
            compiled["unless"],
            tuple(d.location.building for d in devices),
            tuple(doc.one_language(loc)),
            lists,
        )
        out.append((rule, [(ref, p) for ref, p in refs if ref != spec.id]))
    if problems:
        raise ConfigError(problems)
    return out


def _outcome_problems(doc: YamlDoc, loc: Loc, spec: RuleSpec, plan_ids: frozenset[str] | None) -> list[Problem]:
    problems = []
    if spec.plan is not None and spec.priority is not Priority.EMERGENCY:
        problems.append(doc.problem((*loc, "plan"), "an emergency plan opens only from a rule of priority emergency"))
    if spec.plan is not None and plan_ids is not None and spec.plan not in plan_ids:
        known = ", ".join(sorted(plan_ids))
        problems.append(doc.problem((*loc, "plan"), f"no emergency plan {spec.plan!r} (known: {known})"))
    if spec.outcome == "alarm" and "task" in doc.data["rules"][loc[1]]:
        message = "a task is described but the outcome is alarm: write outcome: task or both"
        problems.append(doc.problem((*loc, "task"), message))
    if spec.outcome == "both" and "task" not in doc.data["rules"][loc[1]]:
        message = "outcome both opens a task: describe it under task: (kind, team, sla, checklist)"
        problems.append(doc.problem((*loc, "task"), message))
    return problems


def _selector_problems(doc: YamlDoc, loc: Loc, match: DeviceMatch, site: Site) -> list[Problem]:
    """A device id or building the site does not have, in a rule's `devices`: a misspelling that
    would leave the rule watching nothing, silently. (Types and tags are not judged: the library's
    rules name types any site may or may not have.)"""
    ids = {d.id for d in site.devices}
    buildings = {d.location.building for d in site.devices}
    problems = [
        doc.problem((*loc, "ids", k), f"no device {device!r} in this site")
        for k, device in enumerate(match.ids)
        if device not in ids
    ]
    problems.extend(
        doc.problem((*loc, "buildings", k), f"no device of this site is in building {building!r}")
        for k, building in enumerate(match.buildings)
        if building not in buildings
    )
    return problems


def _label_problems(
    doc: YamlDoc, loc: Loc, compiled: dict[str, Expression | None], devices: list[Device], site: Site
) -> list[Problem]:
    """A text compared with an enum point that is not among the enum's labels in the profile of a
    device the rule binds: on that device the comparison could never hold (a misspelt or missing mode)."""
    problems = []
    for name, expression in compiled.items():
        for comparison in expression.labels if expression is not None else ():
            for device in devices:
                profile = site.profile_of(device)
                spec = profile.points.get(comparison.point)
                enum = spec.modbus.enum if spec is not None and spec.modbus is not None else None
                if enum is None or comparison.label in enum.values():
                    continue
                message = (
                    f"{comparison.point} is never {comparison.label!r} (column {comparison.column}): "
                    f"profile {device.profile!r} gives it the values {', '.join(enum.values())}"
                )
                problems.append(doc.problem((*loc, name), message))
                break
    return problems


def _enum_states(site: Site, devices: list[Device]) -> dict[str, set[str]]:
    """Each enum label of the devices' profiles -> the points that can take it: what
    `{points_in:<label>}` may ask for and the points it lists."""
    states: dict[str, set[str]] = {}
    for device in devices:
        for name, point in site.profile_of(device).points.items():
            for label in point.modbus.enum.values() if point.modbus is not None and point.modbus.enum else ():
                states.setdefault(label, set()).add(name)
    return states


def _placeholder_problems(doc: YamlDoc, loc: Loc, points: set[str], states: dict[str, set[str]]) -> list[Problem]:
    """A {name} in a title or message that is neither a point of the rule's devices nor one of
    TEXT_FIELDS, or a {points_in:<value>} whose value no enum point of the devices takes: at run
    time it would show as written, or as `?`, instead of a value."""
    known = points | set(TEXT_FIELDS)
    problems = []
    for part in ("title", "message"):
        given = doc.value_at((*loc, part))
        for language, text in given.items() if isinstance(given, dict) else ():
            for match in PLACEHOLDER.finditer(text) if isinstance(text, str) else ():
                name, value = match.group(1), match.group(2)
                if name == POINTS_IN and name not in points:
                    if value not in states:
                        values = ", ".join(sorted(states)) or "none: the devices have no enum point"
                        asked = f"{{{POINTS_IN}:{value or ''}}}"
                        message = f"{asked} names no value of an enum point of this rule's devices (values: {values})"
                        problems.append(doc.problem((*loc, part, language), message))
                elif name not in known:
                    others = ", ".join(TEXT_FIELDS)
                    message = f"{{{name}}} is no point of this rule's devices nor one of {others}"
                    problems.append(doc.problem((*loc, part, language), message))
    return problems


def _suppressor_refs(doc: YamlDoc, loc: Loc, spec: RuleSpec) -> list[tuple[str, Problem]]:
    """(rule id, problem naming it) for each suppressed_by entry, pointing at the entry's line."""
    single = isinstance(doc.data["rules"][loc[1]].get("suppressed_by"), dict)
    refs = []
    for k, suppressor in enumerate(spec.suppressed_by):
        at = (*loc, "suppressed_by", "rule") if single else (*loc, "suppressed_by", k, "rule")
        if suppressor.rule == spec.id:
            refs.append((spec.id, doc.problem(at, "a rule cannot be suppressed by itself")))
        else:
            refs.append((suppressor.rule, doc.problem(at, f"no rule {suppressor.rule!r} is loaded for this site")))
    return refs


def _compile(doc: YamlDoc, loc: Loc, text: str, known: set[str] | None) -> Expression:
    try:
        return compile_expr(text, known)
    except ExprError as exc:
        raise ConfigError([doc.problem(loc, str(exc))]) from None
