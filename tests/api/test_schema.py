"""The API against its own OpenAPI document: schemathesis sends every operation valid and invalid
requests over real HTTP to the running system, and no answer may be a server error or differ from
the schema the document gives for its status.

Two parts of the document are left out. /api/v1/stream never ends, so there is no answer to judge
(who may open it is checked in test_access_matrix). /sim is the simulators' control API, not the
estate's: fuzzing it would inject random faults and start scenarios that keep playing, changing
what every other operation answers and making a run unrepeatable.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.core.result import Err

from facility.netutil import free_port
from facility.store.users import Role
from tests.api.conftest import Accounts
from tests.servers import Mosquitto
from tests.system import running_system, write_site

EXAMPLES = 50  # requests per operation (under the rate limit's burst of 60); the run takes well under two minutes


@contextlib.contextmanager
def system_in_thread(site: Path, data: Path) -> Iterator[str]:
    """`running_system` in a thread and loop of its own, for callers that block (schemathesis sends
    with requests); yields its base URL."""
    started: Future[tuple[str, asyncio.AbstractEventLoop, asyncio.Event]] = Future()
    ended: Future[None] = Future()

    async def run() -> None:
        try:
            async with running_system(site, data) as (url, _site):
                stop = asyncio.Event()
                started.set_result((url, asyncio.get_running_loop(), stop))
                await stop.wait()
        except BaseException as exc:
            if not started.done():
                started.set_exception(exc)
            raise

    def main() -> None:
        try:
            asyncio.run(run())
            ended.set_result(None)
        except BaseException as exc:
            ended.set_exception(exc)

    threading.Thread(target=main, name="system under test", daemon=True).start()
    url, loop, stop = started.result(timeout=30)
    try:
        yield url
    finally:
        loop.call_soon_threadsafe(stop.set)
        ended.result(timeout=30)


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, mosquitto: Mosquitto) -> Iterator[tuple[str, Accounts]]:
    folder = tmp_path_factory.mktemp("schema")
    accounts = Accounts(folder / "data")
    with system_in_thread(write_site(folder, mosquitto.url, free_port()), accounts.data) as url:
        yield url, accounts


@pytest.fixture(scope="module")
def operations(system: tuple[str, Accounts]) -> list[schemathesis.APIOperation]:
    """The operations of the system's own document, as schemathesis reads them."""
    url, _ = system
    document = schemathesis.openapi.from_url(f"{url}/api/openapi.json")
    found = []
    for result in document.exclude(path="/api/v1/stream").exclude(path_regex="^/sim/").get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # a part of the document schemathesis cannot read
        found.append(result.ok())
    return found


@pytest.fixture(scope="module")
def tokens(system: tuple[str, Accounts], operations: list[schemathesis.APIOperation]) -> dict[str, str]:
    """An admin of its own for each operation ("POST /api/v1/tasks" -> token): changes are limited
    per user (a burst of 60, then 2 a second), and with one user most generated changes would be
    answered 429: a valid answer, but one that tests nothing of the route."""
    _, accounts = system
    made = asyncio.run(accounts.add_many((f"fuzz-{n}", Role.ADMIN, ()) for n in range(len(operations))))
    return {operation.label: made[f"fuzz-{n}"] for n, operation in enumerate(operations)}


def fuzz(operation: schemathesis.APIOperation, token: str) -> None:
    """Send `operation` valid and invalid requests, the same ones on every run; the first that fails
    a check raises, with the request as a curl command."""
    requests = st.one_of([operation.as_strategy(mode) for mode in GenerationMode])

    @given(case=requests)
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    def answers_as_documented(case: schemathesis.Case) -> None:
        # A 429 passes both checks: it is no server error, and the document gives it no schema.
        response = case.call(headers={"Authorization": f"Bearer {token}"}, timeout=30)
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

    answers_as_documented()


def test_no_request_gets_a_server_error_or_an_answer_unlike_its_schema(
    operations: list[schemathesis.APIOperation], tokens: dict[str, str], subtests: pytest.Subtests
) -> None:
    assert {op.label for op in operations} >= {"GET /healthz", "GET /api/v1/alarms", "POST /api/v1/tasks"}
    for operation in operations:
        with subtests.test(operation.label):
            fuzz(operation, tokens[operation.label])
