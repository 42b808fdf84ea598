"""Simulators under test, and clients that read them over their real protocols."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pymodbus.client import AsyncModbusTcpClient

from facility.model import Value
from facility.mqtt import MqttClient
from facility.mqtt_delivery import Message
from facility.site import Site, load_site
from gateway.modbus.planner import plan
from gateway.modbus.reader import read_points
from simulators.host import SimulatorHost


@asynccontextmanager
async def simulated(
    tmp_path: Path, devices: str, broker_url: str = "mqtt://127.0.0.1:1", seed: int = 1
) -> AsyncIterator[tuple[Site, SimulatorHost]]:
    """Simulators for a site whose `devices:` list is the YAML text `devices`."""
    path = tmp_path / "site.yaml"
    path.write_text(f'site: {{id: sim}}\nbroker: {{url: "{broker_url}"}}\ndevices:\n{devices}')
    site = load_site(path)
    host = SimulatorHost(site, seed=seed)
    await host.start()
    try:
        yield site, host
    finally:
        await host.stop()


async def read_modbus(site: Site, device_id: str, timeout: float = 2.0) -> dict[str, Value]:
    """Every point of a Modbus device, read as the gateway reads it (planner and codec)."""
    device = site.device(device_id)
    assert device.modbus is not None
    fields = {n: p.modbus for n, p in site.profile_of(device).points.items() if p.modbus}
    client = AsyncModbusTcpClient(device.modbus.host, port=device.modbus.port, timeout=timeout, retries=0)
    await client.connect()
    try:
        return await read_points(client, plan(fields), device.modbus.unit)
    finally:
        client.close()


async def until(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Await `check()` (sync or async) until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"not true within {timeout}s; last: {result!r}")
        await asyncio.sleep(interval)


async def read_until(
    site: Site, device_id: str, check: Callable[[dict[str, Any]], Any], timeout: float = 10.0
) -> dict[str, Any]:
    """Read a Modbus device until `check(values)` holds; fail showing the last reading otherwise."""
    last: dict[str, Any] = {}

    async def probe() -> bool:
        nonlocal last
        last = await read_modbus(site, device_id)
        return bool(check(last))

    try:
        await until(probe, timeout)
    except TimeoutError:
        raise AssertionError(f"{device_id}: never true; last read: {last}") from None
    return last


class MqttProbe:
    """Subscribes to everything on a broker and keeps what arrives, per topic, in order."""

    def __init__(self, host: str, port: int) -> None:
        self.messages: dict[str, list[bytes]] = {}
        self._client = MqttClient(host, port, subscriptions=[("#", 1)], on_messages=self._got)

    def _got(self, batch: list[Message]) -> None:
        for topic, payload in batch:
            self.messages.setdefault(topic, []).append(bytes(payload))

    def latest_json(self, topic: str) -> dict[str, Any] | None:
        for payload in reversed(self.messages.get(topic, [])):
            try:
                return json.loads(payload)  # type: ignore[no-any-return]
            except ValueError:
                continue
        return None

    async def __aenter__(self) -> MqttProbe:
        await self._client.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._client.stop()
