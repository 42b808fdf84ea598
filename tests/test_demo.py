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

GIVEN_TOKEN = "demo-test-token-5f0c9a7e3b21d84c6e"  # as an operator sets FACILITY_TOKEN


def _banner(proc: subprocess.Popen[str]) -> list[str]:
    """The lines the demo prints up to its last one ("Ctrl-C stops."), as a user reads them."""
    assert proc.stdout is not None
    lines: list[str] = []
    while not lines or lines[-1] != "Ctrl-C stops.":
        line = proc.stdout.readline()
        assert line, "the demo ended before it printed its banner:\n" + "\n".join(lines)
        lines.append(line.rstrip("\n"))
    return lines


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
    args = ["demo", "--port", str(port), "--data", str(tmp_path)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("FACILITY_TOKEN", None)
    if broker == "external":  # and a token of the operator's, in the environment, never printed
        args += ["--mqtt", request.getfixturevalue("mosquitto").url]
        env["FACILITY_TOKEN"] = GIVEN_TOKEN
    proc = subprocess.Popen(
        [sys.executable, "-m", "facility", *args],
        cwd=repo_root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        banner = _banner(proc)
        printed = [line.split(": ", 1)[1].strip() for line in banner if line.startswith("Login token:")]
        token = printed[0] if broker == "embedded" else GIVEN_TOKEN
        assert len(token) >= 32
        wait_listening(port, timeout=60, proc=proc)
        assert http_json(f"{base}/healthz", token=None)["status"] == "ok"
        ids = {d["id"] for d in http_json(f"{base}/sim/devices", token=token)}
        assert {"pump-b2-1", "elevator-b1-1"} <= ids

        http_json(f"{base}/sim/faults", "POST", {"device": "pump-b2-1", "fault": "low_pressure"}, token)
        alarms = poll(
            lambda: [a for a in http_json(f"{base}/api/v1/alarms", token=token)["items"] if a["device"] == "pump-b2-1"],
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
    output = "\n".join(banner) + "\n" + output
    if broker == "embedded":
        assert f"{base}/#token={token}" in output  # the desk URL with the login the demo made
    else:
        assert token not in output  # the operator's token is in no output
    assert "Traceback" not in output, output
    assert [pid for pid in children if _alive(pid)] == []  # the embedded broker went with it
