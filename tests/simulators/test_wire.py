"""Clients nobody here wrote read the simulators and see exactly what the profiles say.

- mbpoll (Debian's libmodbus master) reads every Modbus profile over Modbus TCP, and two of them
  over Modbus RTU on a pty pair made by socat. The raw registers and bits it prints must equal
  `facility.codec.pack` of the model's frozen values; its own 32-bit decoding (libmodbus word
  order) must give the model's values; on RTU the gateway's own read path must decode them too.
- mosquitto_sub reads a `facility sim run` process: JSON laid out by the profile's json paths, a
  retained "online" status, and the "offline" last will once the process is killed.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import AsyncModbusSerialClient

from facility.codec import decode, pack, register_count
from facility.model import Value
from facility.netutil import free_port
from facility.profile import BUILTIN_DIR, ModbusField, Profile, load_profiles
from facility.site import load_site
from gateway.modbus.planner import plan
from gateway.modbus.reader import read_points
from simulators.models import DeviceModel
from tests.simulators.conftest import simulated
from testsupport.servers import Mosquitto, require_binary

PROFILES = load_profiles([BUILTIN_DIR])
MODBUS_PROFILES = sorted(name for name, profile in PROFILES.items() if profile.protocol == "modbus")
MBPOLL_TABLE = {"holding": "4", "input": "3", "coil": "0", "discrete": "1"}  # mbpoll's -t
UNIT = 7  # not the default 1, so that a client ignoring the unit id would be caught
RTU_UNIT = 3
BAUD = 9600
MBPOLL_LINE = re.compile(r"^\[(\d+)\]:\s+(\S+)", re.MULTILINE)
Registers = dict[tuple[str, int], int]

# The models' own values leave many bits 0 (a quiet fire panel, lights off by day), which would hide
# a bit read from the wrong place. So each device is also read with its bool points set to a pattern
# that tells every bit from its neighbours, and to the complement of that pattern.
ROUNDS = ("model", "alternating", "complement")


def modbus_fields(profile: Profile) -> dict[str, ModbusField]:
    return {name: spec.modbus for name, spec in profile.points.items() if spec.modbus is not None}


def is_bit(field: ModbusField) -> bool:
    return field.table in ("coil", "discrete") or field.bit is not None


def set_round(profile: Profile, values: dict[str, Value], round_: str) -> None:
    """Set the frozen model's bool points for a round (the model's own values stay as they are)."""
    if round_ == "model":
        return
    bits = sorted(
        ((f.table, f.address, f.bit or 0, name) for name, f in modbus_fields(profile).items() if is_bit(f)),
    )
    for i, (*_, name) in enumerate(bits):
        values[name] = (i % 2 == 0) == (round_ == "alternating")


def expected_registers(profile: Profile, values: Mapping[str, Value]) -> Registers:
    """What the profile says the wire carries for these values: every point packed at once, so that
    bit fields sharing a register are merged into it."""
    fields = modbus_fields(profile)
    missing = sorted(set(fields) - set(values))
    assert not missing, f"the {profile.name} model has no value for profile points {missing}"
    return pack((field, values[name]) for name, field in fields.items())


def table_spans(profile: Profile) -> dict[str, tuple[int, int]]:
    """(start, count) of each table the profile uses, covering all its points."""
    spans: dict[str, tuple[int, int]] = {}
    for field in modbus_fields(profile).values():
        end = field.address + register_count(field)
        start, count = spans.get(field.table, (field.address, 0))
        start = min(start, field.address)
        spans[field.table] = (start, max(start + count, end) - start)
    return spans


def points_at(profile: Profile) -> dict[tuple[str, int], list[str]]:
    """The point names that occupy each (table, address), for messages that say which point is wrong."""
    where: dict[tuple[str, int], list[str]] = {}
    for name, field in modbus_fields(profile).items():
        for i in range(register_count(field)):
            where.setdefault((field.table, field.address + i), []).append(name)
    return where


class Mbpoll:
    """mbpoll, one poll per call, against one slave over TCP or RTU."""

    def __init__(self, binary: str, link: Sequence[str], target: str) -> None:
        self.binary = binary
        self.link = list(link)  # -m and the protocol's own options, and -a
        self.target = target  # host or serial device

    async def run(self, kind: str, start: int, count: int, extra: Sequence[str] = ()) -> dict[int, str]:
        """`[address]: value` lines of one poll, by address (the first token after the colon)."""
        args = [*self.link, "-0", "-1", "-o", "2", "-r", str(start), "-c", str(count), "-t", kind, *extra]
        proc = await asyncio.create_subprocess_exec(
            self.binary, *args, self.target, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 20)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        text = out.decode(errors="replace")
        assert proc.returncode == 0, f"mbpoll {' '.join(args)} {self.target} failed: {err.decode().strip()}\n{text}"
        return {int(a): v for a, v in MBPOLL_LINE.findall(text)}

    async def words(self, table: str, start: int, count: int) -> dict[int, int]:
        """Raw 16-bit registers (or 0/1 bits), by address."""
        got = await self.run(MBPOLL_TABLE[table], start, count)
        assert sorted(got) == list(range(start, start + count)), f"mbpoll returned addresses {sorted(got)}"
        # mbpoll prints a register above 32767 as "55115 (-10421)"; the first number is unsigned,
        # and the mask keeps the comparison right should a version print only the signed one.
        return {address: int(v) & 0xFFFF for address, v in got.items()}


def compare(profile: Profile, table: str, got: Mapping[int, int], expected: Registers) -> list[str]:
    """Mismatches between what mbpoll read of `table` and what the profile says, point by point."""
    where = points_at(profile)
    wrong = []
    for (t, address), word in sorted(expected.items()):
        if t == table and address in got and got[address] != word:
            names = ", ".join(where[(t, address)])
            wrong.append(f"{table} {address} ({names}): wire {got[address]:#06x}, profile says {word:#06x}")
    return wrong


async def check_tables(mbpoll: Mbpoll, profile: Profile, model: DeviceModel, what: str) -> Registers:
    """One mbpoll read per table over all its points; returns what mbpoll read, by (table, address)."""
    expected = expected_registers(profile, model.values)
    read: Registers = {}
    wrong: list[str] = []
    for table, (start, count) in table_spans(profile).items():
        got = await mbpoll.words(table, start, count)
        read.update({(table, a): w for a, w in got.items()})
        wrong += compare(profile, table, got, expected)
    assert not wrong, f"{profile.name} ({what}): mbpoll disagrees with the profile:\n" + "\n".join(wrong)
    return read


async def check_each_point(mbpoll: Mbpoll, profile: Profile, model: DeviceModel) -> None:
    """Each point read alone, from its own address: the server's offsets, not only whole tables."""
    expected = expected_registers(profile, model.values)
    wrong: list[str] = []
    for field in modbus_fields(profile).values():
        got = await mbpoll.words(field.table, field.address, register_count(field))
        wrong += [f"alone: {w}" for w in compare(profile, field.table, got, expected)]
    assert not wrong, f"{profile.name}: mbpoll disagrees with the profile:\n" + "\n".join(wrong)


