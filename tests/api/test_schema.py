"""The API against its own OpenAPI document: schemathesis sends every operation valid and invalid
requests over real HTTP to the running system, and no answer may be a server error or differ from
the schema the document gives for its status. Every operation is in: the routes that change
things, the event stream and the simulators' control API.

Changes are limited per user (a burst of 60, then 2 a second), and a fuzz answered 429 tests
nothing of the route. So the site file gives the fuzz users (`fuzz-0` ...) a limit of their own,
far above what the fuzz sends (`api.user_limits`), and each operation is fuzzed by one of them:
its requests, fewer than the default burst, would stay clear of 429 even under the default limit.
A 429 fails the test.

/api/v1/stream never ends while it is valid. Each request to it is read for STREAM_READ_S: an
answer that opened with 200, the `text/event-stream` its description names and the `: connected`
comment is the answer to judge, cut there; every other answer (401, 422) ends by itself and is
judged whole. Who may open it is checked in test_access_matrix.

/sim, the simulators' control API, injects faults and starts scenarios that keep playing. Fuzzed
against the estate, those would change what every other operation answers (alarms, tasks, device
states), by timing, and so differently from run to run. So /sim is fuzzed against a system of its
own (`plant`), and after each /sim operation every scenario run is stopped and every fault cleared:
each operation meets the plant as it started, whatever the ones before it sent, and the requests
are the same on every run (derandomized), so a run repeats the last one. Half its requests are
aimed at the plant's own devices, faults, scenario and runs (`aimed`): random names are all
unknown, and a fuzz answered only 404 would test nothing of injecting, clearing or playing.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.core.result import Err

from facility.netutil import free_port
from facility.store.users import Role
from tests.api.conftest import Accounts
from testsupport.servers import Mosquitto
from testsupport.system import TOKEN, running_system, write_site

EXAMPLES = 50  # requests per operation
SIM_EXAMPLES = 25  # ... per /sim operation: each has few paths, and half its requests aim at them
STREAM_EXAMPLES = 20  # ... to the event stream, each valid one held open for STREAM_READ_S
STREAM_READ_S = 0.5  # how long an open event stream is read: its first line comes at once
STREAM = "GET /api/v1/stream"
FUZZERS = 100  # fuzz users with a limit of their own: one per operation, and room for more routes
FUZZ_LIMIT = {"burst": 100_000, "per_second": 10_000.0}  # far above the few hundred a fuzz sends


@dataclass(frozen=True)
class System:
    url: str
    accounts: Accounts


@dataclass(frozen=True)
class Targets:
    """What a /sim request may aim at: the plant's devices with their faults, its scenarios."""

    faults: dict[str, list[str]]
    scenarios: list[str]


# The plant's scenario library: both of its devices at once, the lift's fault lasting an hour of
# scenario time (the fuzz plays it at speeds up to 1,000,000, and stops it afterwards).
SCENARIO = """\
name: lift-and-pump
steps:
  - {at: 0s, inject: {device: lift-1, fault: door_fault}}
  - {at: 1s, inject: {device: pump-1, fault: low_pressure}}
  - {at: 1h, clear: {device: lift-1}}
"""


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


@contextlib.contextmanager
def fuzzed_system(folder: Path, mosquitto: Mosquitto, extra: str = "") -> Iterator[System]:
    """The test estate, its fuzz users given their own change limit."""
    accounts = Accounts(folder / "data")
    limits = {"user_limits": {f"fuzz-{n}": FUZZ_LIMIT for n in range(FUZZERS)}}
    site = write_site(folder, mosquitto.url, free_port(), extra=extra, api=limits)
    with system_in_thread(site, accounts.data) as url:
        yield System(url, accounts)


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory, mosquitto: Mosquitto) -> Iterator[System]:
    """The system whose estate operations (everything but /sim) are fuzzed."""
    with fuzzed_system(tmp_path_factory.mktemp("schema"), mosquitto) as system:
        yield system


@pytest.fixture(scope="module")
def plant(tmp_path_factory: pytest.TempPathFactory, mosquitto: Mosquitto) -> Iterator[System]:
    """A system of its own for fuzzing /sim: what it does to its plant reaches no other operation."""
    folder = tmp_path_factory.mktemp("schema-sim")
    (folder / "scenarios").mkdir()
    (folder / "scenarios" / "lift-and-pump.yaml").write_text(SCENARIO)
    with fuzzed_system(folder, mosquitto, extra="scenarios: [scenarios]\n") as system:
        yield system


def targets_of(plant: System) -> Targets:
    with requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {TOKEN}"
        devices = http.get(f"{plant.url}/sim/devices", timeout=30).json()
        library = http.get(f"{plant.url}/sim/scenarios", timeout=30).json()["library"]
    return Targets({d["id"]: sorted(d["available_faults"]) for d in devices}, [s["name"] for s in library])


