"""The `facility` command run as a separate process, as a site runs it: started with its token in
its environment, stopped as an operator stops it (SIGINT), its output kept for the test to read."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

TOKEN = "split-test-token-8d1f4b6a2c9e0735ab"


def start_facility(args: list[str], cwd: Path, token: dict[str, str]) -> subprocess.Popen[str]:
    """`facility *args`, given its token by `token` (FACILITY_TOKEN or FACILITY_TOKEN_FILE): never
    on the command line, where ps shows it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACILITY_TOKEN")}
    return subprocess.Popen(
        [sys.executable, "-m", "facility_app", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**env, "PYTHONUNBUFFERED": "1", **token},
    )


def stop_facility(proc: subprocess.Popen[str]) -> tuple[int, str]:
    """Its exit code and its whole output, after a SIGINT (killed if it does not end within 30 s)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        output, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
    return proc.returncode, output
