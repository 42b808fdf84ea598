"""Fault to desk: from injecting a fault in a simulator to its alarm on the API's event stream.

Runs the whole system in one process, wired as `facility run` wires it (so whatever the runtime
puts between a reading and the desk, the outcome journal included, is in the path), against a
Mosquitto of its own (real Modbus, real MQTT, real HTTP), and repeats fault cycles: inject, wait
for the alarm event, clear, acknowledge, wait for it to close. Prints one JSON object on a line of
its own.

- `mqtt_*`: elevator entrapment over MQTT with the rule's `for` set to 0 (the pipeline alone).
- `modbus_*`: pump drive overload trip over Modbus TCP (rule without `for`), polled every `poll_s`; the
  expected figure is about half the poll interval plus the pipeline.
- `library_low_pressure_*`: the shipped low-pressure rule as the demo runs it: the simulated
  pressure needs about 2 s to fall below the threshold, and the rule then waits its `for` (3 s).
- `fault_to_desk_p50_ms` / `fault_to_desk_p99_ms` are the MQTT figures, the ones with a limit
  of their own (p99 under 100 ms); `*_to_limit` divide each p99 by its limit (MQTT 100 ms, Modbus
  the poll interval plus 100 ms): under 1 meets it.

Every answer is checked (testsupport/answers.py): status, and shape against the API's own answer model.
The API limits each user's changes (api/auth.py: a token bucket per user name, one limit for all
users, not settable per user), and a cycle makes three. So the bench acts as two users of its own,
added to the ops store before the system starts, as `facility users add` would: `bench-plant`, an
engineer, breaks and mends the plant through /sim, and `bench-duty`, a duty officer, acknowledges.
Each keeps the product's limit; a 429 is waited out (its Retry-After) and the request sent again,
counted in `rate_limited`. A fault is timed from the request that was accepted, so the wait is
never in a figure. Any other unexpected answer, or an event that does not come, ends the bench
with a message and a non-zero exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api.schemas import Alarm
from bench.support.figures import summary
from facility.duration import parse_duration
from facility.netutil import free_port
from facility.site import load_site
from facility.store.ops import OpsStore
from facility.store.users import Role, UserStore
from facility_app.places import ops_url
from testsupport.answers import CheckedClient, UnexpectedAnswer, until_ready
from testsupport.servers import Mosquitto
from testsupport.system import EventStream, alarm, running_system, write_site

ZERO_FOR = """
rules:
  - id: elevator-entrapment
    title: {zh: "{device_name} 困人", en: "{device_name}: passengers trapped"}
    devices: {types: [elevator]}
    when: not moving and not in_door_zone and not door_open and alarm_button
    clear: in_door_zone and door_open
    priority: emergency
"""
EVENT_TIMEOUT_S = 60.0
PLANT_USER, DUTY_USER = "bench-plant", "bench-duty"
READY_KINDS = ("ops_store", "telemetry_store", "spool", "broker", "modbus_bus", "outcomes")


class BenchFailed(RuntimeError):
    """Something the bench expected did not happen; the message says what."""


class Desk:
    """The two users' clients and the event stream, with what one fault cycle needs of them."""

    def __init__(self, plant: CheckedClient, duty: CheckedClient, events: EventStream) -> None:
        self.plant, self.duty, self.events = plant, duty, events

    @property
    def rate_limited(self) -> int:
        return self.plant.rate_limited + self.duty.rate_limited

    @property
    def rate_limited_s(self) -> float:
        return self.plant.rate_limited_s + self.duty.rate_limited_s

    async def inject(self, device: str, fault: str) -> float:
        """Give the device the fault; the perf_counter time the accepted request was sent."""
        answer = await self.plant.post(
            "/sim/faults", json={"device": device, "fault": fault}, expect=201, check=sim_device(device, fault, True)
        )
        return answer.sent

    async def clear(self, device: str, fault: str) -> None:
        await self.plant.delete(f"/sim/faults/{device}", check=sim_device(device, fault, False))

    async def acknowledge(self, alarm_id: int, rule: str) -> None:
        def acked(body: Any) -> str | None:
            if (body["id"], body["rule"], body["acknowledged"]) != (alarm_id, rule, True):
                return f"not alarm {alarm_id} of {rule} acknowledged"
            return None if body["acked_by"] == DUTY_USER else f"acknowledged by {body['acked_by']!r}, not {DUTY_USER}"

        await self.duty.post(f"/api/v1/alarms/{alarm_id}/ack", model=Alarm, check=acked)

    async def event(self, rule: str, state: str, after: int, what: str) -> tuple[int, dict[str, Any]]:
        """The id and data of the first alarm event of `rule` in `state` numbered above `after`."""
        try:
            found = await self.events.wait_for(alarm(rule, state), EVENT_TIMEOUT_S, after=after)
        except TimeoutError:
            raise BenchFailed(f"no {state} alarm event of {rule} within {EVENT_TIMEOUT_S:g} s {what}") from None
        return found.id, found.data


