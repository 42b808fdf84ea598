"""What bench/scale.py starts: a site of numbered devices for the centre's parts, and `facility run
--parts ...` processes on it, each asked through its checked /metrics and /readyz."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from facility.netutil import free_port
from testsupport.servers import wait_listening

DEVICES = 100
READINGS_PER_MESSAGE = 10  # a pump's points in one poll
TOKEN = "scale-bench-token-5b0e9d2c7a41f836"
ALARM_RULE = "bench-fire"


class BenchFailed(RuntimeError):
    pass


def site_file(folder: Path, broker: str, store: object, site: str, ops: str | None = None) -> Path:
    """A site of DEVICES devices with READINGS_PER_MESSAGE points each (`p0`...), its telemetry
    store `store` and its ops store `ops` (SQLite in the folder by default), and one emergency
    rule, `p0 > 0`."""
    (folder / "profiles").mkdir(parents=True)
    (folder / "rules").mkdir()
    points = "".join(f"  p{k}: {{json: p{k}}}\n" for k in range(READINGS_PER_MESSAGE))
    (folder / "profiles" / "bench.yaml").write_text(f"type: bench\npoints:\n{points}")
    title = '{zh: "{device_name} 火警", en: "{device_name}: fire"}'
    rule = f"{{id: {ALARM_RULE}, title: {title}, devices: {{types: [bench]}}, when: p0 > 0, priority: emergency}}"
    (folder / "rules" / "bench.yaml").write_text(f"rules:\n  - {rule}\n")
    stores = {"telemetry": store, "spool": "var/spool", "ops": ops or "sqlite+aiosqlite:///var/ops.db"}
    lines = [
        f"site: {{id: {site}, name: Scale bench, timezone: UTC}}",
        f'broker: {{url: "{broker}"}}',
        f"stores: {json.dumps(stores)}",
        "profiles: [profiles/]",
        "rules: [rules/]",
        "use_rule_library: false",
        "devices:",
        *(f"  - {{id: d{i}, profile: bench, mqtt: {{topic: bench/d{i}, interval: 600s}}}}" for i in range(DEVICES)),
    ]
    (folder / "site.yaml").write_text("\n".join(lines) + "\n")
    return folder / "site.yaml"


class Part:
    """`facility run --parts <parts>` on a site folder of its own, its output in a file."""

    def __init__(self, folder: Path, site: Path, name: str, parts: str) -> None:
        self.folder, self.site, self.name, self.parts = folder, site, name, parts
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "facility_app", "run", "-c", str(self.site), "--port", str(self.port)]
        command += ["--parts", self.parts, "--instance", self.name]
        env = {**os.environ, "FACILITY_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}
        with (self.folder / f"{self.name}.log").open("ab") as log:
            self.proc = subprocess.Popen(command, cwd=self.folder, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_listening(self.port, timeout=60, proc=self.proc)

    def stop(self) -> None:
        """SIGTERM, as a supervisor stops it; a failure if it does not exit 0."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if self.proc.wait(30) != 0:
                raise BenchFailed(f"{self.parts} process {self.name} exited with {self.proc.returncode}")

    def pause(self) -> None:
        """SIGSTOP: connected and subscribed, reading nothing, while a backlog is queued for it."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def _get(self, path: str) -> bytes:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}")
        request.add_header("Authorization", f"Bearer {TOKEN}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as exc:  # /readyz answers 503 when everything is down
            if exc.code != 503:
                raise BenchFailed(f"{self.name}'s {path} answered {exc.code}") from None
            return bytes(exc.read())

    def metric(self, name: str) -> float:
        """One series of its /metrics (a checked answer)."""
        for line in self._get("/metrics").decode().splitlines():
            if line.startswith(f"{name} ") or line.startswith(f"{name}{{"):
                return float(line.rsplit(" ", 1)[1])
        raise BenchFailed(f"{self.name}'s /metrics has no {name}")

    def state_of(self, kind: str) -> str | None:
        """The state /readyz gives its part of `kind`."""
        parts = json.loads(self._get("/readyz"))["parts"]
        return next((str(p["state"]) for p in parts if p["kind"] == kind), None)

    def rss_mb(self, peak: bool = True) -> float:
        assert self.proc is not None
        field = "VmHWM:" if peak else "VmRSS:"
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(next(x for x in status.splitlines() if x.startswith(field)).split()[1]) / 1024
