"""GET /readyz over real HTTP: every part with its state and the age of its last success, following
a Modbus bus (a real poller against a real pymodbus simulator) that goes down and comes back;
200 while the process still does useful work, 503 only when everything it depends on is down;
no token needed, and no secret told."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from facility.looplag import LoopLag
from facility.netutil import free_port
from facility.readiness import Figure, PartState, State
from facility.site import load_site
from gateway.modbus.poller import DEMOTED_MAX_S
from simulators.host import SimulatorHost
from tests.api.health_app import Heard, health_app, pollers_of, pump, running
from tests.simulators.conftest import simulated, until

BACK_S = DEMOTED_MAX_S + 5  # a device that stopped answering is tried again at a growing interval


async def ready(http: httpx.AsyncClient) -> tuple[int, dict[str, Any]]:
    answer = await http.get("/readyz")  # no token: probes and load balancers ask
    return answer.status_code, answer.json()


def part(body: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in body["parts"] if p["name"] == name)


async def test_each_part_is_named_with_its_state_and_a_bus_going_down_degrades_then_recovers(tmp_path: Path) -> None:
    """Two buses, each a simulator of its own: one loses power, the other keeps answering."""
    steady, failing = free_port(), free_port()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    gateway = tmp_path / "site.yaml"
    gateway.write_text("site: {id: two-buses}\ndevices:\n" + pump(steady, "pump-1") + pump(failing, "pump-2"))
    site = load_site(gateway)
    up_bus, down_bus = f"modbus 127.0.0.1:{steady}", f"modbus 127.0.0.1:{failing}"
    async with (
        simulated(tmp_path / "a", pump(steady, "pump-1")),
        simulated(tmp_path / "b", pump(failing, "pump-2")) as (
            sim_b,
            host_b,
        ),
    ):
        heard = Heard()
        pollers = pollers_of(site, heard)
        # The buses are judged here; the loop's own lateness is tested in test_metrics. On a busy
        # machine the test's loop can run a second late while servers start, which is no bus's state.
        lag = LoopLag(degraded_s=60.0)
        async with running(*(p.run() for p in pollers), lag.run()), health_app(tmp_path, site, [*pollers, lag]) as app:
            async with httpx.AsyncClient(base_url=app.url) as http:
                await until(lambda: {("pump-1", True), ("pump-2", True)} <= set(heard.status))
                status, body = await ready(http)
                assert (status, body["status"]) == (200, "ok"), body
                assert {(p["name"], p["kind"], p["state"]) for p in body["parts"]} == {
                    (up_bus, "modbus_bus", "up"),
                    (down_bus, "modbus_bus", "up"),
                    ("event loop", "event_loop", "up"),
                }
                assert all(0 <= p["last_success_age_s"] < 5 for p in body["parts"]), body

                await host_b.stop()  # the TCP gateway in front of pump-2 loses power
                await until(lambda: ("pump-2", False) in heard.status)
                status, body = await ready(http)
                # Still 200: the process serves the desk and the other bus; the body says degraded.
                assert (status, body["status"]) == (200, "degraded"), body
                down = part(body, down_bus)
                assert down["state"] == "down" and "pump-2" in down["detail"], down
                assert part(body, up_bus)["state"] == "up" and part(body, "event loop")["state"] == "up"
                first = down["last_success_age_s"]
                assert first is not None  # it had answered before
                await until(lambda: _age_above(http, down_bus, first), timeout=5)  # and it grows

                again = SimulatorHost(sim_b)
                await again.start()
                try:
                    await until(lambda: heard.status.count(("pump-2", True)) == 2, timeout=BACK_S)
                    status, body = await ready(http)
                    assert (status, body["status"]) == (200, "ok"), body
                    assert part(body, down_bus)["last_success_age_s"] < first
                finally:
                    await again.stop()


async def _age_above(http: httpx.AsyncClient, name: str, age: float) -> float | None:
    _, body = await ready(http)
    now = part(body, name)["last_success_age_s"]
    return now if now > age else None


async def test_it_is_503_only_while_everything_the_process_depends_on_is_down(tmp_path: Path) -> None:
    port = free_port()
    bus = f"modbus 127.0.0.1:{port}"
    async with simulated(tmp_path, pump(port)) as (site, host):
        heard = Heard()
        (poller,) = pollers_of(site, heard)
        async with running(poller.run()), health_app(tmp_path, site, [poller]) as app:
            async with httpx.AsyncClient(base_url=app.url) as http:
                await until(lambda: ("pump-1", True) in heard.status)
                assert (await ready(http))[0] == 200
                await host.stop()
                await until(lambda: ("pump-1", False) in heard.status)
                status, body = await ready(http)
                assert (status, body["status"]) == (503, "down"), body
                assert part(body, bus)["state"] == "down"
                assert (await http.get("/healthz")).status_code == 200  # alive all the same: no restart

                again = SimulatorHost(site)
                await again.start()
                try:
                    await until(lambda: ("pump-1", True) in heard.status[1:], timeout=BACK_S)
                    status, body = await ready(http)
                    assert (status, body["status"]) == (200, "ok"), body
                finally:
                    await again.stop()


class Leaky:
    """A stand-in for a store's reporter whose driver put the URL it was given, password and all,
    into its error: the ops store's own reporter is not this module's; what is tested is that
    neither /readyz nor /metrics repeats a credential, whoever reports it."""

    def parts(self) -> list[PartState]:
        detail = (
            "connection refused: postgresql+asyncpg://facility:hunter2@db.internal:5432/ops "
            "(dsn: host=db.internal user=facility password=hunter2)"
        )
        return [PartState("ops store", "ops_store", State.DOWN, None, detail)]

    def figures(self) -> list[Figure]:
        return []


async def test_no_token_is_needed_and_no_secret_is_told(tmp_path: Path) -> None:
    async with simulated(tmp_path, pump(free_port())) as (site, _host):
        lag = LoopLag()
        async with running(lag.run()), health_app(tmp_path, site, [Leaky(), lag]) as app:
            async with httpx.AsyncClient(base_url=app.url) as http:
                await until(lambda: lag.figures())
                status, body = await ready(http)
                assert (status, body["status"]) == (503, "down"), body  # the only part it depends on
                ops = part(body, "ops store")
                assert ops == {
                    "name": "ops store",
                    "kind": "ops_store",
                    "state": "down",
                    "last_success_age_s": None,  # never succeeded
                    "detail": ops["detail"],
                }
                assert "db.internal" in ops["detail"] and "hunter2" not in ops["detail"], ops
                metrics = await http.get("/metrics", headers={"Authorization": f"Bearer {app.viewer}"})
                assert metrics.status_code == 200 and "hunter2" not in metrics.text
