"""`facility run` in a process of its own, for the benchmarks that measure it over real HTTP
(bench/desk.py, bench/edge.py): started with the bench's token in its environment, waited for
until it answers and its stores are open, stopped."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from testsupport.answers import CheckedClient, until_ready

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "bench-token-0123456789-abcdefghijklm"


def start_server(site: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """`facility run` on `site` and `port`, its output appended to `log`."""
    with log.open("ab") as out:
        command = [sys.executable, "-m", "facility_app", "run", "-c", str(site), "--port", str(port)]
        env = {**os.environ, "FACILITY_TOKEN": TOKEN}  # never on the command line, where ps shows it
        return subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=out, env=env)


async def wait_ready(url: str, server: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    """Until the server answers /healthz as the bench site and /readyz has its stores up; the log's
    end is in the error if it exits or does not answer in time."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=url) as http:
        checked = CheckedClient(http)
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"the server exited with {server.returncode}:\n{tail(log)}")
            try:  # not listening yet is the only failure waited out; any answer but this one is not
                await checked.get("/healthz", check=healthy)
            except httpx.TransportError:
                pass
            else:  # it answers; the desk's figures need its stores open (the plant is silent on purpose)
                await until_ready(checked, ("ops_store", "telemetry_store"), max(1.0, deadline - time.monotonic()))
                return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"the server did not answer within {timeout} s:\n{tail(log)}")


def healthy(body: Any) -> str | None:
    """A check of /healthz's answer: the bench site's, and up."""
    return None if body == {"status": "ok", "site": "bench"} else "not the bench site's health"


def tail(log: Path) -> str:
    return log.read_text()[-3000:]


def stop_server(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM, and SIGKILL if it has not ended within 30 s."""
    server.terminate()
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