async def check_32bit(mbpoll: Mbpoll, profile: Profile, model: DeviceModel) -> None:
    """mbpoll's own 32-bit decoding (-t T:int / T:float, -B for big word order) gives the model's
    values: libmodbus, not our codec, says what word order the registers are in."""
    wrong = []
    for name, field in modbus_fields(profile).items():
        if register_count(field) != 2:
            continue
        assert field.byte_order == "big", f"{name}: mbpoll cannot show swapped bytes; check this point another way"
        value = model.values[name]
        raw = field.sentinel if value is None else (float(value) - field.offset) / field.scale
        assert raw is not None
        kind = f"{MBPOLL_TABLE[field.table]}:{'float' if field.type == 'float32' else 'int'}"
        order = ["-B"] if field.word_order == "big" else []
        text = (await mbpoll.run(kind, field.address, 1, order))[field.address]
        if field.type == "float32":
            ok = math.isclose(float(text), raw, rel_tol=1e-5, abs_tol=1e-6)  # mbpoll prints 6 digits (%g)
        else:
            ok = int(text) & 0xFFFFFFFF == round(raw) & 0xFFFFFFFF
        if not ok:
            wrong.append(
                f"{name} ({field.table} {field.address}, {field.type} {field.word_order}): mbpoll {text}, model {raw}"
            )
    assert not wrong, f"{profile.name}: libmodbus's 32-bit decoding disagrees:\n" + "\n".join(wrong)


