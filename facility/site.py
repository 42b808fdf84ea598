"""The site file: one estate's devices, broker, stores and rules, validated on load.

Relative paths in the file (`stores:`, `profiles:`, `rules:`, `plans:`, `schedules:`,
`scenarios:`) are relative to the file itself, so a site folder can be moved whole.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from facility.codec import encode
from facility.duration import Duration
from facility.profile import BUILTIN_DIR, ModbusField, Profile, load_profiles
from facility.yamlfile import ConfigError, ConfigWarning, Loc, load_yaml, validate

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
    id: str = Field(pattern=ID_PATTERN)
    name: str = ""
    type: str = ""  # defaults to the profile's type
    profile: str
    location: Location = Location()
    tags: list[str] = Field(default_factory=list)
    vendor: str | None = None  # the maintenance company answering for it (an id under `vendors:`)
    modbus: ModbusBinding | None = None
    mqtt: MqttBinding | None = None

    @model_validator(mode="after")
    def _one_binding(self) -> Device:
        if (self.modbus is None) == (self.mqtt is None):
            raise ValueError("a device has exactly one binding: `modbus` or `mqtt`")
        return self

    @property
    def interval(self) -> float:
        binding = self.modbus or self.mqtt
        assert binding is not None
        return binding.interval


class Broker(_Strict):
    """The MQTT broker and the service's user on it: `mqtts://` for TLS (port 8883 by default),
    its certificate checked against `ca_file`, or the system's CAs without it."""

    url: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password_env: str | None = None  # name of the environment variable holding the password
    # The CA certificate (PEM) the broker's certificate is checked against. An absolute path: the
    # service, the simulators and the broker's container each see it where they mount it.
    ca_file: str | None = None

    @property
    def password(self) -> str | None:
        """Read from the environment at connect time, so that no secret sits in a site file."""
        return os.environ.get(self.password_env) if self.password_env else None

    @field_validator("url")
    @classmethod
    def _mqtt_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "tcp", "mqtts") or not parts.hostname:
            raise ValueError("expected mqtt://HOST[:PORT], or mqtts://HOST[:PORT] for TLS")
        return url

    @field_validator("ca_file")
    @classmethod
    def _absolute(cls, ca_file: str | None) -> str | None:
        if ca_file is not None and not Path(ca_file).is_absolute():
            raise ValueError("give the CA file's absolute path (as the service sees it)")
        return ca_file

    @model_validator(mode="after")
    def _ca_needs_tls(self) -> Broker:
        # A CA file beside a plain URL would read as "checked" while nothing is encrypted.
        if self.ca_file is not None and not self.tls:
            raise ValueError("ca_file is for a TLS broker: use an mqtts:// url")
        return self

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (8883 if self.tls else 1883)


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


