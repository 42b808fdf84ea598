"""Device profiles: the points of a device model and how each one is read.

A profile is one YAML file under `facility/profiles/` (or a site's own profiles folder). The
gateway decodes with it and the simulators encode with it, so they cannot disagree silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from facility.yamlfile import ConfigError, ConfigWarning, Problem, YamlDoc, load_yaml, validate

BUILTIN_DIR = Path(__file__).parent / "profiles"

Table = Literal["holding", "input", "coil", "discrete"]
RegisterType = Literal["int16", "uint16", "int32", "uint32", "float32", "bool"]
ByteOrder = Literal["big", "little"]
Language = Literal["zh", "en"]
LANGUAGES: frozenset[str] = frozenset(("zh", "en"))
BOOLS: frozenset[str] = frozenset(("true", "false"))  # a bool's values, as value_key names them


def value_key(value: object) -> str:
    """How a value is named among a point's `values:` words, and in the API's `value_labels`: a bool
    as `true`/`false` (as JSON and YAML write it, and JavaScript's String() gives), anything else as
    its text; so a `true:` or `0:` key, which YAML reads as a bool or a number, names it too."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _in_both_languages(text: Mapping[str, str] | Mapping[Language, str]) -> dict[str, str]:
    """A text given in one language is shown in that language in both modes (the loader warns)."""
    given = {language: words for language, words in text.items()}
    if len(given.keys() & LANGUAGES) == 1:
        one = given.get("zh") or given.get("en") or ""
        return {"zh": one, "en": one, **given}
    return given


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModbusField(_Strict):
    """Where a point lives in the Modbus map and how its raw registers become a value."""

    table: Table
    address: int = Field(ge=0, le=65535)
    type: RegisterType = "uint16"
    word_order: ByteOrder = "big"  # order of the 16-bit words of a 32-bit value
    byte_order: ByteOrder = "big"  # order of the two bytes inside each word
    scale: float = 1.0
    offset: float = 0.0
    bit: int | None = Field(default=None, ge=0, le=15)
    enum: dict[int, str] | None = None
    sentinel: float | None = None  # raw value the device sends for "not available"

    @model_validator(mode="after")
    def _consistent(self) -> ModbusField:
        if self.table in ("coil", "discrete") and self.type != "bool":
            raise ValueError(f"a {self.table} holds one bit: type must be bool")
        if self.table in ("holding", "input") and self.type == "bool" and self.bit is None:
            raise ValueError("a bool in a register needs `bit` (0-15)")
        if self.bit is not None and self.type not in ("uint16", "int16", "bool"):
            raise ValueError("`bit` applies to a 16-bit register")
        return self


class PointSpec(_Strict):
    """One named value of a device model."""

    unit: str = ""
    label: dict[str, str] = Field(default_factory=dict)  # {"zh": ..., "en": ...}
    modbus: ModbusField | None = None
    json_path: str | None = Field(default=None, alias="json")  # dotted path in an MQTT payload
    value_type: Literal["number", "bool", "string"] = Field(default="number", alias="type")
    # The words of the values the point takes, {value: {zh: ..., en: ...}}: an enum's `defrost`
    # reads 除霜 on the Chinese desk and in alarm texts. load_profile checks the keys against the
    # values the point can take (values_taken).
    value_words: dict[str, dict[Language, str]] = Field(default_factory=dict, alias="values")

    @field_validator("label")
    @classmethod
    def _both_languages(cls, label: dict[str, str]) -> dict[str, str]:
        return _in_both_languages(label)

    @field_validator("value_words", mode="before")
    @classmethod
    def _keyed_by_text(cls, words: Any) -> Any:
        """YAML reads a `true:` or `0:` key as a bool or a number: the words are keyed by text."""
        return {value_key(k): v for k, v in words.items()} if isinstance(words, dict) else words

    @field_validator("value_words")
    @classmethod
    def _words_in_both_languages(cls, words: dict[str, dict[Language, str]]) -> dict[str, dict[str, str]]:
        for value, text in words.items():
            if not text:
                raise ValueError(f"the words of {value!r} are {{zh: ..., en: ...}}")
        return {value: _in_both_languages(text) for value, text in words.items()}

    def values_taken(self) -> frozenset[str] | None:
        """The values this point can take, as value_key names them; None for any text (an MQTT
        string point, whose device may send words no profile lists)."""
        field = self.modbus
        if field is not None:
            if field.table in ("coil", "discrete") or field.bit is not None:
                return BOOLS
            return frozenset(field.enum.values()) if field.enum else frozenset()
        if self.value_type == "bool":
            return BOOLS
        return None if self.value_type == "string" else frozenset()

    def word(self, value: object, lang: Language) -> str | None:
        """The profile's word for `value` in `lang`, None where it gives none."""
        words = self.value_words.get(value_key(value))
        return words.get(lang) if words else None

    @model_validator(mode="after")
    def _one_source(self) -> PointSpec:
        if (self.modbus is None) == (self.json_path is None):
            raise ValueError("a point is read either over `modbus` or from a `json` path")
        return self


class Profile(_Strict):
    """A device model: its type and its points."""

    name: str = ""
    type: str
    # The plant system the desk groups it under (water_supply, drainage, elevators, fire, power,
    # lighting, access, ...): one word, so that boards and reports can filter by it.
    system: str = Field(default="other", pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    timestamp_json: str | None = Field(default=None, alias="timestamp")  # JSON path of the source time, ms
    points: dict[str, PointSpec]

    _warnings: list[ConfigWarning] = PrivateAttr(default_factory=list)  # filled by load_profile

    @property
    def warnings(self) -> list[ConfigWarning]:
        """What in the file loads but is likely a slip (a label in one language)."""
        return self._warnings

    @property
    def protocol(self) -> Literal["modbus", "mqtt"]:
        first = next(iter(self.points.values()))
        return "modbus" if first.modbus is not None else "mqtt"

    @model_validator(mode="after")
    def _one_protocol(self) -> Profile:
        if not self.points:
            raise ValueError("a profile needs at least one point")
        kinds = {p.modbus is not None for p in self.points.values()}
        if len(kinds) > 1:
            raise ValueError("all points of a profile use the same protocol")
        return self

    def words_of(self, values: dict[str, Any], lang: Language) -> dict[str, str]:
        """Of `values` (point -> value), those the profile has a word for, as that word in `lang`:
        what an alarm's title shows for `{fault_code}` in place of the bare `dry_run`."""
        found = {}
        for point, value in values.items():
            spec = self.points.get(point)
            word = spec.word(value, lang) if spec is not None and value is not None else None
            if word is not None:
                found[point] = word
        return found


def load_profile(path: Path) -> Profile:
    doc = load_yaml(path)
    profile = validate(Profile, doc)
    problems = _untaken_values(doc, profile)
    if problems:
        raise ConfigError(problems)
    loaded = profile.model_copy(update={"name": profile.name or path.stem})
    loaded._warnings = doc.one_language()
    return loaded


def _untaken_values(doc: YamlDoc, profile: Profile) -> list[Problem]:
    """A `values:` word for a value its point never takes (a misspelt label, a raw code in place of
    its label, a bare `off:` that YAML read as false) would never be shown: each is an error at its key."""
    problems = []
    for name, spec in profile.points.items():
        given = doc.value_at(("points", name, "values"))
        taken = spec.values_taken()
        for key in given if isinstance(given, dict) else ():
            loc = ("points", name, "values", key)
            bare = doc.bools.get(loc)
            # `off:`, `yes:`... of a point that is not a bool, which YAML read as one
            misread = bare is not None and bare.lower() not in ("true", "false") and taken != BOOLS
            if not misread and (taken is None or value_key(key) in taken):
                continue
            problems.append(doc.problem(loc, _untaken(spec, key, taken or frozenset(), bare if misread else None)))
    return problems


def _untaken(spec: PointSpec, key: object, taken: frozenset[str], misread: str | None) -> str:
    value = value_key(key)
    if misread is not None:
        return f"YAML 1.1 reads a bare {misread} as {value}: write it quoted: '{misread}'"
    enum = spec.modbus.enum if spec.modbus is not None else None
    if enum and isinstance(key, int) and not isinstance(key, bool) and key in enum:
        return f"{key} is the code of {enum[key]!r}: give the words under the label, `{enum[key]}:`"
    if not taken:
        return f"{value!r}: this point is a number; only an enum, a bool or an MQTT string has value words"
    return f"{value!r} is not a value of this point (it takes: {', '.join(sorted(taken))})"


def load_profiles(dirs: list[Path]) -> dict[str, Profile]:
    """Every profile in `dirs`, later folders overriding earlier ones by file name."""
    profiles: dict[str, Profile] = {}
    problems: list[Problem] = []
    for folder in dirs:
        for path in sorted(folder.glob("*.yaml")):
            try:
                profiles[path.stem] = load_profile(path)
            except ConfigError as exc:
                problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return profiles