@pytest.mark.parametrize("profile_name", MODBUS_PROFILES)
async def test_mbpoll_over_tcp_reads_what_the_profile_says(tmp_path: Path, profile_name: str) -> None:
    mbpoll = require_binary("mbpoll", "mbpoll")
    profile = PROFILES[profile_name]
    port = free_port()
    devices = f"  - {{id: dev, profile: {profile_name}, modbus: {{host: 127.0.0.1, port: {port}, unit: {UNIT}}}}}\n"
    async with simulated(tmp_path, devices) as (_, host):
        host.paused = True
        model = host.model("dev")
        client = Mbpoll(mbpoll, ["-m", "tcp", "-p", str(port), "-a", str(UNIT)], "127.0.0.1")
        for round_ in ROUNDS:
            set_round(profile, model.values, round_)
            await check_tables(client, profile, model, round_)
            if round_ == "model":
                await check_each_point(client, profile, model)
                await check_32bit(client, profile, model)


def test_every_modbus_profile_is_read_over_the_wire() -> None:
    """The parametrisation above covers the Modbus profiles this estate is built from."""
    wanted = {"booster_pump", "water_tank", "sump_pit", "power_meter", "fire_panel", "lighting_panel"}
    assert wanted <= set(MODBUS_PROFILES)


# Modbus RTU over a pty pair -------------------------------------------------------------------


@pytest.fixture
def serial_pair(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """Two linked ptys made by socat: (the simulator's side, the client's side)."""
    socat = require_binary("socat", "socat")
    sim, client = tmp_path / "sim", tmp_path / "client"
    log = tmp_path / "socat.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [socat, "-d", "-d", f"pty,raw,echo=0,link={sim}", f"pty,raw,echo=0,link={client}"], stderr=sink
        )
    try:
        deadline = time.monotonic() + 10
        while not (sim.exists() and client.exists()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"socat made no pty pair (exit {proc.returncode}):\n{log.read_text()}")
            time.sleep(0.01)  # polling for the links, with a deadline
        yield sim, client
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def read_rtu_as_the_gateway(port: Path, profile: Profile, unit: int) -> dict[str, Value]:
    """Every point of an RTU device, read as the gateway reads (planner and codec), with pymodbus."""
    fields = modbus_fields(profile)
    client = AsyncModbusSerialClient(str(port), baudrate=BAUD, parity="N", stopbits=1, bytesize=8, timeout=2, retries=0)
    assert await client.connect(), f"cannot open {port}"
    try:
        return await read_points(client, plan(fields), unit)
    finally:
        client.close()


def decode_mbpoll(profile: Profile, read: Registers) -> dict[str, Value]:
    """The points' values from the registers mbpoll read, through the gateway's codec."""
    return {
        name: decode(f, [read[(f.table, f.address + i)] for i in range(register_count(f))])
        for name, f in modbus_fields(profile).items()
    }


