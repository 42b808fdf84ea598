"""Allow-listed Modbus writes below the API.

The site's `writes:` list is refused with file, line and field when it names something that cannot
be written; the gateway writes through the bus poller (its connection, between its polls) and
reads the value back; the simulators take writes as real devices do, with their exception codes;
every attempt leaves an entry in the audit log.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient

from facility.bus import Event, LocalBus
from facility.codec import decode, encode
from facility.model import Quality, Reading, Value
from facility.netutil import free_port
from facility.profile import ModbusField
from facility.site import Site, load_site
from facility.store.ops import OpsStore
from facility.writes import (
    AuditUnavailable,
    BadValue,
    DeviceOffline,
    DeviceRefused,
    NotAllowed,
    UnknownTarget,
    WriteError,
)
from facility.yamlfile import ConfigError
from gateway.deadletter import DeadLetters
from gateway.service import Gateway
from gateway.writes import AuditedWrites
from simulators.host import SimulatorHost
from simulators.models.lighting import LightingPanel
from simulators.models.water import BoosterPump
from tests.simulators.conftest import read_modbus, read_until, simulated, until

# ---------------------------------------------------------------------------------------------
# The allow-list in the site file

SITE = """\
site: {id: t}
devices:
  - id: pump-1
    profile: booster_pump
    modbus: {port: 15020, unit: 1}
  - id: lights-1
    profile: lighting_panel
    modbus: {port: 15020, unit: 2}
  - id: lift-1
    profile: elevator
    mqtt: {topic: a/b}
writes:
  - {device: pump-1, point: pressure_setpoint, min: 0.3, max: 0.6}
  - {device: lights-1, point: circuit_1_command, values: [true, false]}
