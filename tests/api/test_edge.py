"""The HTTP edge of the running system: a stranger's body is refused before it is read, bodies are
held to the site's limit, wrong tokens are throttled per address, and every answer carries the
browser hardening of its kind. Over real sockets, against uvicorn, as a client on the network sees
it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from facility.netutil import free_port
from tests.api.conftest import MANY_PROBES as OPEN_PROBES
from testsupport.servers import Mosquitto
from testsupport.system import TOKEN, running_system, write_site


def site_file(folder: Path, mosquitto: Mosquitto, api: str) -> Path:
    folder.mkdir(exist_ok=True)
    return write_site(folder, mosquitto.url, free_port(), extra=api)


@contextlib.asynccontextmanager
async def system(tmp_path: Path, mosquitto: Mosquitto, api: str = OPEN_PROBES) -> AsyncIterator[str]:
    async with running_system(site_file(tmp_path, mosquitto, api), tmp_path / "data") as (url, _site):
        yield url


async def head_of_answer(url: str, request: bytes, timeout: float = 10) -> tuple[int, dict[str, str]]:
    """Send the start of a request (its head, perhaps a little body) over a raw socket and read the
    answer's status and headers, never sending the rest: an answer proves nobody waited for it."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    finally:
        writer.close()
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines if ": " in line)
    return int(status_line.split()[1]), {k.lower(): v for k, v in headers.items()}


def post_head(path: str, length: int, token: str | None = None, chunked: bool = False) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}")
    if token:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + b'{"title": "'


