"""Modbus polling: requests per cycle against the protocol's minimum, points per second from 100
simulated devices, CPU share and peak memory of the polling process.

The simulators run in a process of their own (`facility sim run`), ten Modbus TCP gateways with
ten booster pumps each; this process polls them all as fast as they answer (interval 0) for a
fixed time. Prints one JSON object on a line of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from facility.aio import cancel_all
from facility.codec import register_count
from facility.model import Reading
from facility.netutil import free_port, wait_for_port
from facility.profile import ModbusField, Profile
from facility.site import Device, load_site
from gateway.modbus.planner import MAX_BITS_PER_READ, MAX_REGISTERS_PER_READ
from gateway.modbus.poller import BusPoller


def min_requests(fields: dict[str, ModbusField]) -> int:
    """The fewest reads the protocol allows for these points: per table, its span over the limit."""
    total = 0
    for table in {f.table for f in fields.values()}:
        members = [f for f in fields.values() if f.table == table]
        span = max(f.address + register_count(f) for f in members) - min(f.address for f in members)
        limit = MAX_BITS_PER_READ if table in ("coil", "discrete") else MAX_REGISTERS_PER_READ
        total += -(-span // limit)
    return total


def device_line(bus: int, port: int, unit: int) -> str:
    binding = f"{{port: {port}, unit: {unit}, interval: 0s, timeout: 2s}}"
    return f"  - {{id: pump-{bus}-{unit}, profile: booster_pump, modbus: {binding}}}\n"


async def main(buses: int, units: int, seconds: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        ports = [free_port() for _ in range(buses)]
        devices = "".join(device_line(b, port, u) for b, port in enumerate(ports) for u in range(1, units + 1))
        site_path = Path(tmp) / "site.yaml"
        site_path.write_text(f"site: {{id: bench}}\nbroker: {{url: 'mqtt://127.0.0.1:1'}}\ndevices:\n{devices}")
        site = load_site(site_path)
        command = ["-m", "facility_app", "sim", "run", str(site_path), "--port", str(free_port())]
        sims = await asyncio.create_subprocess_exec(
            sys.executable, *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        try:
            for port in ports:
                await wait_for_port("127.0.0.1", port, 30)
            received = 0

            def publish(readings: list[Reading]) -> None:
                nonlocal received
                received += len(readings)

            by_port: dict[int, list[tuple[Device, Profile]]] = {}
            for d in site.devices:
                assert d.modbus is not None
                by_port.setdefault(d.modbus.port, []).append((d, site.profile_of(d)))
            pollers = []
            for members in by_port.values():
                binding = members[0][0].modbus
                assert binding is not None
                pollers.append(BusPoller(binding, members, publish, lambda *_: None, lambda *_: None))
            tasks = [asyncio.create_task(p.run()) for p in pollers]
            await asyncio.sleep(1.0)  # warm-up: connections made, first cycle done
            cpu0, wall0, got0, req0 = time.process_time(), time.monotonic(), received, sum(p.requests for p in pollers)
            await asyncio.sleep(seconds)  # the measurement window
            cpu1, wall1, got1, req1 = time.process_time(), time.monotonic(), received, sum(p.requests for p in pollers)
            await cancel_all(tasks)
        finally:
            sims.send_signal(signal.SIGINT)
            await asyncio.wait_for(sims.wait(), 30)
    profile = site.profile_of(site.devices[0])
    fields = {n: p.modbus for n, p in profile.points.items() if p.modbus is not None}
    points = len(fields)
    cycles = (got1 - got0) / points  # one cycle = one device read once
    return {
        "benchmark": "modbus",
        "devices": buses * units,
        "buses": buses,
        "seconds": seconds,
        "requests_per_cycle": round((req1 - req0) / cycles, 3),
        "min_requests_per_cycle": min_requests(fields),
        "points_per_s": round((got1 - got0) / (wall1 - wall0)),
        "device_polls_per_s": round(cycles / (wall1 - wall0), 1),
        "cpu_share": round((cpu1 - cpu0) / (wall1 - wall0), 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cpus": os.cpu_count(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buses", type=int, default=10)
    parser.add_argument("--units", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.buses, args.units, args.seconds))), flush=True)
