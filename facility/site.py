"""The site file: one estate's devices, broker, stores and rules, validated on load.

Relative paths in the file (`stores:`, `profiles:`, `rules:`, `plans:`, `schedules:`,
`scenarios:`) are relative to the file itself, so a site folder can be moved whole.

Two sections have modules of their own, read by more than the site: `broker:` (facility.mqtt_settings)
and the `writes:` allow-list with its checks against the profiles (facility.allowlist).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from facility.allowlist import WriteRule, allowlist_problems
from facility.duration import Duration
from facility.mqtt_settings import Broker
from facility.profile import BUILTIN_DIR, Profile, load_profiles
from facility.yamlfile import ConfigError, ConfigWarning, Problem, YamlDoc, load_yaml, validate

ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Location(_Strict):
    building: str = ""
    floor: str = ""
    room: str = ""


class ModbusBinding(_Strict):
    """A device read over Modbus: TCP (host, port) or RTU on a serial line (serial), and its unit id.

    Devices that share an endpoint share its connection: that is one RS-485 bus or TCP gateway.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=502, ge=0, le=65535)
    serial: str | None = None  # e.g. /dev/ttyUSB0: RTU framing instead of TCP
    baudrate: int = Field(default=9600, gt=0)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    unit: int = Field(default=1, ge=0, le=247)
    interval: Duration = 1.0
    timeout: Duration = 1.0

    @property
    def endpoint(self) -> str:
        """What the devices of one bus share: `host:port`, or the serial port."""
        return self.serial or f"{self.host}:{self.port}"


class MqttBinding(_Strict):
    """A device publishing JSON on a topic."""

    topic: str
    status_topic: str | None = None  # retained online/offline with a last will; default: beside `topic`
    interval: Duration = 5.0  # expected publishing interval; values older than 3x are stale
    qos: int = Field(default=1, ge=0, le=2)

    @property
    def status(self) -> str:
        return self.status_topic or f"{self.topic.rsplit('/', 1)[0]}/status"

    @field_validator("topic", "status_topic")
    @classmethod
    def _no_wildcards(cls, topic: str | None) -> str | None:
        # Both become the device user's grants in the broker's ACL (facility/mqtt_acl.py): a
        # wildcard there would let one device publish as any other.
        if topic is not None and ("+" in topic or "#" in topic):
            raise ValueError("a device's topic names that device alone: no wildcards")
        return topic


class Device(_Strict):
    """One physical thing of the site. Its type and plant system are its profile's alone, so that a
    rule matching `booster_pump`, the simulator driving it and the desk grouping it agree; `tags`
    are the site's own free labels beside them."""

    id: str = Field(pattern=ID_PATTERN)
    name: str = ""
    profile: str
    location: Location = Location()
    tags: list[str] = Field(default_factory=list)
    vendor: str | None = None  # the maintenance company answering for it (an id under `vendors:`)
    modbus: ModbusBinding | None = None
    mqtt: MqttBinding | None = None
    _profile_model: Profile | None = PrivateAttr(default=None)  # the profile `profile` names: bound by load_site

    @model_validator(mode="after")
    def _one_binding(self) -> Device:
        if (self.modbus is None) == (self.mqtt is None):
            raise ValueError("a device has exactly one binding: `modbus` or `mqtt`")
        return self

    @property
    def type(self) -> str:
        """The device's type: its profile's (one source: there is no override in the site file)."""
        if self._profile_model is None:
            raise LookupError(f"device {self.id}: its profile is bound by load_site")
        return self._profile_model.type

    @property
    def interval(self) -> float:
        binding = self.modbus or self.mqtt
        assert binding is not None
        return binding.interval