"""
ENTRY = "  - {device: pump-1, point: pressure_setpoint, min: 0.3, max: 0.6}\n"  # line 13


def _site_with(tmp_path: Path, entry: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(SITE.replace(ENTRY, entry))
    return path


def test_a_good_allow_list_loads(tmp_path: Path) -> None:
    site = load_site(_site_with(tmp_path, ENTRY))
    rule = site.write_rule("pump-1", "pressure_setpoint")
    assert rule is not None and (rule.min, rule.max) == (0.3, 0.6)
    assert site.write_rule("pump-1", "frequency") is None


@pytest.mark.parametrize(
    ("entry", "field", "words"),
    [
        ("{device: pump-9, point: pressure_setpoint, min: 0.3, max: 0.6}", ".device", "no device 'pump-9'"),
        ("{device: lift-1, point: door_open, values: [true]}", ".device", "only Modbus devices"),
        ("{device: pump-1, point: pressure_set, min: 0.3, max: 0.6}", ".point", "no point 'pressure_set'"),
        ("{device: pump-1, point: motor_current, min: 0, max: 10}", ".point", "input register: read-only"),
        ("{device: lights-1, point: circuit_1_on, values: [true]}", ".point", "discrete input: read-only"),
        ("{device: pump-1, point: running, values: [true]}", ".point", "shared with tripped, remote"),
        ("{device: pump-1, point: pressure_setpoint, max: 0.6}", ".min", "needs both `min` and `max`"),
        ("{device: pump-1, point: pressure_setpoint, min: 0.3, max: 70}", ".max", "outside the uint16 range"),
        ("{device: pump-1, point: pressure_setpoint, values: [0.4, true]}", ".values[1]", "expected a number"),
        ("{device: lights-1, point: circuit_2_command, min: 0, max: 1}", ".min", "takes no range"),
        ("{device: lights-1, point: circuit_2_command, values: [1]}", ".values[0]", "cannot take 1"),
        ("{device: pump-1, point: fault_code, values: [reset]}", ".values[0]", "among none, overcurrent"),
        ("{device: pump-1, point: pressure_setpoint, min: 0.3, max: 0.6, step: 1}", ".step", "unknown field"),
        ("{device: pump-1, point: pressure_setpoint, min: 0.6, max: 0.3}", "", "is above `max`"),
    ],
)
def test_entries_that_cannot_be_written_name_file_line_and_field(
    tmp_path: Path, entry: str, field: str, words: str
) -> None:
    path = _site_with(tmp_path, f"  - {entry}\n")
    with pytest.raises(ConfigError) as caught:
        load_site(path)
    (problem,) = caught.value.problems
    assert (problem.file, problem.line, problem.field) == (str(path), 13, f"writes[0]{field}")
    assert words in problem.message, problem.message


def test_an_entry_given_twice_is_refused_where_it_repeats(tmp_path: Path) -> None:
    path = _site_with(tmp_path, "  - {device: lights-1, point: circuit_1_command, values: [true]}\n")
    with pytest.raises(ConfigError) as caught:
        load_site(path)
    (problem,) = caught.value.problems
    assert (problem.line, problem.field) == (14, "writes[1].point")
    assert "already allowed by writes[0]" in problem.message


def test_a_block_entry_names_the_line_of_the_field(tmp_path: Path) -> None:
    entry = "  - device: pump-1\n    point: motor_temperature\n    min: 0\n    max: 90\n"
    path = _site_with(tmp_path, entry)
    with pytest.raises(ConfigError) as caught:
        load_site(path)
    (problem,) = caught.value.problems
    assert (problem.line, problem.field) == (14, "writes[0].point")
    assert f"{path}:14: writes[0].point: motor_temperature is an input register" in str(caught.value)


def test_the_demo_allows_pump_setpoints_and_road_lighting_only(repo_root: Path) -> None:
    site = load_site(repo_root / "sites/demo/site.yaml")
    allowed = {(r.device, r.point): (r.min, r.max, r.values) for r in site.writes}
    assert allowed == {
        **{(f"pump-b2-{n}", "pressure_setpoint"): (0.30, 0.60, None) for n in (1, 2, 3)},
        **{("lighting-roads", f"circuit_{c}_command"): (None, None, [True, False]) for c in range(1, 5)},
    }


def test_encode_is_the_inverse_of_decode_and_refuses_what_a_register_cannot_carry() -> None:
    setpoint = ModbusField(table="holding", address=1, type="uint16", scale=0.001)
    assert encode(setpoint, 0.35) == [350] and decode(setpoint, encode(setpoint, 0.35)) == 0.35
    swapped = ModbusField(table="holding", address=0, type="float32", word_order="little")
    assert decode(swapped, encode(swapped, 12.5)) == 12.5 and len(encode(swapped, 12.5)) == 2
    coil = ModbusField(table="coil", address=0, type="bool")
    assert encode(coil, True) == [1] and encode(coil, False) == [0]
    enum = ModbusField(table="holding", address=4, enum={0: "auto", 1: "manual"})
    assert encode(enum, "manual") == [1]
    bit = ModbusField(table="holding", address=3, type="uint16", bit=0)
    refused: list[tuple[ModbusField, Value, str]] = [
        (setpoint, 70.0, "outside the uint16 range"),
        (setpoint, -0.1, "outside the uint16 range"),
        (setpoint, True, "expected a number"),
        (setpoint, "high", "expected a number"),
        (setpoint, float("nan"), "finite"),
        (coil, 1, "true or false"),
        (enum, "off", "expected one of"),
        (bit, True, "without its neighbours"),
    ]
    for spec, value, words in refused:
        with pytest.raises(ValueError, match=words):
            encode(spec, value)


# ---------------------------------------------------------------------------------------------
# The gateway writing to the simulators

POLL = 0.2
ALLOW = """\
writes:
  - {device: pump-1, point: pressure_setpoint, min: 0.3, max: 0.6}
  - {device: pump-2, point: pressure_setpoint, min: 0.3, max: 1.5}
  - {device: lights-1, point: circuit_1_command, values: [true, false]}
