"""The fire alarm names the zones in fire, as the panel's display does, and follows the fire as it
spreads (issue #14).

The library's fire rule runs on the simulated panel, read over Modbus TCP by the real gateway,
with the whole system and the real broker; the spread runs on the real rules service (engine,
journal, outcomes, notifier and a webhook receiver) over the ops store on SQLite and PostgreSQL,
also through an outage: nothing is mocked.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from typer.testing import CliRunner

from facility.bus import Bus, Event, LocalBus
from facility.model import Quality, Reading, now_ns
from facility.netutil import free_port
from facility.records import replaced_texts, spread_texts
from facility.site import Site, load_site
from facility.store.ops import OpsStore
from facility.store.tasks import TaskStore
from facility.vocabulary import AlarmAction, EventKind
from facility_app.cli import app
from rules.engine import Change, Engine
from rules.notify import Notifier, markdown
from rules.ruleset import load_rules, rule_texts
from rules.service import RulesService
from tests.rules.conftest import MakeSite
from tests.rules.test_notify import Receiver, receiver
from tests.rules.test_notify import running as notifying
from testsupport.proxy import Outage, outage
from testsupport.servers import Mosquitto
from testsupport.system import TOKEN, EventStream, alarm, running_system, write_site

DEADLINE_S = 30.0  # generous: polling and the rule engine on a loaded 2-core machine
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PANEL = "fire-1"


def panel_site(folder: Path, broker_url: str) -> Path:
    """The test estate with a fire panel in building B3, polled every 200 ms."""
    panel = (
        f"  - id: {PANEL}\n"
        "    name: FACP-1\n"
        "    profile: fire_panel\n"
        "    location: {building: B3}\n"
        f"    modbus: {{host: 127.0.0.1, port: {free_port()}, unit: 1, interval: 200ms, timeout: 500ms}}\n"
    )
    return write_site(folder, broker_url, free_port(), extra=panel)


async def raised_fire_alarm(http: httpx.AsyncClient, events: EventStream, after: int) -> tuple[dict[str, Any], int]:
    """The fire alarm raised after event `after`, as the desk lists it, and its event's id."""
    event = await events.wait_for(alarm("fire-alarm", "unacknowledged"), DEADLINE_S, after)
    (listed,) = [a for a in (await http.get("/api/v1/alarms")).json()["items"] if a["id"] == event.data["id"]]
    return listed, event.id


async def test_the_fire_alarm_names_every_zone_in_fire_in_both_languages(tmp_path: Path, mosquitto: Mosquitto) -> None:
    site_path = panel_site(tmp_path, mosquitto.url)
    async with (
        running_system(site_path, tmp_path / "data") as (url, _site),
        EventStream(url) as events,
        httpx.AsyncClient(base_url=url, headers=AUTH) as http,
    ):
        response = await http.post("/sim/faults", json={"device": PANEL, "fault": "fire", "params": {"zone": 3}})
        assert response.status_code == 201, response.text
        one, seen = await raised_fire_alarm(http, events, 0)
        assert one["title"] == {"zh": "B3 火警：3号防区", "en": "B3 fire: Zone 3"}
        assert one["message"] == {
            "zh": "FACP-1报火警：3号防区。立即到场确认",
            "en": "FACP-1 reports fire in Zone 3. Confirm on site now",
        }

        assert (await http.post(f"/api/v1/alarms/{one['id']}/ack")).status_code == 200
        assert (await http.delete(f"/sim/faults/{PANEL}")).status_code == 200  # the panel is reset
        seen = (await events.wait_for(alarm("fire-alarm", "normal"), DEADLINE_S, seen)).id

        # Two zones go into fire while the panel does not answer, so that the first reading after
        # it answers again carries both: the alarm is raised with the zones in fire at that moment.
        for fault in ({"fault": "comm_loss"}, {"fault": "fire", "params": {"zone": 5}}, {"fault": "fire"}):
            response = await http.post("/sim/faults", json={"device": PANEL, **fault})
            assert response.status_code == 201, response.text
        assert (await http.delete(f"/sim/faults/{PANEL}/comm_loss")).status_code == 200
        two, _ = await raised_fire_alarm(http, events, seen)
    assert two["title"] == {"zh": "B3 火警：1号防区、5号防区", "en": "B3 fire: Zone 1, Zone 5"}
    assert two["message"] == {
        "zh": "FACP-1报火警：1号防区、5号防区。立即到场确认",
        "en": "FACP-1 reports fire in Zone 1, Zone 5. Confirm on site now",
    }


