"""The faults every device can be given: lost communication, slow answers, garbage, flapping, busy."""

from __future__ import annotations

import asyncio
import json
import struct
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from facility.netutil import free_port
from gateway.modbus.planner import plan
from gateway.modbus.reader import ExceptionResponse, read_block
from simulators.modbus_front import SLOW_REPLY_S
from tests.simulators.conftest import MqttProbe, read_modbus, read_until, simulated, until
from testsupport.servers import Mosquitto

LIFT = "  - {id: lift-1, profile: elevator, mqtt: {topic: t/lift-1/state, interval: 1s}}\n"


def pump(port: int) -> str:
    return f"  - {{id: pump-1, profile: booster_pump, modbus: {{port: {port}, unit: 1}}}}\n"


async def test_modbus_comm_loss_silences_the_device_until_cleared(tmp_path: Path) -> None:
    async with simulated(tmp_path, pump(free_port())) as (site, host):
        await host.inject("pump-1", "comm_loss")
        with pytest.raises((ModbusException, asyncio.TimeoutError, AssertionError)):
            await read_modbus(site, "pump-1", timeout=0.5)
        await host.clear("pump-1")
        assert (await read_modbus(site, "pump-1"))["running"] is True


async def test_an_answer_held_back_carries_its_own_request_id_and_unit(tmp_path: Path) -> None:
    """A master that gave up on a silent device has moved on to another unit on the same gateway:
    the late answer must say which request it answers, or it passes for the newer one's."""
    port = free_port()
    two = pump(port) + f"  - {{id: pump-2, profile: booster_pump, modbus: {{port: {port}, unit: 2}}}}\n"
    async with simulated(tmp_path, two) as (_site, host):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:

            def request(tid: int, unit: int, address: int, count: int) -> bytes:  # read holding registers
                return struct.pack(">HHHBBHH", tid, 0, 6, unit, 3, address, count)

            async def answer() -> tuple[int, int, int, int]:
                tid, _, length, unit = struct.unpack(">HHHB", await reader.readexactly(7))
                pdu = await reader.readexactly(length - 1)
                return tid, unit, pdu[0], pdu[1]  # id, unit, function, byte count

            await host.inject("pump-1", "comm_loss")
            writer.write(request(0x0101, 1, 1, 1))
            await writer.drain()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(answer(), 0.5)
            await host.clear("pump-1")
            writer.write(request(0x0202, 2, 0, 5))  # the next request, before the held one is answered
            await writer.drain()
            got = {await asyncio.wait_for(answer(), 5), await asyncio.wait_for(answer(), 5)}
            assert got == {(0x0101, 1, 3, 2), (0x0202, 2, 3, 10)}
        finally:
            writer.close()
            await writer.wait_closed()


async def test_modbus_slow_device_answers_after_the_usual_timeout(tmp_path: Path) -> None:
    async with simulated(tmp_path, pump(free_port())) as (site, host):
        await host.inject("pump-1", "slow")
        with pytest.raises((ModbusException, asyncio.TimeoutError, AssertionError)):
            await read_modbus(site, "pump-1", timeout=1.0)  # a hasty master gives up
        values = await read_modbus(site, "pump-1", timeout=SLOW_REPLY_S + 2)  # a patient one gets an answer
        assert values["pressure_setpoint"] == 0.45


async def test_modbus_garbage_is_not_the_plant(tmp_path: Path) -> None:
    async with simulated(tmp_path, pump(free_port())) as (site, host):
        await host.inject("pump-1", "garbage")
        reads = [await read_modbus(site, "pump-1") for _ in range(3)]
        setpoints = {r["pressure_setpoint"] for r in reads}
        assert setpoints != {0.45}  # the fixed setpoint register now holds random words
        await host.clear("pump-1")
        assert (await read_modbus(site, "pump-1"))["pressure_setpoint"] == 0.45


async def test_modbus_flapping_crosses_the_threshold_both_ways(tmp_path: Path) -> None:
    async with simulated(tmp_path, pump(free_port())) as (site, host):
        await host.inject("pump-1", "flapping")
        await read_until(site, "pump-1", lambda v: v["outlet_pressure"] < 0.25)
        await read_until(site, "pump-1", lambda v: v["outlet_pressure"] > 0.4)
        await read_until(site, "pump-1", lambda v: v["outlet_pressure"] < 0.25)