"""


def plant(port: int, poll: float | str = POLL, writes: str = ALLOW, more: str = "") -> str:
    """Two pumps and a lighting panel behind one Modbus TCP gateway (and `more` devices)."""
    devices = "".join(
        f"  - {{id: {d}, profile: {p}, modbus: {{port: {port}, unit: {u}, interval: {poll}, timeout: 0.5}}}}\n"
        for u, (d, p) in enumerate(
            [("pump-1", "booster_pump"), ("pump-2", "booster_pump"), ("lights-1", "lighting_panel")], 1
        )
    )
    return devices + more + writes


@dataclass
class Rig:
    site: Site
    host: SimulatorHost
    gateway: Gateway
    store: OpsStore
    readings: list[Reading] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def polls(self, device: str) -> int:
        return sum(1 for r in self.readings if r.device == device and r.point == "outlet_pressure")


@asynccontextmanager
async def running(tmp_path: Path, poll: float | str = POLL, writes: str = ALLOW) -> AsyncIterator[Rig]:
    async with simulated(tmp_path, plant(free_port(), poll, writes)) as (site, host):
        store = OpsStore(f"sqlite+aiosqlite:///{tmp_path / 'ops.db'}", site="t")
        await store.start()
        bus = LocalBus()
        gateway = Gateway(site, bus, DeadLetters(store))
        rig = Rig(site, host, gateway, store)
        bus.on_readings(rig.readings.extend)
        with bus.subscribe() as events:
            await gateway.start()
            try:
                await until(lambda: all(rig.polls(p) for p in ("pump-1", "pump-2")))
                yield rig
            finally:
                await gateway.stop()
                await store.close()
                while not events.empty():
                    rig.events.append(events.get_nowait())


async def test_a_setpoint_write_reaches_the_device_and_the_pressure_follows(tmp_path: Path) -> None:
    async with running(tmp_path) as rig:
        pump = rig.host.model("pump-1")
        assert isinstance(pump, BoosterPump) and pump.setpoint == 0.45
        assert await rig.gateway.write("pump-1", "pressure_setpoint", 0.35) == 0.35
        other = rig.host.model("pump-2")
        assert pump.setpoint == 0.35 and isinstance(other, BoosterPump) and other.setpoint == 0.45  # per instance
        # The confirmed value goes on the bus at once, as a reading of good quality.
        assert any(
            r.point == "pressure_setpoint" and r.value == 0.35 and r.quality is Quality.GOOD for r in rig.readings
        )
        assert (await read_modbus(rig.site, "pump-1"))["pressure_setpoint"] == 0.35
        await read_until(rig.site, "pump-1", lambda v: abs(v["outlet_pressure"] - 0.35) < 0.01)


async def test_a_lighting_command_turns_its_circuit_on_and_off(tmp_path: Path) -> None:
    async with running(tmp_path) as rig:
        rig.host.set_time_of_day(12 * 3600)  # noon: the photocell keeps the lights off
        await read_until(rig.site, "lights-1", lambda v: not v["circuit_1_on"])
        assert await rig.gateway.write("lights-1", "circuit_1_command", True) is True
        lit: dict[str, Any] = await read_modbus(rig.site, "lights-1")
        assert lit["circuit_1_command"] and lit["circuit_1_on"] and lit["circuit_1_current"] > 4.0
        assert not lit["circuit_2_on"]  # the other circuits stay with the photocell
        panel = rig.host.model("lights-1")
        assert isinstance(panel, LightingPanel) and panel.overrides == {1: True}
        steps_from = panel.real_elapsed
        await until(lambda: panel.real_elapsed > steps_from + 0.3)  # a few model steps; the photocell holds
        assert (await read_modbus(rig.site, "lights-1"))["circuit_1_on"]
        assert await rig.gateway.write("lights-1", "circuit_1_command", False) is False
        assert not (await read_modbus(rig.site, "lights-1"))["circuit_1_on"]
        rig.host.set_time_of_day(22 * 3600)  # night falls: the photocell switches, automatic again
        await read_until(rig.site, "lights-1", lambda v: all(v[f"circuit_{c}_on"] for c in range(1, 5)))
        assert panel.overrides == {}


async def test_the_gateway_refuses_what_is_not_allow_listed_or_out_of_range(tmp_path: Path) -> None:
    async with running(tmp_path) as rig:
        refusals: list[tuple[str, str, Any, type[WriteError], str]] = [
            ("pump-1", "frequency", 40.0, NotAllowed, "allow-list"),
            ("pump-1", "running", True, NotAllowed, "allow-list"),
            ("pump-9", "pressure_setpoint", 0.4, UnknownTarget, "no device 'pump-9'"),
            ("pump-1", "setpoint", 0.4, UnknownTarget, "no point 'setpoint'"),
            ("pump-1", "pressure_setpoint", 0.61, BadValue, "outside the allowed range 0.3..0.6 MPa"),
            ("pump-1", "pressure_setpoint", True, BadValue, "takes a number, not true"),
            ("pump-1", "pressure_setpoint", "0.4", BadValue, "takes a number"),
            ("pump-1", "pressure_setpoint", float("inf"), BadValue, "outside the allowed range"),
            ("lights-1", "circuit_1_command", 1, BadValue, "not an allowed value"),
            ("lights-1", "circuit_2_command", True, NotAllowed, "allow-list"),
        ]
        for device, point, value, error, words in refusals:
            with pytest.raises(error, match=words):
                await rig.gateway.write(device, point, value)
        assert rig.host.model("pump-1").values["pressure_setpoint"] == 0.45  # nothing reached the plant


async def test_without_a_writes_list_nothing_can_be_written(tmp_path: Path) -> None:
    async with running(tmp_path, writes="") as rig:
        for point, value in [("pressure_setpoint", 0.4), ("frequency", 40.0)]:
            with pytest.raises(NotAllowed):
                await rig.gateway.write("pump-1", point, value)
        with pytest.raises(NotAllowed):
            await rig.gateway.write("lights-1", "circuit_1_command", True)


async def test_a_value_the_device_refuses_carries_its_exception_code(tmp_path: Path) -> None:
    async with running(tmp_path) as rig:
        # The allow-list admits 1.2 MPa for pump-2; the drive takes at most 1 MPa: illegal value.
        with pytest.raises(DeviceRefused, match="exception 0x03") as caught:
            await rig.gateway.write("pump-2", "pressure_setpoint", 1.2)
        assert caught.value.code == 3 and caught.value.outcome == "failed"
        assert rig.host.model("pump-2").values["pressure_setpoint"] == 0.45


async def test_a_device_that_does_not_answer_fails_the_write(tmp_path: Path) -> None:
    async with running(tmp_path) as rig:
        await rig.host.inject("pump-1", "comm_loss")
        with pytest.raises(DeviceOffline, match="pump-1"):
            await rig.gateway.write("pump-1", "pressure_setpoint", 0.4)
        await rig.host.clear("pump-1")
        # The other devices on the bus are still written, and pump-1 again once it answers.
        assert await rig.gateway.write("pump-2", "pressure_setpoint", 0.5) == 0.5
        assert await until(lambda: _write_ok(rig.gateway, "pump-1", 0.4), timeout=15) == 0.4


async def _write_ok(gateway: Gateway, device: str, value: float) -> Value:
    try:
        return await gateway.write(device, "pressure_setpoint", value)
    except DeviceOffline:
        return None


async def test_polls_and_writes_never_interleave_on_the_bus(tmp_path: Path) -> None:
    async with running(tmp_path, poll=0) as rig:
        (poller,) = rig.gateway.pollers
        # A pass-through probe on the real client (not a mock: every request still goes to the
        # simulator): how many requests are between sent and answered at the same time.
        in_flight, most = 0, 0
        execute = poller._client.execute

        def counted(no_response_expected: bool, request: Any) -> Awaitable[Any]:
            async def run() -> Any:
                nonlocal in_flight, most
                in_flight += 1
                most = max(most, in_flight)
                try:
                    return await execute(no_response_expected, request)
                finally:
                    in_flight -= 1

            return run()

        poller._client.execute = counted  # type: ignore[method-assign]
        polls_before = rig.polls("pump-1")
        setpoints = [0.30 + 0.01 * (i % 30) for i in range(30)]

        async def writer(device: str, point: str, values: list[Any]) -> list[Value]:
            return [await rig.gateway.write(device, point, v) for v in values]

        results = await asyncio.gather(
            writer("pump-1", "pressure_setpoint", setpoints),
            writer("pump-2", "pressure_setpoint", list(reversed(setpoints))),
            writer("lights-1", "circuit_1_command", [i % 2 == 0 for i in range(30)]),
        )
        assert [round(float(v or 0), 3) for v in results[0]] == [round(v, 3) for v in setpoints]
        assert results[2] == [i % 2 == 0 for i in range(30)]
        assert most == 1, f"{most} requests in flight at once"
        assert rig.polls("pump-1") > polls_before  # polling went on between the writes
        bad = [r for r in rig.readings if r.quality is not Quality.GOOD and r.point != "flow"]
        assert bad == []
    assert not [e for e in rig.events if e.kind == "device" and not e.data["online"]]


async def test_the_simulator_answers_writes_as_a_device_does(tmp_path: Path) -> None:
    port = free_port()
    tank = f"  - {{id: tank-1, profile: water_tank, modbus: {{port: {port}, unit: 4}}}}\n"
    async with simulated(tmp_path, plant(port, more=tank)) as (site, host):
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
        await client.connect()
        try:
            answers = {
                "tank coil (read-only device)": await client.write_coil(0, True, device_id=4),
                "pump coil (no coils)": await client.write_coil(0, True, device_id=1),
                "pump outlet pressure (a measurement)": await client.write_register(0, 1, device_id=1),
                "pump status bits": await client.write_register(3, 1, device_id=1),
                "setpoint and frequency": await client.write_registers(1, [400, 5000], device_id=1),
                "beyond the map": await client.write_register(40, 1, device_id=1),
                "setpoint above the drive's limit": await client.write_register(1, 1500, device_id=1),
            }
            codes = {name: r.exception_code if r.isError() else None for name, r in answers.items()}
            assert codes == {
                "tank coil (read-only device)": 0x01,
                "pump coil (no coils)": 0x01,
                "pump outlet pressure (a measurement)": 0x02,
                "pump status bits": 0x02,
                "setpoint and frequency": 0x02,
                "beyond the map": 0x02,
                "setpoint above the drive's limit": 0x03,
            }
            assert host.model("pump-1").values["pressure_setpoint"] == 0.45  # the refused writes changed nothing
            ok = await client.write_registers(1, [420], device_id=1)  # function 16 works as well as 06
            assert not ok.isError() and (await read_modbus(site, "pump-1"))["pressure_setpoint"] == 0.42
        finally:
            client.close()


# ---------------------------------------------------------------------------------------------
# The audit log


async def test_every_attempt_is_audited_with_its_outcome(tmp_path: Path) -> None:
    async with running(tmp_path) as rig:
        write = AuditedWrites(rig.gateway, rig.store)
        attempts: list[tuple[str, str, Any, str]] = [
            ("pump-1", "pressure_setpoint", 0.4, "ok"),
            ("pump-1", "frequency", 40.0, "refused"),
            ("pump-1", "pressure_setpoint", 0.9, "refused"),
            ("pump-7", "pressure_setpoint", 0.4, "refused"),
            ("pump-2", "pressure_setpoint", 1.2, "failed"),
        ]
        for device, point, value, _ in attempts:
            with suppress(WriteError):
                await write(device, point, value, actor="duty", source="10.0.0.7")
        log = list(reversed(await rig.store.audit.entries(10)))
        assert [(e.target, e.outcome) for e in log] == [(f"{d}/{p}", o) for d, p, _, o in attempts]
        assert all(e.actor == "duty" and e.source == "10.0.0.7" and e.action == "write" for e in log)
        assert log[0].detail == {"value": 0.4, "confirmed": 0.4}
        assert log[1].detail["reason"] == "NotAllowed" and "allow-list" in log[1].detail["error"]
        assert log[4].detail["exception_code"] == 3
        assert log[0].ts <= log[-1].ts


async def test_no_audit_log_no_write(tmp_path: Path) -> None:
    async with running(tmp_path) as rig:
        (tmp_path / "not-a-db").mkdir()  # SQLite cannot open a folder: every statement fails
        broken = OpsStore(f"sqlite+aiosqlite:///{tmp_path / 'not-a-db'}", site="t")
        try:
            with pytest.raises(AuditUnavailable):
                await AuditedWrites(rig.gateway, broken)("pump-1", "pressure_setpoint", 0.4, actor="duty", source="")
        finally:
            await broken.close()
        assert rig.host.model("pump-1").values["pressure_setpoint"] == 0.45


async def test_the_audit_log_keeps_newest_first(tmp_path: Path) -> None:
    store = OpsStore(f"sqlite+aiosqlite:///{tmp_path / 'ops.db'}", site="t")
    await store.start()
    try:
        first = await store.audit.add(
            ts=1, actor="a", source="s", action="write", target="d/p", detail={"value": 1}, outcome="pending"
        )
        await store.audit.add(ts=2, actor="b", source="s", action="write", target="d/p", detail={}, outcome="refused")
        await store.audit.finish(first, "ok", {"value": 1, "confirmed": 1, "note": "中文"})
        entries = await store.audit.entries(limit=5)
        assert [(e.actor, e.outcome) for e in entries] == [("b", "refused"), ("a", "ok")]
        assert entries[1].detail == {"value": 1, "confirmed": 1, "note": "中文"}
        assert len(await store.audit.entries(limit=1)) == 1
    finally:
        await store.close()
