"""`facility sim run` and `facility run` as separate processes joined by a real broker.

This is how a site runs once simulators give way to real plant: the gateway, rules and API in one
process, the devices elsewhere.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from facility.netutil import free_port
from tests.servers import Mosquitto, http_json, poll, wait_listening
from tests.system import write_site

TOKEN = "split-test-token-8d1f4b6a2c9e0735ab"


def _start(args: list[str], cwd: Path, token: dict[str, str]) -> subprocess.Popen[str]:
    """The command, given its token by `token` (FACILITY_TOKEN or FACILITY_TOKEN_FILE): never on
    the command line, where ps shows it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACILITY_TOKEN")}
    return subprocess.Popen(
        [sys.executable, "-m", "facility", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**env, "PYTHONUNBUFFERED": "1", **token},
    )


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        output, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
    return proc.returncode, output


def test_gateway_and_simulators_in_separate_processes(tmp_path: Path, mosquitto: Mosquitto) -> None:
    site = write_site(tmp_path, mosquitto.url, free_port())
    sim_port, api_port = free_port(), free_port()
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    sims = _start(
        ["sim", "run", str(site), "--port", str(sim_port)], tmp_path, {"FACILITY_TOKEN_FILE": str(token_file)}
    )
    service = None
    try:
        wait_listening(sim_port, timeout=60, proc=sims)
        # The simulators alone stand behind the same edge as the estate's API.
        stranger = httpx.post(f"http://127.0.0.1:{sim_port}/sim/faults", content=b"{}", timeout=10)
        assert stranger.status_code == 401
        assert "server" not in stranger.headers and stranger.headers["x-content-type-options"] == "nosniff"
        service = _start(["run", "-c", str(site), "--port", str(api_port)], tmp_path, {"FACILITY_TOKEN": TOKEN})
        wait_listening(api_port, timeout=60, proc=service)
        http_json(f"http://127.0.0.1:{sim_port}/sim/faults", "POST", {"device": "lift-1", "fault": "entrapment"}, TOKEN)
        alarms = poll(
            lambda: http_json(f"http://127.0.0.1:{api_port}/api/v1/alarms", token=TOKEN)["items"], bool, timeout=30
        )
        assert [(a["rule"], a["device"]) for a in alarms] == [("elevator-entrapment", "lift-1")]
    finally:
        results = [_stop(p) for p in (service, sims) if p is not None]
    for code, output in results:
        assert code == 0, output
        assert "Traceback" not in output, output
        assert TOKEN not in output  # a token given to a process is in none of its output
    assert (tmp_path / "var/ops.db").exists()  # stores resolved against the site file's folder
