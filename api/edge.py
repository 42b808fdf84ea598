"""The HTTP edge: what every request meets before the app reads a byte of its body.

The gateway, the rules and the API share one event loop, so a request that makes the app read or
parse a large body stalls the whole service. Here, in order:

1. the Host header is checked against `api.hosts` (when set);
2. the token is checked (and wrong tokens throttled per address) for every path but the open ones
   (health, the desk's files, the API's docs), before the body is touched: a stranger's upload is
   answered 401 at once;
3. the body's size is held to `api.max_body_kb` (`MAX_FILE_BODY_KB` on the routes that take a
   whole file, `api.max_attachment_kb` on the upload of a task's or a plan step's attachment): a
   larger `Content-Length` is answered 413 unread, and a body without one (chunked) is read only
   up to the limit.

Every answer leaves with the browser hardening of its kind (a Content-Security-Policy without
inline script for the desk, one of its own for the docs, none at all for the API's data), and API
answers with `Cache-Control: no-store`. A redirect never echoes the Host header.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import TokenAuth
from facility.site import MAX_FILE_BODY_KB, Api
from reports.html import STYLE as REPORT_STYLE

OPEN_PATHS = frozenset({"/", "/healthz", "/readyz", "/api/openapi.json", "/api/docs"})
OPEN_PREFIXES = ("/desk/", "/api/docs/")
FILE_ROUTES = frozenset({"/api/v1/rules/validate"})  # takes a whole rule file, parsed off the event loop
# A photo or PDF on a task or a plan step: api.max_attachment_kb.
UPLOAD_ROUTE = re.compile(r"/api/v1/(tasks/\d+|plans/\d+/steps/[^/]+)/attachments")

_SELF = "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
# The desk shows a report in a sandboxed frame of its own document (srcdoc), which keeps the desk's
# policy: the report's one stylesheet is allowed by its digest, and nothing else inline.
_REPORT_STYLE = "'sha256-" + base64.b64encode(hashlib.sha256(REPORT_STYLE.encode()).digest()).decode() + "'"
DESK_POLICY = f"{_SELF}; script-src 'self'; style-src 'self' {_REPORT_STYLE}; img-src 'self' data:; form-action 'self'"
# Swagger UI sets style attributes as it renders; its script is the package's, never inline.
DOCS_POLICY = f"{_SELF}; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:"
# Data, and the reports' HTML (a stylesheet and SVG charts of its own, never a script).
API_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; frame-ancestors 'none'"
ALWAYS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)


def is_open(path: str) -> bool:
    """Whether a path is answered without a token: probes, and the files of the desk and the docs
    (they hold no data; the data they show comes from the API, with the user's token)."""
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def policy_for(path: str) -> str:
    if path == "/" or path.startswith("/desk/"):
        return DESK_POLICY
    if path == "/api/docs" or path.startswith("/api/docs/"):
        return DOCS_POLICY
    return API_POLICY


class Edge:
    """ASGI middleware: host, token and body size checked before the app runs; hardening headers
    on every answer."""

    def __init__(self, app: ASGIApp, auth: TokenAuth, settings: Api) -> None:
        self._app = app
        self._auth = auth
        self._hosts = frozenset(h.lower() for h in settings.hosts)
        self._max_body = settings.max_body_kb * 1024
        self._max_file = max(MAX_FILE_BODY_KB, settings.max_body_kb) * 1024
        self._max_upload = max(settings.max_attachment_kb, settings.max_body_kb) * 1024

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = Headers(scope=scope)
        send = _hardened(send, path, headers.get("host", ""))
        if self._hosts and (urlsplit(f"//{headers.get('host', '')}").hostname or "") not in self._hosts:
            await _answer(send, 400, "this service does not answer to that host name")
            return
        if not is_open(path):
            client = scope.get("client")
            try:
                user = await self._auth.authenticate(headers.get("authorization", ""), client[0] if client else "")
            except HTTPException as exc:
                await _answer(send, exc.status_code, exc.detail, (exc.headers or {}).items())
                return
            scope.setdefault("state", {})["user"] = user  # the routes and the audit log find it here
        limit = self._limit_of(path)
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                await _answer(send, 400, "Content-Length is not a number")
                return
            if int(length) > limit:
                await _answer(send, 413, f"the body is over {limit // 1024} KiB, the most this route takes")
                return
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = await _read_up_to(receive, limit)
            if body is None:
                await _answer(send, 413, f"the body is over {limit // 1024} KiB, the most this route takes")
                return
            receive = _replay(body, receive)
        await self._app(scope, receive, send)

    def _limit_of(self, path: str) -> int:
        """The most a request to `path` may carry, in bytes."""
        if path in FILE_ROUTES:
            return self._max_file
        return self._max_upload if UPLOAD_ROUTE.fullmatch(path) else self._max_body


async def _read_up_to(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None once it passes `limit` (the rest is never read)."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            return b"".join(parts)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the body already read, then waits on the client (for a disconnect)."""
    given = False

    async def replayed() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _hardened(send: Send, path: str, host: str) -> Send:
    policy = policy_for(path).encode()
    static = path.startswith(("/desk/", "/api/docs/"))

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"server"]
            names = {k.lower() for k, _ in headers}
            extra = [(k, v) for k, v in ALWAYS if k not in names]
            if b"content-security-policy" not in names:
                extra.append((b"content-security-policy", policy))
            if not static and b"cache-control" not in names:
                extra.append((b"cache-control", b"no-store"))
            headers = [(k, _relative(v, host) if k.lower() == b"location" else v) for k, v in headers]
            message = {**message, "headers": headers + extra}
        await send(message)

    return sending


def _relative(location: bytes, host: str) -> bytes:
    """A redirect to this service as a path alone: the Host header is the client's to choose, and a
    Location built from it would send the next request wherever the client said."""
    parts = urlsplit(location.decode("latin-1"))
    if not parts.netloc:
        return location
    if parts.netloc.lower() != host.lower():
        return location  # somewhere else on purpose
    return (parts.path or "/").encode("latin-1") + (b"?" + parts.query.encode("latin-1") if parts.query else b"")


async def _answer(send: Send, status: int, detail: str, headers: Iterable[tuple[str, str]] = ()) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
