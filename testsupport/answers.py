"""HTTP requests whose every answer is checked: status, then shape. Shared by tests and benchmarks.

A benchmark that reads its figure off an answer it never looked at measures nothing: a 429 it
ignored once left an alarm unacknowledged and bench/fault_to_desk.py waiting for an event that
could not come. So every request a benchmark makes goes through `CheckedClient.request`, which
fails loudly (UnexpectedAnswer, naming the request and what came back) on any status but the one
expected and on a body that does not have the expected shape.

A 429 is the one answer that is expected at any time from a route that changes something (the
API limits each user's changes, api/auth.py): it is honoured, not fought: the client waits the
answer's Retry-After, sends the request again, and counts it (`rate_limited`, `rate_limited_s`)
so that the caller can report it.

`until_ready` waits for the parts a caller needs to say they are up on /readyz: a service answers
(/healthz) before its ops store has opened, and until then a list or a user's token gets a 503.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import BaseModel, ValidationError

from api.health import ReadinessView

__all__ = ["Answered", "CheckedClient", "UnexpectedAnswer", "until_ready"]

Check = Callable[[Any], str | None]  # a problem with the decoded body, or None when it is right
MAX_RATE_LIMITED = 60  # 429s in a row for one request before the client gives up on it
BODY_SHOWN = 500  # characters of an unexpected answer's body quoted in the error


class UnexpectedAnswer(RuntimeError):
    """An answer that is not the one expected: the request, the status and the start of the body."""


@dataclass(frozen=True)
class Answered:
    """A checked answer. `sent` (perf_counter) and `elapsed_s` are of the attempt that got it, so a
    request sent again after a 429 is timed from when it was sent again."""

    status: int
    body: Any
    sent: float
    elapsed_s: float


class CheckedClient:
    """Wraps an httpx.AsyncClient (its base URL, headers and connection pool are the caller's)."""

    def __init__(self, http: httpx.AsyncClient, *, max_rate_limited: int = MAX_RATE_LIMITED) -> None:
        self.http = http
        self.max_rate_limited = max_rate_limited
        self.rate_limited = 0  # 429 answers honoured, over every request
        self.rate_limited_s = 0.0  # seconds spent waiting them out

    async def get(self, url: str, **kwargs: Any) -> Answered:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> Answered:
        return await self.request("POST", url, **kwargs)

    async def delete(self, url: str, **kwargs: Any) -> Answered:
        return await self.request("DELETE", url, **kwargs)

    async def request(
        self,
        method: str,
        url: str,
        *,
        expect: int | Collection[int] = 200,
        model: type[BaseModel] | None = None,
        check: Check | None = None,
        **kwargs: Any,
    ) -> Answered:
        """Send, and return the decoded JSON body once the status is `expect` (or one of them), the body validates
        against `model` (the API's own answer model: it forbids unknown keys) and `check` finds no
        problem. A 429 is waited out and the request sent again; anything else unexpected raises."""
        for _ in range(self.max_rate_limited + 1):
            sent = time.perf_counter()
            response = await self.http.request(method, url, **kwargs)
            elapsed = time.perf_counter() - sent
            if response.status_code == 429 and not _expected(429, expect):
                await self._wait_out(method, url, response)
                continue
            body = self._checked(method, url, response, expect, model, check)
            return Answered(response.status_code, body, sent, elapsed)
        raise UnexpectedAnswer(f"{method} {url}: still 429 after waiting {self.max_rate_limited} times")

    async def _wait_out(self, method: str, url: str, response: httpx.Response) -> None:
        retry_after = response.headers.get("retry-after", "")
        try:
            wait = float(retry_after)
        except ValueError:
            problem = f"a 429 without a Retry-After in seconds ({retry_after!r})"
            raise _unexpected(method, url, response, problem) from None
        if not 0 <= wait <= 3600:
            raise _unexpected(method, url, response, f"a 429 with an implausible Retry-After of {wait:g} s")
        self.rate_limited += 1
        self.rate_limited_s += wait
        await asyncio.sleep(wait)

    @staticmethod
    def _checked(
        method: str,
        url: str,
        response: httpx.Response,
        expect: int | Collection[int],
        model: type[BaseModel] | None,
        check: Check | None,
    ) -> Any:
        if not _expected(response.status_code, expect):
            raise _unexpected(method, url, response, f"status {response.status_code}, expected {expect}")
        if not response.content:
            if model is not None or check is not None:
                raise _unexpected(method, url, response, "an empty body")
            return None
        try:
            body = response.json()
        except json.JSONDecodeError as exc:
            raise _unexpected(method, url, response, f"a body that is not JSON ({exc})") from None
        if model is not None:
            try:
                model.model_validate(body)
            except ValidationError as exc:
                raise _unexpected(method, url, response, f"a body that is not a {model.__name__}: {exc}") from None
        if check is not None and (problem := check(body)):
            raise _unexpected(method, url, response, problem)
        return body


async def until_ready(client: CheckedClient, kinds: Collection[str], timeout: float = 60.0) -> Any:
    """Poll /readyz until every part of these kinds (`ops_store`, `broker`, ...) is up, and at least
    one of each is there; the last readiness view. A part still down after `timeout` is an
    UnexpectedAnswer naming it and why."""
    deadline = time.monotonic() + timeout
    while True:
        view = (await client.get("/readyz", expect=(200, 503), model=ReadinessView)).body
        parts = [p for p in view["parts"] if p["kind"] in kinds]
        waiting = [p for p in parts if p["state"] != "up"]
        missing = set(kinds) - {p["kind"] for p in parts}
        if not waiting and not missing:
            return view
        if time.monotonic() > deadline:
            told = [f"{p['name']} is {p['state']} ({p['detail']})" for p in waiting]
            told += [f"no part of kind {kind} on /readyz" for kind in sorted(missing)]
            raise UnexpectedAnswer(f"not ready after {timeout:g} s: {'; '.join(told)}")
        await asyncio.sleep(0.1)


def _expected(status: int, expect: int | Collection[int]) -> bool:
    return status == expect if isinstance(expect, int) else status in expect


def _unexpected(method: str, url: str, response: httpx.Response, what: str) -> UnexpectedAnswer:
    body = response.text
    shown = body if len(body) <= BODY_SHOWN else f"{body[:BODY_SHOWN]}... ({len(body)} characters)"
    return UnexpectedAnswer(f"{method} {url} got {what}; status {response.status_code}, body: {shown}")
