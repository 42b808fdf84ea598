"""`facility run` started before its broker, as a host booting its services in any order does: it
serves the desk and its Modbus devices at once, says the broker is missing, and takes MQTT in as
soon as the broker answers, without a restart."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from facility.netutil import free_port
from testsupport.processes import TOKEN, start_facility, stop_facility
from testsupport.servers import Mosquitto, http_json, poll, require_binary, wait_listening
from testsupport.system import write_site


def _readiness(api: str) -> dict[str, Any]:
    try:
        return http_json(f"{api}/readyz")
    except OSError as exc:  # 503 while a part is down: the body still says which
        body = getattr(exc, "read", None)
        return json.loads(body()) if body else {}


def _broker_state(body: dict[str, Any]) -> str | None:
    return next(
        (p["state"] for p in body.get("parts", []) if p.get("kind") == "broker" and "(gateway)" in p["name"]), None
    )


def test_the_service_starts_before_its_broker_and_takes_mqtt_in_once_it_answers(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path)  # its port is chosen, nothing listens there yet
    api_port = free_port()
    site = write_site(tmp_path, broker.url, free_port())
    service = start_facility(["run", "-c", str(site), "--port", str(api_port)], tmp_path, {"FACILITY_TOKEN": TOKEN})
    try:
        wait_listening(api_port, timeout=60, proc=service)  # serving although no broker answered
        api = f"http://127.0.0.1:{api_port}"
        assert poll(lambda: _broker_state(_readiness(api)), lambda s: s == "down", timeout=30) == "down"

        broker.start()
        assert poll(lambda: _broker_state(_readiness(api)), lambda s: s == "up", timeout=30) == "up"
        publish = require_binary("mosquitto_pub", "mosquitto-clients")
        doc = json.dumps(  # the elevator profile's document, without its optional ts
            {
                "car": {"floor": 3, "direction": "none", "moving": False, "in_door_zone": True},
                "door": {"open": False, "cycles": 10},
                "alarm_button": False,
                "fault_code": 0,
                "mode": "normal",
                "counters": {"trips": 1},
            }
        )
        lift: dict[str, Any] = {}
        for _ in range(3):  # QoS 0 on a fresh subscription: send until the API has it
            subprocess.run([publish, "-p", str(broker.port), "-t", "test/lifts/lift-1", "-m", doc], check=True)
            lift = poll(
                lambda: http_json(f"{api}/api/v1/devices/lift-1", token=TOKEN),
                lambda d: d.get("online") is True,
                timeout=10,
            )
            if lift.get("online"):
                break
        assert lift.get("online") is True, lift
    finally:
        code, output = stop_facility(service)
        broker.stop()
    assert code == 0, output
    assert "did not answer within" in output and "connecting as soon as it answers" in output
    assert "Traceback" not in output, output
