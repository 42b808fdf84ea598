"""VictoriaMetrics and Debian's InfluxDB 1.x for the tests: started on free ports, stopped by pid.

VictoriaMetrics speaks the InfluxDB v2 write API; InfluxDB 1.6 speaks `/write` and InfluxQL
`/query`. Each server keeps its data under the test's own folder and logs to a file there.
`Unreadable` is the one stand-in: a server that answers `/query` with whatever the test says.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from facility.netutil import free_port
from testsupport.servers import require_binary


def _get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class _Server:
    """A server process of the test's own; `ready()` says when it answers."""

    name = "server"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self, timeout: float = 30.0) -> None:
        """Start (again, on the same port and data) and return once it answers."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        log = open(self.workdir / f"{self.name}.log", "ab")  # noqa: SIM115 - the process holds it
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.workdir}")
            try:
                if self.ready():
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"{self.name} did not answer on port {self.port} within {timeout:g}s")

    def stop(self) -> None:
        """Stop the process this object started (SIGTERM, so that it flushes its data)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


class VictoriaMetrics(_Server):
    """Single-node VictoriaMetrics. It keeps one sample per series and millisecond
    (`-dedup.minScrapeInterval=1ms`), as InfluxDB keeps one point per series and time, and keeps
    data for 100 years so that no test timestamp falls outside the retention. With `auth`, every
    request but /health needs the basic-auth user `test` (what a token cannot be)."""

    name = "victoria-metrics"

    def __init__(self, workdir: Path, auth: bool = False) -> None:
        super().__init__(workdir)
        self.auth = auth
        self.binary = require_binary("victoria-metrics", "victoria-metrics")
        self.data = workdir / "vm-data"
        self._polls = 0

    def command(self) -> list[str]:
        return [
            self.binary,
            f"-storageDataPath={self.data}",
            f"-httpListenAddr=127.0.0.1:{self.port}",
            "-retentionPeriod=100y",
            "-dedup.minScrapeInterval=1ms",
            "-loggerLevel=WARN",
            *(["-httpAuth.username=test", "-httpAuth.password=test-password"] if self.auth else []),
        ]

    def ready(self) -> bool:
        return _get(f"{self.url}/health", timeout=1.0) == (200, b"OK")

    def export(self, labels: str) -> list[dict[str, Any]]:
        """Every series matching label filters (`__name__="telemetry_num",device="pump-1"`), with
        raw values and millisecond timestamps, up to a day ahead.

        VictoriaMetrics 1.79 caches what a label filter matched, "nothing" included, for about
        10 s; a filter never used before (`poll!="<n>"`, true of every series) sees new series as
        soon as they are searchable (about 1 s after the write).
        """
        self._polls += 1
        match = f'{{{labels},poll!="{self._polls}"}}'
        query = {"match[]": match, "end": str(int(time.time()) + 86400)}  # the default end is now
        status, body = _get(f"{self.url}/api/v1/export?" + urllib.parse.urlencode(query))
        assert status == 200, body
        return [json.loads(line) for line in body.splitlines() if line.strip()]


class Influx1(_Server):
    """Debian's InfluxDB 1.x (1.6.7): HTTP and the RPC bind address on free ports, data under
    the test's folder, no reporting, no internal monitoring database. With `auth`, every request
    needs the credentials of a user `admin` (`execute` is for servers without auth)."""

    name = "influxd"

    def __init__(self, workdir: Path, auth: bool = False) -> None:
        super().__init__(workdir)
        self.binary = require_binary("influxd", "influxdb")
        self.auth = auth
        self._admin = False
        self.rpc_port = free_port()
        self.config = workdir / "influxd.conf"
        self.config.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"

[meta]
  dir = "{workdir / "meta"}"

[data]
  dir = "{workdir / "data"}"
  wal-dir = "{workdir / "wal"}"
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
  auth-enabled = {"true" if auth else "false"}

[logging]
  level = "warn"
"""
        )

    def command(self) -> list[str]:
        return [self.binary, "-config", str(self.config)]

    def ready(self) -> bool:
        return _get(f"{self.url}/ping", timeout=1.0)[0] == 204

    def start(self, timeout: float = 30.0) -> None:
        super().start(timeout)
        if self.auth and not self._admin:  # without a user InfluxDB 1.x lets everyone in
            self.execute("CREATE USER admin WITH PASSWORD 'admin-password' WITH ALL PRIVILEGES")
            self._admin = True

    def execute(self, statement: str) -> None:
        """Run an InfluxQL statement that changes something (CREATE DATABASE ...)."""
        data = urllib.parse.urlencode({"q": statement}).encode()
        with urllib.request.urlopen(f"{self.url}/query", data=data, timeout=10) as response:
            result = json.load(response)["results"][0]
        assert "error" not in result, result["error"]

    def select(self, db: str, statement: str) -> list[list[Any]]:
        """Rows of a query (all series), times in ns."""
        status, body = _get(f"{self.url}/query?" + urllib.parse.urlencode({"db": db, "q": statement, "epoch": "ns"}))
        assert status == 200, body
        result = json.loads(body)["results"][0]
        assert "error" not in result, result["error"]
        return [row for series in result.get("series", []) for row in series["values"]]


class Unreadable:
    """An HTTP server in a thread of the test that answers every `/query` with `body` (HTTP 200)
    and takes every write (HTTP 204). It stands in for what no real telemetry server answers on
    purpose: the page of a web server or proxy at a mistyped URL, or a server of another kind,
    with answers of shapes InfluxDB never gives. `queries` holds the InfluxQL it was asked."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.queries: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                owner.queries.extend(query.get("q", []))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(owner.body)))
                self.end_headers()
                self.wfile.write(owner.body)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # the tests need no access log
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="unreadable store", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
