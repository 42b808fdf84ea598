"""A device's `online` on its status topic is a status, not readings (issue #14), against a real
Mosquitto with the gateway, the rules and the live view on one bus: `offline` then `online` 0.1 s
later raises no communication loss, no reading is made of the `online`, and the device's points
keep their last values, marked no communication, until it sends values again."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from facility.model import Quality
from tests.gateway.test_mqtt_ingest import elevator_doc
from tests.gateway.test_mqtt_topics import LOST_AFTER_S, PREFIX, alarm_of, publisher, running
from tests.simulators.conftest import until
from testsupport.servers import Mosquitto


async def test_online_soon_after_offline_is_a_status_and_the_points_keep_their_last_values(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async with running(tmp_path, mosquitto) as rig:
        async with publisher(mosquitto) as devices:
            devices.publish(f"{PREFIX}/lift-1/state", json.dumps(elevator_doc(7)).encode(), qos=1)
            await until(lambda: any(r.device == "lift-1" for r in rig.readings))
            devices.publish(f"{PREFIX}/lift-1/status", b"offline", qos=1)
            await asyncio.sleep(0.1)  # the scenario: a unit that reconnects 0.1 s later
            devices.publish(f"{PREFIX}/lift-1/status", b"online", qos=1)
            devices.publish(f"{PREFIX}/lift-2/status", b"offline", qos=1)  # and one that stays away

            # lift-2, offline since after lift-1 came back, is lost once the rule's time is up;
            # by then lift-1 would have been too, had its online been ignored.
            seen = await alarm_of(rig.events, "lift-2", timeout=LOST_AFTER_S + 10)
    assert [e.data.get("device") for e in seen if e.kind == "alarm"] == ["lift-2"]
    said = [e.data["online"] for e in seen if e.kind == "device" and e.data["device"] == "lift-1"]
    assert said == [False, True]
    assert "lift-1" in rig.gateway.health.last_seen and "lift-1" not in rig.gateway.health.stale

    # The document, then the offline's no-communication marks; the online added no reading at all.
    lift_1 = [r for r in rig.readings if r.device == "lift-1"]
    good = {r.point: r.value for r in lift_1 if r.quality is Quality.GOOD}
    marks = [r for r in lift_1 if r.quality is not Quality.GOOD]
    assert {r.point for r in marks} == set(rig.gateway.ingest.points["lift-1"]) and len(marks) == len(good)
    assert all(r.quality is Quality.NO_COMM and r.value is None for r in marks)
    shown = rig.live.of("lift-1")  # the desk's live view
    assert {name: r.value for name, r in shown.items()} == good  # the last values, as they were
    assert {r.quality for r in shown.values()} == {Quality.NO_COMM}  # until the device sends values
    assert rig.live.status("lift-1")[0] is True and rig.live.status("lift-2")[0] is False  # as each said
