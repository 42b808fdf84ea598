"""Stopping `facility run` as a service manager does: SIGTERM drains the pipeline in order and
says what it drained; a second signal stops at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from facility.netutil import free_port
from testsupport.servers import Mosquitto, wait_listening
from testsupport.system import TOKEN, write_site


@contextmanager
def _service(site: Path, port: int, cwd: Path) -> Iterator[subprocess.Popen[str]]:
    """`facility run` listening on `port`; killed at the end if the test did not stop it."""
    service = subprocess.Popen(
        [sys.executable, "-m", "facility_app", "run", "-c", str(site), "--port", str(port)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "FACILITY_TOKEN": TOKEN},  # never on the command line
    )
    try:
        wait_listening(port, timeout=60, proc=service)
        yield service
    finally:
        if service.poll() is None:
            service.kill()
            service.communicate()


def _publish(port: int, count: int) -> None:
    """`count` elevator documents at QoS 1, returning once the broker has acknowledged them all."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="stop-test-device")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        sent = [
            client.publish("test/lifts/lift-1", json.dumps({"counters": {"trips": i}}), qos=1) for i in range(count)
        ]
        for info in sent:
            info.wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def test_sigterm_drains_in_order_and_says_what_it_drained(tmp_path: Path, mosquitto: Mosquitto) -> None:
    site = write_site(tmp_path, mosquitto.url, free_port())
    port = free_port()
    with _service(site, port, tmp_path) as service:
        _publish(mosquitto.port, 200)
        service.send_signal(signal.SIGTERM)
        output, _ = service.communicate(timeout=30)
    assert service.returncode == 0, output
    assert "Traceback" not in output, output
    steps = ["SIGTERM: stopping", "draining the pipeline", "telemetry writer stopped:", "stopped in"]
    at = [output.find(step) for step in steps]
    assert -1 not in at and at == sorted(at), output  # every step said, in this order
    writer_line = next(line for line in output.splitlines() if "telemetry writer stopped:" in line)
    assert "readings to the store" in writer_line and "to the spool" in writer_line


def test_a_second_signal_stops_at_once(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """A desk's open event stream holds the server's own shutdown for its grace second; a second
    signal then must not wait for it, nor for the drain."""
    site = write_site(tmp_path, mosquitto.url, free_port())
    port = free_port()
    seen: list[str] = []
    with _service(site, port, tmp_path) as service:
        with httpx.stream(
            "GET", f"http://127.0.0.1:{port}/api/v1/stream", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        ) as stream:
            assert stream.status_code == 200
            service.send_signal(signal.SIGTERM)
            assert service.stdout is not None
            for line in service.stdout:  # the first signal has been heard once it says so
                seen.append(line)
                if "SIGTERM: stopping" in line:
                    break
            service.send_signal(signal.SIGINT)
            output, _ = service.communicate(timeout=30)
    output = "".join(seen) + output
    assert service.returncode == 128 + signal.SIGINT, output
    assert "SIGINT after SIGTERM: stopping at once" in output, output
    assert "stopped in" not in output, output  # it did not wait for the drain
