"""Device profiles: the points of a device model and how each one is read.

A profile is one YAML file under `facility/profiles/` (or a site's own profiles folder). The
gateway decodes with it and the simulators encode with it, so they cannot disagree silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from facility.yamlfile import ConfigError, ConfigWarning, Problem, load_yaml, validate

BUILTIN_DIR = Path(__file__).parent / "profiles"

Table = Literal["holding", "input", "coil", "discrete"]
RegisterType = Literal["int16", "uint16", "int32", "uint32", "float32", "bool"]
ByteOrder = Literal["big", "little"]


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

    @field_validator("label")
    @classmethod
    def _both_languages(cls, label: dict[str, str]) -> dict[str, str]:
        """A label in one language is shown in that language in both modes (the loader warns)."""
        if len(label.keys() & {"zh", "en"}) == 1:
            given = label.get("zh") or label.get("en") or ""
            return {"zh": given, "en": given, **label}
        return label

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


def load_profile(path: Path) -> Profile:
    doc = load_yaml(path)
    profile = validate(Profile, doc)
    loaded = profile.model_copy(update={"name": profile.name or path.stem})
    loaded._warnings = doc.one_language()
    return loaded


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
