"""`facility demo` as a user runs it: answers, shows a fault as an alarm, exits cleanly on Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from facility.netutil import free_port
from facility.site import load_site
from simulators.host import SimulatorHost
from testsupport.servers import http_json, poll, wait_listening

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
        [sys.executable, "-m", "facility_app", *args],
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
        _kill(proc)  # the test failed before the demo stopped: stop it and what it started
    assert proc.returncode == 0, output
    output = "\n".join(banner) + "\n" + output
    if broker == "embedded":
        assert f"{base}/#token={token}" in output  # the desk URL with the login the demo made
    else:
        assert token not in output  # the operator's token is in no output
    assert "Traceback" not in output, output
    assert [pid for pid in children if _alive(pid)] == []  # the embedded broker went with it


def _start(repo_root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`facility demo ARGS` in a process group of its own, as a terminal runs a foreground job, so
    that a test can send the group what Ctrl-C sends it. Without an operator's token, unless `env`."""
    base = {k: v for k, v in os.environ.items() if k not in ("FACILITY_TOKEN", "FACILITY_TOKEN_FILE")}
    env = {**base, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "facility_app", "demo", *args],
        cwd=repo_root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )


def _ctrl_c(proc: subprocess.Popen[str]) -> str:
    """SIGINT to the demo's whole process group, as Ctrl-C in its terminal; what it printed after."""
    os.killpg(proc.pid, signal.SIGINT)
    output, _ = proc.communicate(timeout=30)
    return output


def _kill(proc: subprocess.Popen[str]) -> None:
    """Whatever is left of a demo a failed test did not stop, and its children."""
    if proc.poll() is None:
        leftovers = _children(proc.pid)
        proc.kill()
        proc.wait()
        for pid in leftovers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _exports(banner: list[str]) -> dict[str, str]:
    """The variables of the banner's `export NAME=VALUE` lines."""
    pairs = [
        line.strip().removeprefix("export ").split("=", 1) for line in banner if line.strip().startswith("export ")
    ]
    return {name: value for name, value in pairs}


def _login(banner: list[str]) -> str:
    return next(line.split(": ", 1)[1].strip() for line in banner if line.startswith("Login token:"))


def test_demo_keeps_its_token_across_restarts_and_says_how_to_reach_it(tmp_path: Path, repo_root: Path) -> None:
    data = tmp_path / "demo"
    first = _start(repo_root, "--port", "0", "--data", str(data))
    try:
        banner = _banner(first)
        token = _login(banner)
        exports = _exports(banner)
        assert set(exports) == {"FACILITY_URL", "FACILITY_TOKEN_FILE"}, banner
        kept = Path(exports["FACILITY_TOKEN_FILE"])
        assert kept == (data / "token").absolute() and kept.read_text().strip() == token
        assert kept.stat().st_mode & 0o777 == 0o600 and len(token) >= 32
        assert token not in "\n".join(line for line in banner if "export" in line)  # a file, not the token

        # Another terminal, with nothing but the two exports (the port was any free one).
        env = {k: v for k, v in os.environ.items() if k not in ("FACILITY_TOKEN", "FACILITY_TOKEN_FILE")}
        listing = subprocess.run(
            [sys.executable, "-m", "facility_app", "sim", "devices"],
            cwd=tmp_path,
            env={**env, **exports},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listing.returncode == 0, listing.stderr
        assert "pump-b2-1" in listing.stdout and "low_pressure" in listing.stdout
        _ctrl_c(first)
    finally:
        _kill(first)

    # Started again from the terminal that took the exports: the token file is the demo's own.
    second = _start(repo_root, "--port", "0", "--data", str(data), env=exports)
    try:
        banner = _banner(second)
        assert _login(banner) == token  # an open desk stays signed in across the restart
        url = _exports(banner)["FACILITY_URL"]
        assert {"pump-b2-1"} <= {d["id"] for d in http_json(f"{url}/sim/devices", token=token)}
        _ctrl_c(second)
    finally:
        _kill(second)


def test_ctrl_c_stops_the_demo_quietly_and_a_killed_demo_takes_its_broker_with_it(
    tmp_path: Path, repo_root: Path
) -> None:
    proc = _start(repo_root, "--port", "0", "--data", str(tmp_path / "demo"))
    try:
        _banner(proc)
        output = _ctrl_c(proc)
    finally:
        _kill(proc)
    assert proc.returncode == 0, output
    assert "reconnecting" not in output and "error:" not in output, output
    assert "stopped in" in output, output

    proc = _start(repo_root, "--port", "0", "--data", str(tmp_path / "demo"))
    try:
        _banner(proc)
        brokers = [pid for pid in _children(proc.pid) if "mosquitto" in Path(f"/proc/{pid}/cmdline").read_text()]
        assert brokers, "the demo started no Mosquitto (is it installed?)"
        proc.kill()  # no drain runs: only the kernel can tell the broker
        proc.wait()
        assert poll(lambda: [pid for pid in brokers if _alive(pid)], lambda alive: not alive, timeout=10) == []
    finally:
        _kill(proc)


async def test_the_demo_plant_listens_on_ports_the_system_chose_and_says_which(repo_root: Path) -> None:
    site = load_site(repo_root / "sites" / "demo" / "site.yaml")
    buses = {d.modbus.endpoint for d in site.devices if d.modbus and not d.modbus.serial}
    first = next(d.modbus for d in site.devices if d.modbus and not d.modbus.serial)
    units = {d.id: d.modbus.unit for d in site.devices if d.modbus}
    with socket.socket() as taken:  # something else on the machine has a port of the site file
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind((first.host, first.port))
        taken.listen()
        host = SimulatorHost(site, any_port=True)
        await host.start()
        try:
            listening = {d.id: d.modbus for d in host.site.devices if d.modbus and not d.modbus.serial}
            ports = {b.port for b in listening.values()}
            assert len(ports) == len(buses) and 0 not in ports and first.port not in ports  # a bus each
            for device_id, binding in listening.items():  # the units stay; the simulator says where
                assert binding.unit == units[device_id]
                assert host.devices[device_id].device.modbus == binding
                _, writer = await asyncio.open_connection(binding.host, binding.port)
                writer.close()
                await writer.wait_closed()
        finally:
            await host.stop()