class WriteRule(_Strict):
    """One (device, point) the gateway may write, and the values it may write there.

    Numbers take a range (`min` and `max`, both) or a list of `values`; bools and enum labels take
    `values`. load_site checks the entry against the device's profile.
    """

    device: str
    point: str
    min: float | None = None
    max: float | None = None
    values: list[bool | int | float | str] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _range_or_values(self) -> WriteRule:
        if self.values is not None and (self.min is not None or self.max is not None):
            raise ValueError("give either a range (`min`, `max`) or a list of `values`, not both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"`min` ({self.min}) is above `max` ({self.max})")
        return self


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
    site = validate(Site, doc)
    base = path.resolve().parent
    dirs = [BUILTIN_DIR] + [base / d for d in site.profiles]
    profiles = load_profiles(dirs)
    problems = []
    devices = []
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
            known = ", ".join(sorted(profiles))
            message = f"no profile {device.profile!r} (known: {known})"
            problems.append(doc.problem(("devices", i, "profile"), message))
            continue
        wanted: Literal["modbus", "mqtt"] = "modbus" if device.modbus else "mqtt"
        if profile.protocol != wanted:
            problems.append(
                doc.problem(
                    ("devices", i, wanted),
                    f"profile {device.profile!r} is read over {profile.protocol}, not {wanted}",
                )
            )
        devices.append(device if device.type else device.model_copy(update={"type": profile.type}))
    by_id = {d.id: d for d in devices}
    first: dict[tuple[str, str], int] = {}
    for i, rule in enumerate(site.writes):
        k = first.setdefault((rule.device, rule.point), i)
        found = _write_problem(rule, by_id, profiles) if k == i else (("point",), f"already allowed by writes[{k}]")
        if found is not None:
            problems.append(doc.problem(("writes", i, *found[0]), found[1]))
    if problems:
        raise ConfigError(problems)
    loaded = site.model_copy(update={"devices": devices})  # private attributes survive copies
    loaded._base_dir, loaded._profiles = base, profiles
    loaded._warnings = doc.one_language() + [w for p in profiles.values() for w in p.warnings]
    return loaded


def _write_problem(rule: WriteRule, devices: dict[str, Device], profiles: dict[str, Profile]) -> tuple[Loc, str] | None:
    """What is wrong with one allow-list entry, as (field inside the entry, message); None if usable."""
    device = devices.get(rule.device)
    if device is None:
        return ("device",), f"no device {rule.device!r} in this site"
    if device.modbus is None:
        return ("device",), f"{rule.device} is read over MQTT: only Modbus devices can be written"
    profile = profiles[device.profile]
    spec = profile.points.get(rule.point)
    if spec is None or spec.modbus is None:
        known = ", ".join(sorted(profile.points))
        return ("point",), f"profile {device.profile!r} has no point {rule.point!r} (known: {known})"
    field = spec.modbus
    if field.table in ("input", "discrete"):
        kind = "an input register" if field.table == "input" else "a discrete input"
        return ("point",), f"{rule.point} is {kind}: read-only by the Modbus protocol"
    if field.bit is not None:
        neighbours = [
            n
            for n, p in profile.points.items()
            if n != rule.point and p.modbus and p.modbus.table == field.table and p.modbus.address == field.address
        ]
        shared = f" (shared with {', '.join(neighbours)})" if neighbours else ""
        return ("point",), (
            f"{rule.point} is bit {field.bit} of {field.table} register {field.address}{shared}: "
            "writing the register would overwrite its neighbours"
        )
    return _value_problem(rule, field)


def _value_problem(rule: WriteRule, field: ModbusField) -> tuple[Loc, str] | None:
    """Whether the allowed values suit the point: bools for a coil, labels for an enum, numbers that fit."""
    bound: Loc = ("min",) if rule.min is not None else ("max",)
    ranged = rule.min is not None or rule.max is not None
    if field.table == "coil" or field.enum is not None:
        labels: list[bool | str] = [True, False] if field.table == "coil" else list((field.enum or {}).values())
        kinds = "true and/or false" if field.table == "coil" else f"among {', '.join(map(str, labels))}"
        if ranged:
            return bound, f"{rule.point} takes no range: list the allowed `values` ({kinds})"
        if rule.values is None:
            return ("values",), f"{rule.point}: list the allowed `values` ({kinds})"
        for k, allowed in enumerate(rule.values):
            if not any(allowed == label and type(allowed) is type(label) for label in labels):
                return ("values", k), f"{rule.point} cannot take {allowed!r}: list `values` {kinds}"
        return None
    if rule.values is None and (rule.min is None or rule.max is None):
        return ("max",) if rule.min is not None else ("min",), f"{rule.point} needs both `min` and `max`, or `values`"
    candidates: list[tuple[Loc, bool | int | float | str | None]] = (
        [(("min",), rule.min), (("max",), rule.max)]
        if rule.values is None
        else [(("values", k), v) for k, v in enumerate(rule.values)]
    )
    for loc, value in candidates:
        try:
            encode(field, value)
        except ValueError as exc:
            return loc, f"{rule.point} cannot carry {value!r}: {exc}"
    return None


REPLICA_PORT_STRIDE = 100  # copy k of an estate serves its Modbus TCP endpoints k*100 ports higher


def replicate(site: Site, copies: int) -> Site:
    """The site with its devices repeated `copies` times, for benchmarks.

    Copy k (from 2) gets ids suffixed `-rk`, Modbus TCP ports moved up by (k-1)*100 and MQTT
    topics prefixed `rk/`. Devices on serial lines are not repeated: a serial port is one cable.
    """
    if copies <= 1:
        return site
    taken = {d.modbus.port for d in site.devices if d.modbus and not d.modbus.serial}
    devices = list(site.devices)
    for k in range(2, copies + 1):
        for device in site.devices:
            update: dict[str, object] = {"id": f"{device.id}-r{k}", "name": f"{device.name or device.id} #{k}"}
            if device.modbus:
                if device.modbus.serial:
                    continue
                port = device.modbus.port + (k - 1) * REPLICA_PORT_STRIDE
                if port in taken or port > 65535:
                    raise ValueError(f"copy {k} of {device.id} would use port {port}, taken or out of range")
                update["modbus"] = device.modbus.model_copy(update={"port": port})
            if device.mqtt:
                status = f"r{k}/{device.mqtt.status}"
                update["mqtt"] = device.mqtt.model_copy(
                    update={"topic": f"r{k}/{device.mqtt.topic}", "status_topic": status}
                )
            devices.append(device.model_copy(update=update))
        taken |= {d.modbus.port for d in devices if d.modbus and not d.modbus.serial}
    return site.model_copy(update={"devices": devices})