def test_rules_check_refuses_a_value_no_enum_point_takes(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(
        "site: {id: plant}\n"
        "use_rule_library: false\n"
        "devices:\n"
        "  - {id: fire-1, profile: fire_panel, modbus: {port: 1502}}\n"
    )
    rules = tmp_path / "fire.yaml"
    rules.write_text(
        "rules:\n"
        "  - id: zones\n"
        "    title:\n"
        '      zh: "火警：{points_in:fire}"\n'
        '      en: "fire in {points_in:nonsense}"\n'  # line 5: no zone is ever `nonsense`
        "    devices: {types: [fire_panel]}\n"
        "    when: general_fire\n"
        "    priority: emergency\n"
    )
    result = CliRunner().invoke(app, ["rules", "check", str(rules), "--site", str(site)])
    assert result.exit_code == 1
    values = "fault, fire, isolated, normal, supervisory"
    assert result.stdout.splitlines() == [
        f"{rules}:5: rules[0].title.en: {{points_in:nonsense}} names no value of an enum point "
        f"of this rule's devices (values: {values})"
    ]
    rules.write_text(rules.read_text().replace("nonsense", "fire"))
    result = CliRunner().invoke(app, ["rules", "check", str(rules), "--site", str(site)])
    assert result.exit_code == 0, result.stdout


# The spread of a fire on the rules service, fed the panel's readings as the gateway hands them on.

ZONES = [f"zone_{n}_state" for n in range(1, 9)]
TITLE = {"zh": "B3 火警：{zh}", "en": "B3 fire: {en}"}
MESSAGE = {"zh": "FACP-1报火警：{zh}。立即到场确认", "en": "FACP-1 reports fire in {en}. Confirm on site now"}


def texts(form: dict[str, str], zh: str, en: str) -> dict[str, str]:
    return {"zh": form["zh"].format(zh=zh), "en": form["en"].format(en=en)}


def spread_site(folder: Path, hook: Receiver) -> Site:
    """A site with the rule library and one fire panel in B3; emergencies go to `hook`."""
    path = folder / "site.yaml"
    webhooks = [{"name": "duty", "url": hook.url(), "min_priority": "emergency"}]
    path.write_text(
        "site: {id: t, timezone: Asia/Shanghai}\n"
        f"notifications: {json.dumps({'mqtt': False, 'webhooks': webhooks})}\n"
        "devices:\n"
        f"  - {{id: {PANEL}, name: FACP-1, profile: fire_panel, location: {{building: B3}}, modbus: {{port: 1502}}}}\n"
    )
    return load_site(path)


def panel(bus: Bus, ts: int, fire: set[int]) -> None:
    """One poll of the panel: the zones in `fire` in fire, the others normal."""
    states = [Reading(PANEL, z, "fire" if n in fire else "normal", Quality.GOOD, ts) for n, z in enumerate(ZONES, 1)]
    bus.publish_readings([*states, Reading(PANEL, "general_fire", bool(fire), Quality.GOOD, ts)])


@asynccontextmanager
async def fire_rules(site: Site, url: str) -> AsyncIterator[tuple[Bus, OpsStore]]:
    """The rules service of `site` and its notifier, started as the runtime starts them: without
    waiting for the ops store."""
    store = OpsStore(url, site="t")
    await store.start(wait=False)
    bus = LocalBus()
    service = RulesService(site, bus, store, site.path("journal"))
    await service.start()
    try:
        async with notifying(Notifier(site, store, None), bus):
            yield bus, store
    finally:
        await service.stop(drain_s=1.0)
        await store.close()


async def fire_alarm(events: asyncio.Queue[Event], kind: str = "alarm", **wanted: object) -> dict[str, Any]:
    """The next event of the fire alarm (or of its task) with the `wanted` keys (`recorded` absent:
    recorded)."""
    async with asyncio.timeout(DEADLINE_S):
        while True:
            event = await events.get()
            data = event.data
            fire = event.kind == kind and "fire-alarm" in (data.get("rule"), (data.get("source") or {}).get("rule"))
            if fire and all(data.get(key) == value for key, value in wanted.items()):
                return data


async def spread_history(store: OpsStore, alarm_id: int) -> list[tuple[str, dict[str, str] | None]]:
    """The alarm's raise and spreads, each with its text in both languages as the history keeps it
    (a raise's text is the message the alarm no longer shows: its first spread kept it)."""
    found = await store.alarms.get_alarm(alarm_id)
    assert found is not None
    history = found.history
    return [
        (
            h.action,
            spread_texts(h.detail) if h.action == AlarmAction.SPREAD else replaced_texts(h.detail, history),
        )
        for h in history
        if h.action in ("raised", AlarmAction.SPREAD)
    ]


async def test_a_zone_joining_an_active_fire_alarm_renames_it_everywhere_and_a_reset_zone_stays_listed(
    tmp_path: Path, ops_url: str
) -> None:
    async with receiver() as hook:
        site = spread_site(tmp_path, hook)
        async with fire_rules(site, ops_url) as (bus, store):
            with bus.subscribe() as events:
                t = now_ns()
                panel(bus, t, {3})
                raised = await fire_alarm(events, state="unacknowledged", recorded=None)
                assert raised["title"] == texts(TITLE, "3号防区", "Zone 3")
                assert (await hook.next()).json()["data"]["title"] == raised["title"]

                panel(bus, t + 1, {3, 5})  # the fire spreads to zone 5
                spread = await fire_alarm(events, spread=True)
                both = texts(TITLE, "3号防区、5号防区", "Zone 3, Zone 5")
                assert spread["id"] == raised["id"] and spread["title"] == both
                assert spread["message"] == texts(MESSAGE, "3号防区、5号防区", "Zone 3, Zone 5")
                told = (await hook.next()).json()["data"]
                assert told["title"] == both and told["spread"] is True
                robot = markdown(Event(0, EventKind.ALARM, told), site, ZoneInfo("Asia/Shanghai"))[1]
                assert "B3 火警：3号防区、5号防区" in robot and "报警部位增加" in robot

                panel(bus, t + 2, {5})  # zone 3 reset: the panel holds it until the panel is reset
                panel(bus, t + 3, {1, 5})  # and zone 1 joins: the next change, zone 3 still listed
                three = await fire_alarm(events, spread=True)
                assert three["title"] == texts(TITLE, "1号防区、3号防区、5号防区", "Zone 1, Zone 3, Zone 5")
                await fire_alarm(events, "task")  # its task's note, the spread's last step

            assert (await store.alarms.get_alarm(raised["id"])).as_json()["title"] == three["title"]
            assert await spread_history(store, raised["id"]) == [
                ("raised", texts(MESSAGE, "3号防区", "Zone 3")),
                (AlarmAction.SPREAD, texts(MESSAGE, "3号防区、5号防区", "Zone 3, Zone 5")),
                (AlarmAction.SPREAD, texts(MESSAGE, "1号防区、3号防区、5号防区", "Zone 1, Zone 3, Zone 5")),
            ]
            (task,) = await TaskStore(store).list(0)
            full = await TaskStore(store).get(task.id, now_ns())
            assert full is not None
            notes = [h.detail for h in full.history if h.action == "note"]
            grown = [
                texts(MESSAGE, "3号防区、5号防区", "Zone 3, Zone 5"),
                texts(MESSAGE, "1号防区、3号防区、5号防区", "Zone 1, Zone 3, Zone 5"),
            ]
            assert notes == [f"报警部位增加：{m['zh']} / More points in alarm: {m['en']}" for m in grown]


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Outage]:
    async with outage(request.param, tmp_path) as found:
        yield found