def off_model(profile: Profile, model: Mapping[str, Value], decoded: Mapping[str, Value]) -> list[str]:
    """Points whose decoded value is not the model's, within the resolution of the register."""
    wrong = []
    for name, f in modbus_fields(profile).items():
        want, got = model[name], decoded[name]
        if is_bit(f) or f.enum is not None or want is None or got is None:
            ok = got == (bool(want) if is_bit(f) else want)
        elif f.type == "float32":
            ok = isinstance(got, float) and math.isclose(got, float(want), rel_tol=1e-6)
        else:
            ok = abs(float(got) - float(want)) <= abs(f.scale) / 2 + 1e-6
        if not ok:
            wrong.append(f"{name}: read {got!r}, model {want!r}")
    return wrong


@pytest.mark.parametrize("profile_name", ["booster_pump", "lighting_panel"])
async def test_mbpoll_over_rtu_reads_what_the_profile_says(
    tmp_path: Path, serial_pair: tuple[Path, Path], profile_name: str
) -> None:
    mbpoll = require_binary("mbpoll", "mbpoll")
    sim_side, client_side = serial_pair
    profile = PROFILES[profile_name]
    binding = f"{{serial: {sim_side}, baudrate: {BAUD}, unit: {RTU_UNIT}}}"
    devices = f"  - {{id: dev, profile: {profile_name}, modbus: {binding}}}\n"
    link = ["-m", "rtu", "-b", str(BAUD), "-P", "none", "-s", "1", "-a", str(RTU_UNIT)]
    client = Mbpoll(mbpoll, link, str(client_side))
    async with simulated(tmp_path, devices) as (_, host):
        host.paused = True
        model = host.model("dev")
        for round_ in ROUNDS:
            set_round(profile, model.values, round_)
            read = await check_tables(client, profile, model, f"RTU, {round_}")
            if round_ == "model":
                await check_32bit(client, profile, model)
            gateway = await read_rtu_as_the_gateway(client_side, profile, RTU_UNIT)
            assert gateway == decode_mbpoll(profile, read), f"{round_}: the gateway and mbpoll decode differently"
            wrong = off_model(profile, model.values, gateway)
            assert not wrong, (
                f"{profile_name} ({round_}): the gateway reads other values than the model's:\n" + "\n".join(wrong)
            )


# MQTT with mosquitto_sub ------------------------------------------------------------------------


def mosquitto_sub(broker: Mosquitto, *args: str, timeout_s: int = 10) -> list[str]:
    """Lines mosquitto_sub prints; it exits on its own -C count or -W timeout (exit code 27)."""
    binary = require_binary("mosquitto_sub", "mosquitto-clients")
    cmd = [binary, "-h", "127.0.0.1", "-p", str(broker.port), "-W", str(timeout_s), *args]
    done = subprocess.run(cmd, capture_output=True, timeout=timeout_s + 10, check=False)
    assert done.returncode in (0, 27), f"{' '.join(cmd)}: exit {done.returncode}: {done.stderr.decode()}"
    return done.stdout.decode().splitlines()