def sim_device(device: str, fault: str, present: bool) -> Callable[[Any], str | None]:
    """A check of a /sim answer: the device described, with (or without) the fault."""

    def check(body: Any) -> str | None:
        if not isinstance(body, dict) or body.get("id") != device or not isinstance(body.get("faults"), dict):
            return f"not a description of the simulated device {device}"
        if (fault in body["faults"]) != present:
            return f"{device} {'lacks' if present else 'still has'} the fault {fault}"
        return None

    return check


async def cycle(desk: Desk, device: str, fault: str, rule: str, after: int) -> tuple[float, int]:
    """Seconds from injecting the fault to its alarm event, and the last event id of the cycle."""
    await asyncio.sleep(random.uniform(0, 1.0))  # fall anywhere in the poll and publish cycles
    start = await desk.inject(device, fault)
    raised_id, raised = await desk.event(rule, "unacknowledged", after, f"after injecting {fault} in {device}")
    elapsed = time.perf_counter() - start
    await desk.clear(device, fault)
    await desk.acknowledge(raised["id"], rule)
    closed_id, _ = await desk.event(rule, "normal", raised_id, f"after clearing and acknowledging alarm {raised['id']}")
    return elapsed, closed_id


async def cycles(desk: Desk, count: int, device: str, fault: str, rule: str) -> list[float]:
    samples, last = [], 0
    for _ in range(count):
        elapsed, last = await cycle(desk, device, fault, rule, last)
        samples.append(elapsed)
    return samples


async def add_users(site_path: Path, data_dir: Path) -> dict[str, str]:
    """The bench's own users in the ops store the system will open: name -> token."""
    site = load_site(site_path)
    ops = OpsStore(ops_url(site, data_dir), site=site.site.id)
    await ops.start()
    try:
        users = UserStore(ops)
        return {
            PLANT_USER: await users.add(PLANT_USER, Role.ENGINEER),
            DUTY_USER: await users.add(DUTY_USER, Role.DUTY),
        }
    finally:
        await ops.close()


async def main(faults: int, library_faults: int, poll: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        broker = Mosquitto(folder)
        broker.start()
        try:
            (folder / "rules.yaml").write_text(ZERO_FOR)
            site_path = write_site(folder, broker.url, free_port(), poll=poll, extra="rules: [rules.yaml]\n")
            data_dir = folder / "data"
            tokens = await add_users(site_path, data_dir)
            async with (
                running_system(site_path, data_dir) as (url, _site),
                EventStream(url) as events,
                httpx.AsyncClient(base_url=url, headers=bearer(tokens[PLANT_USER])) as plant,
                httpx.AsyncClient(base_url=url, headers=bearer(tokens[DUTY_USER])) as duty,
            ):
                desk = Desk(CheckedClient(plant), CheckedClient(duty), events)
                # The API answers before its ops store has opened (users and lists answer 503 until
                # then) and before the pump's first poll: every part up, then the first fault.
                await until_ready(desk.plant, READY_KINDS)
                mqtt = await cycles(desk, faults, "lift-1", "entrapment", "elevator-entrapment")
                modbus = await cycles(desk, faults, "pump-1", "overload_trip", "booster-pump-tripped")
                library = await cycles(desk, library_faults, "pump-1", "low_pressure", "booster-pump-low-pressure")
            data_files = sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob("*"))
        finally:
            broker.stop()
    over_mqtt = summary("mqtt_fault_to_desk", mqtt, digits=1)
    over_modbus = summary("modbus_fault_to_desk", modbus, digits=1)
    modbus_limit_ms = parse_duration(poll) * 1000 + 100
    return {
        "benchmark": "fault_to_desk",
        "faults": faults,
        "poll_s": poll,
        "fault_to_desk_p50_ms": over_mqtt["mqtt_fault_to_desk_p50_ms"],
        "fault_to_desk_p99_ms": over_mqtt["mqtt_fault_to_desk_p99_ms"],
        "mqtt_p99_to_limit": round(over_mqtt["mqtt_fault_to_desk_p99_ms"] / 100, 3),
        "modbus_p99_to_limit": round(over_modbus["modbus_fault_to_desk_p99_ms"] / modbus_limit_ms, 3),
        **over_mqtt,
        **over_modbus,
        "library_low_pressure_faults": library_faults,
        **summary("library_low_pressure", library, digits=1),
        "rate_limited": desk.rate_limited,
        "rate_limited_wait_s": round(desk.rate_limited_s, 1),
        # What the runtime kept on disk in the run: a journal in the path shows up here by name.
        "journal_in_path": any("journal" in name.lower() for name in data_files),
        "data_files": data_files,
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", type=int, default=200)
    parser.add_argument("--library-faults", type=int, default=5)
    parser.add_argument("--poll", default="1s", help="Modbus poll interval of the pump")
    args = parser.parse_args()
    try:
        result = asyncio.run(main(args.faults, args.library_faults, args.poll))
    except (UnexpectedAnswer, BenchFailed) as exc:
        sys.exit(f"bench/fault_to_desk.py failed: {exc}")
    print(json.dumps(result), flush=True)