class InfluxStore(_Strict):
    """Telemetry in InfluxDB: written with the v2 write API, read with InfluxQL over /query."""

    url: str = "http://127.0.0.1:8086"
    org: str = "facility"
    bucket: str = "telemetry"  # also the database name for InfluxQL reads
    # Environment variables that, when set, name the org and bucket instead: a deployment's `.env`
    # then sets up InfluxDB and points the service at it in one place (deploy/site.yaml).
    org_env: str | None = None
    bucket_env: str | None = None
    write_api: Literal["v2", "v1"] = "v2"  # v1: InfluxDB 1.x `/write?db=bucket` (before 1.8)
    token_env: str | None = "INFLUXDB_TOKEN"  # environment variable holding the API token
    timeout: Duration = 10.0
    batch_size: int = Field(default=5000, gt=0)

    @property
    def token(self) -> str | None:
        """Read from the environment when used, so that no secret sits in a site file."""
        return os.environ.get(self.token_env) if self.token_env else None

    @property
    def org_name(self) -> str:
        """The org written to: `org_env`'s value when that is set, else `org`."""
        return (os.environ.get(self.org_env) if self.org_env else None) or self.org

    @property
    def bucket_name(self) -> str:
        """The bucket written to and read from (as an InfluxQL database): `bucket_env`'s value
        when that is set, else `bucket`."""
        return (os.environ.get(self.bucket_env) if self.bucket_env else None) or self.bucket


class Stores(_Strict):
    telemetry: str | InfluxStore = "var/telemetry.db"  # a SQLite file, or {url, org, bucket, ...}
    retention: Duration = 400 * 86400.0  # telemetry older than this is deleted (SQLite store)
    spool: str = "var/spool"  # readings wait here on disk while the telemetry store is down
    # The most the spool may hold on disk. From 80% it warns; when full, the oldest routine
    # telemetry is dropped (counted and logged), never the readings alarm rules use.
    spool_limit_mb: int = Field(default=1024, gt=0)
    ops: str = "sqlite+aiosqlite:///var/ops.db"  # SQLAlchemy URL
    # Dead letters (input that could not be used, kept in the ops store to be looked into) are
    # evidence for a while, not an archive: older ones, those beyond the newest `dead_letter_rows`,
    # and each payload past its first `dead_letter_payload_kb` are dropped, counted and logged.
    dead_letter_retention: Duration = Field(default=30 * 86400.0, gt=0)
    dead_letter_rows: int = Field(default=10_000, gt=0)
    dead_letter_payload_kb: int = Field(default=4, gt=0, le=64)


class Vendor(_Strict):
    """A maintenance company: tasks for its devices go to it, and its response times are measured."""

    id: str = Field(pattern=ID_PATTERN)
    name: str = ""
    arrive_within: Duration | None = None  # contractual response time to an emergency, e.g. 30m


class Person(_Strict):
    """Someone tasks can be given to: the duty desk picks an assignee from the people, their teams
    and the vendors, so that a task never goes to a name nobody answers to."""

    id: str = Field(pattern=ID_PATTERN)
    name: str = ""  # "中文 / English", as vendor names are written
    team: str = ""  # the team they work in (water, electrical, lifts...), also a possible assignee


class Webhook(_Strict):
    """A receiver of alarm notifications (JSON POST); `format` shapes the body for group robots."""

    name: str
    url: str
    format: Literal["json", "wecom", "dingtalk"] = "json"
    min_priority: Literal["emergency", "high", "medium", "low"] = "high"
    secret_env: str | None = None  # environment variable holding a signing secret, never the secret itself


class Notifications(_Strict):
    mqtt: bool = True  # publish alarm and task events under facility/v1/events/<site>/...
    webhooks: list[Webhook] = Field(default_factory=list)

    @field_validator("webhooks")
    @classmethod
    def _unique_names(cls, hooks: list[Webhook]) -> list[Webhook]:
        names = [h.name for h in hooks]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:  # a dead letter names its webhook: two of one name could not be told apart
            raise ValueError(f"webhook names must differ: {', '.join(twice)} appears more than once")
        return hooks


class Limit(_Strict):
    """A token bucket: `burst` at once, then `per_second`."""

    burst: int = Field(gt=0)
    per_second: float = Field(gt=0)