async def chunks(chunk: bytes, count: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield chunk


async def test_a_strangers_large_body_is_answered_401_unread_and_health_never_waits(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async with system(tmp_path, mosquitto) as url, httpx.AsyncClient(base_url=url) as http:
        started = time.monotonic()
        # 14 MB announced, 11 bytes sent: the answer cannot have waited for the body.
        status, headers = await head_of_answer(url, post_head("/api/v1/tasks", 14_000_000))
        assert status == 401
        assert headers["www-authenticate"] == "Bearer"
        # A stranger's chunked upload is refused as early.
        status, _ = await head_of_answer(url, post_head("/api/v1/tasks", 0, chunked=True))
        assert status == 401
        assert (await http.get("/healthz")).status_code == 200
        assert time.monotonic() - started < 10  # the socket reads time out at 10 s each; an unread body ends sooner


async def test_bodies_over_the_limit_are_413_and_file_routes_take_a_whole_file(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async with system(tmp_path, mosquitto) as url, httpx.AsyncClient(base_url=url) as http:
        status, _ = await head_of_answer(url, post_head("/api/v1/tasks", 2 * 1024 * 1024, TOKEN))
        assert status == 413  # announced over the default 1 MiB: refused unread
        chunked = await http.post(
            "/api/v1/tasks",
            content=chunks(b"x" * 65536, 20),  # 1.25 MiB in chunks, no Content-Length
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        assert chunked.status_code == 413
        assert "1024 KiB" in chunked.json()["detail"]
        # A rule file of 1.5 MB is over the default but under the file routes' limit: checked.
        rule_file = "# " + "x" * 999_000 + "\n"
        checked = await http.post(
            "/api/v1/rules/validate",
            json={"text": rule_file, "name": "big.yaml"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert checked.status_code == 200, checked.text
        small = await http.post(
            "/api/v1/tasks",
            json={"title": "Check the pump room", "kind": "inspection"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert small.status_code != 413


async def test_the_body_limit_is_the_site_files(tmp_path: Path, mosquitto: Mosquitto) -> None:
    api = "api: {max_body_kb: 1, auth_failure_limit: {burst: 1000, per_second: 1000}}"
    async with system(tmp_path, mosquitto, api) as url, httpx.AsyncClient(base_url=url) as http:
        answer = await http.post(
            "/api/v1/tasks",
            json={"title": "x" * 2000, "kind": "inspection"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert answer.status_code == 413


async def test_wrong_tokens_are_throttled_per_address_whatever_it_forwards(
    tmp_path: Path, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    api = "api: {auth_failure_limit: {burst: 20, per_second: 0.5}}"
    caplog.set_level(logging.WARNING, logger="api.auth")
    async with system(tmp_path, mosquitto, api) as url, httpx.AsyncClient(base_url=url) as http:
        statuses = []
        for n in range(40):  # each guess claims another address: no proxy is trusted, so none is believed
            answer = await http.get(
                "/api/v1/alarms",
                headers={"Authorization": f"Bearer guess-{n:032d}", "X-Forwarded-For": f"203.0.113.{n}"},
            )
            statuses.append(answer.status_code)
            if answer.status_code == 429:
                assert int(answer.headers["retry-after"]) >= 1
        assert statuses[:20] == [401] * 20
        assert set(statuses[20:]) == {429}
        right = await http.get("/api/v1/alarms", headers={"Authorization": f"Bearer {TOKEN}"})
        assert right.status_code == 429  # a hit looks like the misses until the address may try again
        assert (await http.get("/healthz")).status_code == 200  # probes are never throttled
    assert any("too many wrong tokens from 127.0.0.1" in r.getMessage() for r in caplog.records)


async def test_a_trusted_proxy_is_believed_and_only_then(tmp_path: Path, mosquitto: Mosquitto) -> None:
    api = "api: {trusted_proxies: [127.0.0.1], auth_failure_limit: {burst: 2, per_second: 0.01}}"
    async with system(tmp_path, mosquitto, api) as url, httpx.AsyncClient(base_url=url) as http:
        for client in ("198.51.100.1", "198.51.100.2"):  # two clients behind the proxy, two buckets
            guesses = [
                (await http.get("/api/v1/alarms", headers={"Authorization": "Bearer x", "X-Forwarded-For": client}))
                for _ in range(3)
            ]
            assert [g.status_code for g in guesses] == [401, 401, 429]


async def test_every_answer_carries_the_hardening_of_its_kind(tmp_path: Path, mosquitto: Mosquitto) -> None:
    async with system(tmp_path, mosquitto) as url, httpx.AsyncClient(base_url=url) as http:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        desk = await http.get("/")
        api = await http.get("/api/v1/alarms", headers=auth)
        refused = await http.get("/api/v1/alarms")
        docs = await http.get("/api/docs")
        for answer in (desk, api, refused, docs, await http.get("/desk/desk.js")):
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.headers["referrer-policy"] == "no-referrer"
            assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
            assert "server" not in answer.headers  # no banner naming the server
        desk_policy = desk.headers["content-security-policy"]
        assert "script-src 'self'" in desk_policy
        assert "unsafe-inline" not in desk_policy and "unsafe-eval" not in desk_policy
        assert not re.search(r"<script>(?!</script>)", desk.text)  # no inline script for the policy to allow
        for answer in (api, refused):
            assert answer.headers["cache-control"] == "no-store"
            assert answer.headers["content-security-policy"].startswith("default-src 'none'")
        # The docs page loads nothing from elsewhere, and what it loads is served here.
        assert docs.status_code == 200
        sources = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
        assert sources and all(s.startswith("/") or s.startswith("data:") for s in sources), sources
        for source in sources:
            if source.startswith("/"):
                assert (await http.get(source)).status_code == 200, source
        assert "script-src 'self'" in docs.headers["content-security-policy"]
        assert "unsafe-inline" not in docs.headers["content-security-policy"].split("script-src")[1].split(";")[0]


async def test_redirects_never_echo_the_host_header_and_unknown_hosts_are_refused(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with system(tmp_path, mosquitto) as url, httpx.AsyncClient(base_url=url) as http:
        moved = await http.get("/api/v1/alarms/", headers={**auth, "Host": "evil.example"})
        assert moved.status_code in (301, 307, 308)
        assert moved.headers["location"] == "/api/v1/alarms"
    api = "api: {hosts: [desk.estate.example], auth_failure_limit: {burst: 1000, per_second: 1000}}"
    async with system(tmp_path / "named", mosquitto, api) as url, httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/api/v1/alarms", headers={**auth, "Host": "evil.example"})).status_code == 400
        named = await http.get("/api/v1/alarms", headers={**auth, "Host": "desk.estate.example:8000"})
        assert named.status_code == 200