def leaf_paths(doc: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted path -> value of every leaf of a JSON document."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(leaf_paths(value, path + "."))
        else:
            out[path] = value
    return out


def layout_problems(profile: Profile, doc: Mapping[str, Any]) -> list[str]:
    """Where a payload departs from its profile: paths missing or extra, values of the wrong type."""
    leaves = leaf_paths(doc)
    wanted = {spec.json_path: spec.value_type for spec in profile.points.values() if spec.json_path}
    problems = [f"missing {p}" for p in sorted(set(wanted) - set(leaves))]
    ts = profile.timestamp_json
    problems += [f"unexpected {p}" for p in sorted(set(leaves) - set(wanted) - {ts})]
    kinds = {"bool": (bool,), "number": (int, float), "string": (str,)}
    for path, kind in wanted.items():
        value = leaves.get(path)
        if path in leaves and (not isinstance(value, kinds[kind]) or (kind == "number" and isinstance(value, bool))):
            problems.append(f"{path} = {value!r} is not a {kind}")
    if ts is None or not isinstance(leaves.get(ts), int) or abs(leaves[ts] - time.time() * 1000) > 60_000:
        problems.append(f"timestamp {ts} = {leaves.get(ts or '')!r} is not now in epoch milliseconds")
    return problems


def test_mosquitto_sub_sees_the_profiles_json_and_the_status_with_its_last_will(
    tmp_path: Path, mosquitto: Mosquitto, repo_root: Path
) -> None:
    sub = require_binary("mosquitto_sub", "mosquitto-clients")
    prefix = f"wire-{uuid.uuid4().hex[:8]}"  # the broker lives for the whole session: topics of our own
    site_file = tmp_path / "site.yaml"
    site_file.write_text(
        f'site: {{id: wire}}\nbroker: {{url: "{mosquitto.url}"}}\ndevices:\n'
        f"  - {{id: lift-1, profile: elevator, mqtt: {{topic: {prefix}/lifts/lift-1/state, interval: 1s}}}}\n"
        f"  - {{id: door-1, profile: access_door, mqtt: {{topic: {prefix}/doors/door-1/state, interval: 1s}}}}\n"
    )
    site = load_site(site_file)
    bindings = {d.id: d.mqtt for d in site.devices if d.mqtt is not None}
    profile_of = {bindings[d.id].topic: site.profile_of(d) for d in site.devices}
    statuses = sorted(b.status for b in bindings.values())
    log = tmp_path / "sim.log"
    cmd = [sys.executable, "-m", "facility_app", "sim", "run", str(site_file), "--port", str(free_port())]
    with log.open("wb") as sink:
        sim = subprocess.Popen(cmd, cwd=repo_root, stdout=sink, stderr=subprocess.STDOUT)
    try:
        # (a) Each device's JSON as the profile lays it out. mosquitto_sub stops itself after -W
        # seconds; we stop it sooner, by its pid, once both devices have been heard.
        payloads: dict[str, dict[str, Any]] = {}
        reader = subprocess.Popen(
            [sub, "-h", "127.0.0.1", "-p", str(mosquitto.port), "-t", f"{prefix}/#", "-v", "-W", "30"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert reader.stdout is not None
            for line in reader.stdout:
                topic, _, body = line.decode().rstrip("\n").partition(" ")
                if topic in profile_of:
                    payloads[topic] = json.loads(body)
                if len(payloads) == len(profile_of):
                    break
        finally:
            if reader.poll() is None:
                reader.terminate()
            reader.wait(10)
        assert set(payloads) == set(profile_of), (
            f"heard only {sorted(payloads)} (simulator exit {sim.poll()}):\n{log.read_text()}"
        )
        for topic, doc in payloads.items():
            problems = layout_problems(profile_of[topic], doc)
            assert not problems, f"{topic}: {doc}\n" + "\n".join(problems)

        # (b) A subscriber that comes after the simulator gets "online" as a retained message.
        topics = [a for s in statuses for a in ("-t", s)]
        lines = mosquitto_sub(mosquitto, *topics, "-C", str(len(statuses)), "--retained-only", "-F", "%r %t %p")
        assert sorted(lines) == [f"1 {s} online" for s in statuses]

        # (c) Killed without a goodbye, the broker publishes the devices' last will: "offline".
        sim.kill()
        assert sim.wait(10) == -9
        deadline = time.monotonic() + 10
        while True:  # the broker notices the dead connection soon after; poll with a deadline
            lines = mosquitto_sub(
                mosquitto, *topics, "-C", str(len(statuses)), "--retained-only", "-F", "%r %t %p", timeout_s=5
            )
            if sorted(lines) == [f"1 {s} offline" for s in statuses] or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert sorted(lines) == [f"1 {s} offline" for s in statuses]
    finally:
        if sim.poll() is None:
            sim.kill()
            sim.wait(10)