class Api(_Strict):
    """How the HTTP edge protects the service: body sizes, rates, proxies and host names."""

    # The largest request body, in KiB; larger is answered 413 before it is read. The route that
    # takes a whole rule file to check allows MAX_FILE_BODY_KB.
    max_body_kb: int = Field(default=1024, gt=0, le=65536)
    # The largest photo or file on a task, in KiB: a phone's photo, a vendor's PDF report.
    max_attachment_kb: int = Field(default=10240, gt=0, le=65536)
    # Changes (POST, PUT, PATCH, DELETE) per user: enough for a duty officer acknowledging a flood
    # by hand, not for a runaway script. `user_limits` gives named users (a test client) their own.
    change_limit: Limit = Limit(burst=60, per_second=2.0)
    user_limits: dict[str, Limit] = Field(default_factory=dict)
    # Requests with a missing or wrong token, per client address: a guesser gets 429.
    auth_failure_limit: Limit = Limit(burst=20, per_second=0.5)
    # Addresses (or networks) of reverse proxies whose X-Forwarded-For is believed; none by default,
    # so that the address in the audit log and the throttles is the connection's own.
    trusted_proxies: list[str] = Field(default_factory=list)
    # Host names the service answers to (the Host header); empty: any. Redirects never echo it.
    hosts: list[str] = Field(default_factory=list)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, proxies: list[str]) -> list[str]:
        for proxy in proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(f"{proxy!r} is not an IP address or network (such as 10.0.0.0/8)") from None
        return proxies


MAX_FILE_BODY_KB = 8192  # a rule file of 1,000,000 characters, each escaped in JSON, fits


class SiteInfo(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    name: str = ""
    timezone: str = "UTC"  # an IANA name such as Asia/Shanghai: desk times, schedules, reports
    # Where this estate's duty desk is reached, for the company view's links between estates.
    desk_url: str = Field(default="", pattern=r"^(https?://[^\s/]+(/\S*)?)?$", max_length=500)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as Asia/Shanghai)") from None
        return value


class Site(_Strict):
    site: SiteInfo
    broker: Broker = Broker()
    # Where readings travel between processes (facility/v1/readings/...): the centre's broker, when
    # the estate's gateway runs apart from the writers and rules (docs/scale-out.md); else `broker`.
    uplink: Broker | None = None
    stores: Stores = Stores()
    profiles: list[str] = Field(default_factory=list)  # extra profile folders
    rules: list[str] = Field(default_factory=list)  # rule files or folders
    scenarios: list[str] = Field(default_factory=list)  # folders of simulator scenarios
    use_rule_library: bool = True
    plans: list[str] = Field(default_factory=list)  # emergency plan files or folders, besides the library's
    schedules: list[str] = Field(default_factory=list)  # preventive schedule files or folders, besides the library's
    vendors: list[Vendor] = Field(default_factory=list)
    people: list[Person] = Field(default_factory=list)  # who tasks may be assigned to, with vendors and teams
    notifications: Notifications = Notifications()
    api: Api = Api()
    devices: list[Device]
    writes: list[WriteRule] = Field(default_factory=list)  # the only points that may be written

    # Filled by load_site, not by the file.
    _base_dir: Path = PrivateAttr(default=Path("."))
    _profiles: dict[str, Profile] = PrivateAttr(default_factory=dict)
    _warnings: list[ConfigWarning] = PrivateAttr(default_factory=list)

    @property
    def warnings(self) -> list[ConfigWarning]:
        """What the site file and its profiles give that loads but is likely a slip (a text in one
        language only), each with file, line and field: `facility check` shows them."""
        return self._warnings

    def path(self, relative: str) -> Path:
        """A path from the site file, resolved against the site's folder."""
        p = Path(relative)
        return p if p.is_absolute() else self._base_dir / p

    def device(self, device_id: str) -> Device:
        for device in self.devices:
            if device.id == device_id:
                return device
        raise KeyError(device_id)

    def profile_of(self, device: Device) -> Profile:
        return self._profiles[device.profile]

    def system_of(self, device: Device) -> str:
        """The plant system a device belongs to, from its profile."""
        return self._profiles[device.profile].system

    def buildings(self) -> list[str]:
        """The buildings the site's devices are in, sorted."""
        return sorted({d.location.building for d in self.devices if d.location.building})

    def devices_in(self, buildings: Iterable[str]) -> set[str]:
        """Ids of the devices located in any of `buildings`."""
        wanted = set(buildings)
        return {d.id for d in self.devices if d.location.building in wanted}

    def vendor(self, vendor_id: str) -> Vendor:
        return next(v for v in self.vendors if v.id == vendor_id)

    def write_rule(self, device_id: str, point: str) -> WriteRule | None:
        """The allow-list entry for (device, point); None means the point must not be written."""
        return next((r for r in self.writes if r.device == device_id and r.point == point), None)


