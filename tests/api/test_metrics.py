"""GET /metrics over real HTTP, parsed with prometheus_client's own parser: it needs a user's token;
each Modbus bus has its requests, timeouts, busy retries and exceptions, equal to what a tap on
the wire counted while real pollers read real simulators; every part has its up gauge; and the
event-loop lag rises while the loop is blocked."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from facility.looplag import LoopLag
from facility.model import Quality, Reading
from facility.netutil import free_port
from facility.site import Site, load_site
from gateway.modbus.poller import DEMOTED_MAX_S, BusPoller
from tests.api.health_app import TOKEN, Heard, health_app, pump, running
from tests.gateway.modbus_tap import ModbusTap
from tests.simulators.conftest import simulated, until


@dataclass
class Scrape:
    types: dict[str, str]  # family name -> type
    samples: list[Sample]

    def value(self, name: str, **labels: str) -> float:
        (found,) = [s.value for s in self.samples if s.name == name and s.labels == labels]
        return found


async def scrape(http: httpx.AsyncClient, token: str) -> Scrape:
    answer = await http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = list(text_string_to_metric_families(answer.text))
    return Scrape({f.name: f.type for f in families}, [s for f in families for s in f.samples])


async def test_metrics_need_a_user_token(tmp_path: Path) -> None:
    async with simulated(tmp_path, pump(free_port())) as (site, _host):
        async with health_app(tmp_path, site, []) as app, httpx.AsyncClient(base_url=app.url) as http:
            for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": f"Basic {TOKEN}"}):
                refused = await http.get("/metrics", headers=headers)
                assert refused.status_code == 401, headers
                assert refused.headers["www-authenticate"] == "Bearer"
            await scrape(http, app.viewer)  # a viewer, the lowest role, may
            await scrape(http, TOKEN)


class Halting(Heard):
    """Stops its poller at the end of the next poll it tells of, so that nothing is on the wire
    when the counts are compared (the poller is between polls, asleep, when it is cancelled)."""

    task: asyncio.Task[None] | None = None
    halt = False

    def publish(self, readings: list[Reading]) -> None:
        super().publish(readings)
        if self.halt and self.task is not None:
            self.task.cancel()

    def polls(self) -> int:
        return sum(r.point == "outlet_pressure" and r.quality is Quality.GOOD for r in self.readings)

    async def stop(self) -> None:
        assert self.task is not None
        self.halt = True
        await until(self.task.done, timeout=10)


def poller_of(site: Site, device: str, heard: Halting) -> BusPoller:
    d = site.device(device)
    assert d.modbus is not None
    poller = BusPoller(d.modbus, [(d, site.profile_of(d))], heard.publish, heard.on_status, heard.dead_letter)
    heard.task = asyncio.create_task(poller.run())
    return poller


async def test_each_bus_has_its_modbus_figures_as_counted_on_the_wire(tmp_path: Path) -> None:
    """Bus A's pump turns busy for a while (every other request refused with exception 06); bus B's
    tap swallows requests until its pump is offline, then lets them through again."""
    sim_a, sim_b = free_port(), free_port()
    (tmp_path / "sim").mkdir()
    async with simulated(tmp_path / "sim", pump(sim_a, "pump-1") + pump(sim_b, "pump-2")) as (_sim, host):
        async with ModbusTap(sim_a) as tap_a, ModbusTap(sim_b) as tap_b:
            gateway = tmp_path / "site.yaml"
            gateway.write_text("site: {id: taps}\ndevices:\n" + pump(tap_a.port, "pump-1") + pump(tap_b.port, "pump-2"))
            site = load_site(gateway)
            heard_a, heard_b = Halting(), Halting()
            pollers = [poller_of(site, "pump-1", heard_a), poller_of(site, "pump-2", heard_b)]
            started_s = time.time()
            try:
                async with health_app(tmp_path, site, pollers) as app, httpx.AsyncClient(base_url=app.url) as http:
                    await until(lambda: heard_a.polls() >= 2 and heard_b.polls() >= 2)
                    await host.inject("pump-1", "busy")
                    await until(lambda: tap_a.busy >= 4)
                    await host.clear("pump-1")
                    await heard_a.stop()

                    tap_b.swallow = True
                    await until(lambda: ("pump-2", False) in heard_b.status)
                    tap_b.swallow = False
                    await until(lambda: heard_b.status.count(("pump-2", True)) == 2, timeout=DEMOTED_MAX_S + 5)
                    await heard_b.stop()

                    got = await scrape(http, app.viewer)
            finally:
                for heard in (heard_a, heard_b):
                    if heard.task is not None:
                        heard.task.cancel()

    a, b = f"127.0.0.1:{tap_a.port}", f"127.0.0.1:{tap_b.port}"
    for name in ("requests", "timeouts", "retries", "exceptions"):
        assert got.types[f"facility_modbus_{name}"] == "counter"
    assert got.value("facility_modbus_requests_total", bus=a) == tap_a.requests
    assert got.value("facility_modbus_exceptions_total", bus=a) == tap_a.exceptions == tap_a.busy >= 4
    assert got.value("facility_modbus_retries_total", bus=a) == tap_a.busy  # each refusal asked again
    assert got.value("facility_modbus_timeouts_total", bus=a) == 0
    assert got.value("facility_modbus_requests_total", bus=b) == tap_b.requests
    assert got.value("facility_modbus_timeouts_total", bus=b) == tap_b.swallowed >= 1
    assert (
        got.value("facility_modbus_retries_total", bus=b) == got.value("facility_modbus_exceptions_total", bus=b) == 0
    )
    assert tap_a.answers + tap_b.answers + tap_b.swallowed == tap_a.requests + tap_b.requests  # nothing in flight

    for bus in (a, b):
        labels = {"part": f"modbus {bus}", "kind": "modbus_bus"}
        assert got.value("facility_part_up", **labels) == 1
        assert got.value("facility_part_degraded", **labels) == 0
        assert started_s <= got.value("facility_part_last_success_timestamp_seconds", **labels) <= time.time()


async def test_the_event_loop_lag_rises_while_the_loop_is_blocked(tmp_path: Path) -> None:
    async with simulated(tmp_path, pump(free_port())) as (site, _host):
        lag = LoopLag()
        async with health_app(tmp_path, site, [lag]) as app, httpx.AsyncClient(base_url=app.url) as http:
            async with running(lag.run()):  # started once the app is built: building it is not the lag
                await until(lag.figures)
                assert (await scrape(http, app.viewer)).types["facility_event_loop_lag_seconds"] == "gauge"
                before = (await scrape(http, app.viewer)).value("facility_event_loop_lag_seconds")
                assert before < 0.5
                assert (await http.get("/readyz")).json()["parts"][0]["state"] == "up"

                blocked_until = time.monotonic() + 1.5
                while time.monotonic() < blocked_until:  # a callback that hogs the loop: the fault under test
                    pass
                after = (await scrape(http, app.viewer)).value("facility_event_loop_lag_seconds")
                # The monitor's sleep was due at most one interval (0.25 s) into the block.
                assert after >= 1.2 > before
                (loop_part,) = (await http.get("/readyz")).json()["parts"]
                assert (loop_part["name"], loop_part["state"]) == ("event loop", "degraded"), loop_part
                assert "late" in loop_part["detail"]