async def test_a_spread_while_the_ops_store_is_down_is_shown_at_once_and_recorded_after_its_raise(
    tmp_path: Path, db: Outage
) -> None:
    async with receiver() as hook:
        site = spread_site(tmp_path, hook)
        await db.cut()
        async with fire_rules(site, db.url) as (bus, store):
            with bus.subscribe() as events:
                t = now_ns()
                panel(bus, t, {3})
                shown = await fire_alarm(events, recorded=False)
                assert shown["title"] == texts(TITLE, "3号防区", "Zone 3")
                panel(bus, t + 1, {3, 5})
                both = texts(TITLE, "3号防区、5号防区", "Zone 3, Zone 5")
                spread = await fire_alarm(events, recorded=False, spread=True)
                assert spread["title"] == both
                told = [(await hook.next()).json()["data"]["title"] for _ in range(2)]
                assert told == [shown["title"], both]  # people hear of the spread while the store is down

                await db.restore()
                recorded = await fire_alarm(events, spread=True, recorded=None)
            assert recorded["title"] == both
            assert [action for action, _ in await spread_history(store, recorded["id"])] == [
                "raised",
                AlarmAction.SPREAD,
            ]


ZONES_AND_PRESSURE = """\
rules:
  - id: fire-alarm
    title: {zh: "{building} 火警：{points_in:fire}", en: "{building} fire: {points_in:fire}"}
    devices: {types: [fire_panel]}
    when: general_fire
    priority: emergency
  - id: low-pressure
    title: {zh: "{device_name} 压力低 {outlet_pressure:.2f}", en: "{device_name}: low pressure {outlet_pressure:.2f}"}
    devices: {types: [booster_pump]}
    when: outlet_pressure < 0.25
    priority: high
"""