async def test_modbus_busy_refuses_every_other_request_with_exception_06(tmp_path: Path) -> None:
    async with simulated(tmp_path, pump(free_port())) as (site, host):
        device = site.device("pump-1")
        assert device.modbus is not None
        fields = {n: p.modbus for n, p in site.profile_of(device).points.items() if p.modbus}
        block = plan(fields)[0]
        await host.inject("pump-1", "busy")
        client = AsyncModbusTcpClient(device.modbus.host, port=device.modbus.port, timeout=2, retries=0)
        await client.connect()
        outcomes: list[object] = []
        try:
            for _ in range(4):
                try:
                    await read_block(client, block, device.modbus.unit)
                    outcomes.append("answered")
                except ExceptionResponse as exc:
                    outcomes.append(exc.code)
        finally:
            client.close()
        assert outcomes in ([0x06, "answered"] * 2, ["answered", 0x06] * 2), outcomes
        await host.clear("pump-1")
        assert (await read_modbus(site, "pump-1"))["pressure_setpoint"] == 0.45


async def test_mqtt_comm_loss_fires_the_last_will_and_recovers(tmp_path: Path, mosquitto: Mosquitto) -> None:
    async with MqttProbe("127.0.0.1", mosquitto.port) as probe, simulated(tmp_path, LIFT, mosquitto.url) as (_s, host):
        status = "t/lift-1/status"
        await until(lambda: probe.messages.get(status, [])[-1:] == [b"online"])
        await until(lambda: probe.messages.get("t/lift-1/state"))
        await host.inject("lift-1", "comm_loss")
        await until(lambda: probe.messages[status][-1] == b"offline")  # the broker's last will
        published = len(probe.messages["t/lift-1/state"])
        await host.clear("lift-1")
        await until(lambda: probe.messages[status][-1] == b"online")
        await until(lambda: len(probe.messages["t/lift-1/state"]) > published)


async def test_mqtt_garbage_and_slow_publishing(tmp_path: Path, mosquitto: Mosquitto) -> None:
    async with MqttProbe("127.0.0.1", mosquitto.port) as probe, simulated(tmp_path, LIFT, mosquitto.url) as (_s, host):
        topic = "t/lift-1/state"
        await until(lambda: probe.messages.get(topic))
        await host.inject("lift-1", "garbage")
        start = len(probe.messages[topic])
        await until(lambda: len(probe.messages[topic]) >= start + 2)
        junk = probe.messages[topic][start : start + 2]
        kinds = set()
        for payload in junk:
            try:
                doc = json.loads(payload)
            except ValueError:
                kinds.add("malformed")
            else:
                assert doc["car"]["floor"] == "n/a" or doc["car"]["moving"] == 7
                kinds.add("wrong types")
        assert kinds == {"malformed", "wrong types"}
        await host.clear("lift-1")

        host.paused = True  # nothing changes: only the periodic publish remains
        await host.inject("lift-1", "slow")
        start = len(probe.messages[topic])
        await until(lambda: len(probe.messages[topic]) > start)  # the injection itself is reported
        counted = len(probe.messages[topic])
        await asyncio.sleep(2.5)  # a measurement window, not a wait: at 1 s it would publish twice
        assert len(probe.messages[topic]) == counted


async def test_mqtt_flapping_alarm_button(tmp_path: Path, mosquitto: Mosquitto) -> None:
    async with MqttProbe("127.0.0.1", mosquitto.port) as probe, simulated(tmp_path, LIFT, mosquitto.url) as (_s, host):
        topic = "t/lift-1/state"
        await host.inject("lift-1", "flapping")
        await until(lambda: (probe.latest_json(topic) or {}).get("alarm_button") is True)
        await until(lambda: (probe.latest_json(topic) or {}).get("alarm_button") is False)
        await until(lambda: (probe.latest_json(topic) or {}).get("alarm_button") is True)


async def test_unknown_faults_are_refused_and_change_nothing(tmp_path: Path) -> None:
    from simulators.host import UnknownDevice
    from simulators.models import FaultError

    async with simulated(tmp_path, pump(free_port())) as (_site, host):
        with pytest.raises(FaultError, match=r"no fault 'meltdown'.*comm_loss"):
            await host.inject("pump-1", "meltdown")
        with pytest.raises(UnknownDevice):
            await host.inject("pump-9", "slow")
        with pytest.raises(FaultError):
            await host.clear("pump-1", "meltdown")
        assert host.model("pump-1").faults == {}
