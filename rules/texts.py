"""The texts of rule, plan and schedule files: how they are written, and how their placeholders fill.

A text is the kernel's one bilingual type, `facility.vocabulary.Text`; `FileText` is that type as a
file gives it, with this module's one-language rule: a text given in one language only is shown in
that language in both modes, rather than refused or left blank (the loader warns of it, naming
file, line and field: facility.yamlfile.YamlDoc.one_language).

Rules (rules.ruleset), plans (rules.plans) and schedules (rules.schedules) all read their texts
through here, so that none of them imports another for its texts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator

from facility.profile import Profile
from facility.site import Device
from facility.vocabulary import Text


def _one_language(data: object) -> object:
    """{zh: x} or {en: x} alone reads as x in both languages; anything else is validated as given."""
    if not isinstance(data, dict):
        return data
    given = [data[k] for k in ("zh", "en") if k in data]
    if len(given) == 1 and isinstance(given[0], str):
        return {"zh": given[0], "en": given[0], **data}
    return data


FileText = Annotated[Text, BeforeValidator(_one_language)]
"""A Text as a rule, plan or schedule file writes it: `{zh: ..., en: ...}`, or one of them alone.
Placeholders like {device_name} or {outlet_pressure:.2f} are filled by `render`."""

PLACEHOLDER = re.compile(r"\{(\w+)(?::([^{}]*))?\}")

POINTS_IN = "points_in"
"""`{points_in:fire}`: the labels of the device's points whose value is now `fire`, as a fire
panel's display names the zones in alarm (the value is an enum label of the rule's devices).
While the alarm is active the engine holds every point listed since the raise and hands on a
`spread` when one joins (Rule.lists), so the text grows with the fire and never shrinks."""


@dataclass(frozen=True)
class PointNames:
    """How one language names a device's points in `{points_in:...}`: the profile's labels, in
    profile order (zone 3 before zone 5 whatever order the readings came in), and the separator
    the language lists them with."""

    labels: dict[str, str]
    separator: str


def point_names(profile: Profile, lang: Literal["zh", "en"]) -> PointNames:
    """The profile's point labels in `lang` (the id where a point has none)."""
    labels = {name: spec.label.get(lang) or name for name, spec in profile.points.items()}
    return PointNames(labels, "、" if lang == "zh" else ", ")


def render(
    template: str, values: dict[str, Any], names: PointNames | None = None, words: dict[str, str] | None = None
) -> str:
    """Fill {name} and {name:spec} from `values`; no attribute or index access, unknown names stay.
    A point with a word for its value in `words` (its profile's `values:`) is filled with the word:
    `{fault_code}` reads 缺水, not dry_run; `{points_in:...}` still compares the values themselves.
    `{points_in:<value>}` lists the points at that value by their `names` (ids without them), or
    `?` when none is: the text never claims an empty list of zones in alarm."""

    def one(match: re.Match[str]) -> str:
        name, spec = match.group(1), match.group(2) or ""
        if name == POINTS_IN and name not in values:
            given = names or PointNames({point: point for point in values}, ", ")
            found = [label for point, label in given.labels.items() if values.get(point) == spec]
            return given.separator.join(found) or "?"
        if name not in values or values[name] is None:
            return match.group(0) if name not in values else "?"
        value = words[name] if words and name in words else values[name]
        try:
            return format(value, spec)
        except (ValueError, TypeError):
            return str(value)

    return PLACEHOLDER.sub(one, template)


TEXT_FIELDS = ("device", "device_name", "building", "location_floor", "room")
"""What a title or message may name besides the points of the rule's devices (see text_values)."""


def text_values(device: Device, values: dict[str, Any]) -> dict[str, Any]:
    """What a rule's title and message may name: the device, where it is, and its point values
    (a point named like a location field wins)."""
    return {
        "device": device.id,
        "device_name": device.name or device.id,
        "building": device.location.building,
        "location_floor": device.location.floor,
        "room": device.location.room,
        **values,
    }