def test_only_a_point_joining_a_list_changes_an_active_alarm_and_a_value_in_a_text_is_the_raise(
    make_site: MakeSite,
) -> None:
    site = make_site(ZONES_AND_PRESSURE)
    changes: list[Change] = []
    engine = Engine(load_rules(site), changes.append)

    def poll(ts: int, fire: set[int], **more: float) -> None:
        zones = {z: "fire" if n in fire else "normal" for n, z in enumerate(ZONES, 1)}
        values: dict[str, float | str] = {**zones, "general_fire": bool(fire), **more}
        engine.handle([Reading("fire-1", point, value, Quality.GOOD, ts) for point, value in values.items()])

    def title(change: Change) -> str:
        return rule_texts(change.rule.spec, site, change.device, change.values).title_en

    poll(1, {3}, battery_voltage=26.0)
    poll(2, {3}, battery_voltage=25.5)  # the same zones again, another value: nothing to tell
    engine.handle([Reading("pump-1", "outlet_pressure", 0.20, Quality.GOOD, 3)])
    engine.handle([Reading("pump-1", "outlet_pressure", 0.15, Quality.GOOD, 4)])  # lower still: no churn
    assert [(c.rule.id, c.spread, title(c)) for c in changes] == [
        ("fire-alarm", False, "B1 fire: Zone 3"),
        ("low-pressure", False, "P1: low pressure 0.20"),
    ]

    poll(5, {5})  # zone 3 reset as zone 5 goes into fire: 5 joins, 3 is held
    poll(6, {5})
    poll(7, set())  # the panel reset: the fire alarm clears
    poll(8, {1})  # a new fire starts from the zones in fire then
    assert [(c.rule.id, c.active, c.spread, title(c)) for c in changes[2:]] == [
        ("fire-alarm", True, True, "B1 fire: Zone 3, Zone 5"),
        ("fire-alarm", False, False, "B1 fire: ?"),
        ("fire-alarm", True, False, "B1 fire: Zone 1"),
    ]
