"""`facility demo` as a user runs it: answers, shows a fault as an alarm, exits cleanly on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from facility.netutil import free_port
from tests.servers import http_json, poll, wait_listening

TOKEN = "demo-test-token"


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (read from /proc, so no extra dependency)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("broker", ["embedded", "external"])
def test_demo_serves_alarms_and_stops_on_sigint(
    tmp_path: Path, repo_root: Path, broker: str, request: pytest.FixtureRequest
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = ["demo", "--port", str(port), "--token", TOKEN, "--data", str(tmp_path)]
    if broker == "external":
        args += ["--mqtt", request.getfixturevalue("mosquitto").url]
    proc = subprocess.Popen(
        [sys.executable, "-m", "facility", *args],
        cwd=repo_root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_listening(port, timeout=60, proc=proc)
        assert http_json(f"{base}/healthz", token=None)["status"] == "ok"
        ids = {d["id"] for d in http_json(f"{base}/sim/devices", token=TOKEN)}
        assert {"pump-b2-1", "elevator-b1-1"} <= ids

        http_json(f"{base}/sim/faults", "POST", {"device": "pump-b2-1", "fault": "low_pressure"}, TOKEN)
        alarms = poll(
            lambda: [a for a in http_json(f"{base}/api/v1/alarms", token=TOKEN)["items"] if a["device"] == "pump-b2-1"],
            bool,
            timeout=30,
        )
        assert alarms and alarms[0]["rule"] == "booster-pump-low-pressure"
        assert alarms[0]["state"] == "unacknowledged"

        children = _children(proc.pid)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:  # the test failed before the demo stopped: stop it and what it started
            leftovers = _children(proc.pid)
            proc.kill()
            proc.wait()
            for pid in leftovers:
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 0, output
    assert f"{base}/#token={TOKEN}" in output  # the desk URL with its login
    assert "Traceback" not in output, output
    assert [pid for pid in children if _alive(pid)] == []  # the embedded broker went with it