def load_site(path: Path) -> Site:
    """Load and validate a site file and the profiles its devices name."""
    doc = load_yaml(path)
    typed = _typed_devices(doc)
    if typed:
        raise ConfigError(typed)
    site = validate(Site, doc)
    base = path.resolve().parent
    profiles = load_profiles([BUILTIN_DIR] + [base / d for d in site.profiles])
    problems = _device_problems(site, profiles, doc)
    known = {d.id: d for d in site.devices if d.profile in profiles}
    problems += allowlist_problems(site.writes, known, profiles, doc)
    if problems:
        raise ConfigError(problems)
    for device in site.devices:
        device._profile_model = profiles[device.profile]
    site._base_dir, site._profiles = base, profiles
    site._warnings = doc.one_language() + [w for p in profiles.values() for w in p.warnings]
    return site


def _typed_devices(doc: YamlDoc) -> list[Problem]:
    """A device's type is its profile's alone (rules match it, and the simulator of that type drives
    the device): a `type:` under a device, which once overrode the profile's, is an error at its line."""
    devices = doc.data.get("devices") if isinstance(doc.data, dict) else None
    return [
        doc.problem(
            ("devices", i, "type"),
            f"a device's type is its profile's ({device.get('profile')!r}): drop `type`, "
            "or give the device a profile of that type",
        )
        for i, device in enumerate(devices if isinstance(devices, list) else ())
        if isinstance(device, dict) and "type" in device
    ]


def _device_problems(site: Site, profiles: dict[str, Profile], doc: YamlDoc) -> list[Problem]:
    """What is wrong with the devices beyond their own fields: an id given twice, a vendor or a
    profile the site does not have, a binding of another protocol than the profile's."""
    problems = []
    vendors = {v.id for v in site.vendors}
    first_of: dict[str, int] = {}
    for i, device in enumerate(site.devices):
        k = first_of.setdefault(device.id, i)
        if k != i:
            message = (
                f"device id {device.id!r} appears twice: first at devices[{k}] (line {doc.line_of(('devices', k))})"
            )
            problems.append(doc.problem(("devices", i, "id"), message))
        if device.vendor is not None and device.vendor not in vendors:
            known = ", ".join(sorted(vendors)) or "none declared under vendors:"
            problems.append(doc.problem(("devices", i, "vendor"), f"no vendor {device.vendor!r} (known: {known})"))
        profile = profiles.get(device.profile)
        if profile is None:
            message = f"no profile {device.profile!r} (known: {', '.join(sorted(profiles))})"
            problems.append(doc.problem(("devices", i, "profile"), message))
            continue
        wanted: Literal["modbus", "mqtt"] = "modbus" if device.modbus else "mqtt"
        if profile.protocol != wanted:
            message = f"profile {device.profile!r} is read over {profile.protocol}, not {wanted}"
            problems.append(doc.problem(("devices", i, wanted), message))
    return problems