def aimed(cases: st.SearchStrategy[schemathesis.Case], targets: Targets) -> st.SearchStrategy[schemathesis.Case]:
    """The cases, half of them with each device, fault, scenario (name or definition) and run id
    they carry, in the path or the body, replaced by one the plant has (or a broken definition)."""

    @st.composite
    def case_aimed(draw: st.DrawFn) -> schemathesis.Case:
        case = draw(cases)
        if draw(st.booleans()):
            device = draw(st.sampled_from(sorted(targets.faults)))
            known: dict[str, str | int] = {
                "device": device,
                "fault": draw(st.sampled_from(targets.faults[device])),
                "name": draw(st.sampled_from(targets.scenarios)),
                "definition": draw(st.sampled_from([SCENARIO, "steps: [", SCENARIO.replace("lift-1", "lift-9")])),
                "run_id": draw(st.integers(1, 3)),
            }
            case.path_parameters = {k: known.get(k, v) for k, v in case.path_parameters.items()}
            if isinstance(case.body, dict):
                body = {k: known.get(k, v) for k, v in case.body.items()}
                if {"name", "definition"} <= body.keys():  # a scenario is played from one of them
                    del body[draw(st.sampled_from(["name", "definition"]))]
                case.body = body
        return case

    return case_aimed()


def operations_of(system: System, sim: bool) -> list[schemathesis.APIOperation]:
    """The operations of the system's own document, as schemathesis reads them: /sim ones, or
    every other."""
    document = schemathesis.openapi.from_url(f"{system.url}/api/openapi.json")
    chosen = document.include(path_regex="^/sim/") if sim else document.exclude(path_regex="^/sim/")
    found = []
    for result in chosen.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # a part of the document schemathesis cannot read
        found.append(result.ok())
    assert len(found) <= FUZZERS, "more operations than fuzz users with a limit of their own: raise FUZZERS"
    return found


def fuzzers(system: System, operations: list[schemathesis.APIOperation]) -> dict[str, str]:
    """An admin of its own for each operation ("POST /api/v1/tasks" -> token)."""
    made = asyncio.run(system.accounts.add_many((f"fuzz-{n}", Role.ADMIN, ()) for n in range(len(operations))))
    return {operation.label: made[f"fuzz-{n}"] for n, operation in enumerate(operations)}


def fuzz(operation: schemathesis.APIOperation, token: str, targets: Targets | None = None) -> None:
    """Send `operation` valid and invalid requests, the same ones on every run, half of them aimed
    at `targets` if given; the first that fails a check raises, with the request as a curl command."""
    requests_sent = st.one_of([operation.as_strategy(mode) for mode in GenerationMode])
    if targets is not None:
        requests_sent = aimed(requests_sent, targets)
    stream = operation.label == STREAM
    sim = operation.path.startswith("/sim/")
    examples = STREAM_EXAMPLES if stream else SIM_EXAMPLES if sim else EXAMPLES
    # A (connect, read) pair: schemathesis reads an event stream for the read half, then cuts it.
    timeout: float | tuple[float, float] = (30, STREAM_READ_S) if stream else 30

    @given(case=requests_sent)
    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    def answers_as_documented(case: schemathesis.Case) -> None:
        response = case.call(headers={"Authorization": f"Bearer {token}"}, timeout=timeout)
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
        assert response.status_code != 429, "a 429 tests nothing of the route: is api.user_limits applied?"
        if stream and response.status_code == 200:
            assert response.headers["content-type"] == ["text/event-stream; charset=utf-8"], response.headers
            assert response.content.startswith(b": connected\n\n"), response.content

    answers_as_documented()


def reset(plant: System) -> None:
    """Stop every scenario run of the plant and clear every device's faults, as the admin."""
    with requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {TOKEN}"
        for run in http.get(f"{plant.url}/sim/scenarios", timeout=30).json()["runs"]:
            http.delete(f"{plant.url}/sim/scenarios/{run['id']}", timeout=30).raise_for_status()
        for device in http.get(f"{plant.url}/sim/devices", timeout=30).json():
            http.delete(f"{plant.url}/sim/faults/{device['id']}", timeout=30).raise_for_status()


def test_no_request_gets_a_server_error_or_an_answer_unlike_its_schema(
    estate: System, subtests: pytest.Subtests
) -> None:
    operations = operations_of(estate, sim=False)
    assert {op.label for op in operations} >= {
        "GET /healthz",
        STREAM,
        "POST /api/v1/tasks",
        "POST /api/v1/rules/reload",
    }
    tokens = fuzzers(estate, operations)
    for operation in operations:
        with subtests.test(operation.label):
            fuzz(operation, tokens[operation.label])


def test_no_request_to_the_simulators_gets_a_server_error_or_an_answer_unlike_its_schema(
    plant: System, subtests: pytest.Subtests
) -> None:
    operations = operations_of(plant, sim=True)
    assert {op.label for op in operations} >= {
        "POST /sim/faults",
        "POST /sim/scenarios",
        "DELETE /sim/scenarios/{run_id}",
    }
    tokens, targets = fuzzers(plant, operations), targets_of(plant)
    for operation in operations:
        with subtests.test(operation.label):
            try:
                fuzz(operation, tokens[operation.label], targets)
            finally:
                reset(plant)
