"""The simulators' control API (/sim) under a building limit, and its hostile request fields.

An engineer limited to building B1 drives B1's simulated devices as any engineer does; to them,
B2's devices, the library scenarios that touch one and the runs that play one do not exist: every
answer is the one an unknown device, scenario or run gets, word for word, so that /sim tells them
nothing of B2 (not even that a device of that id exists), and B2's plant is left as it was.

And what /sim refuses, it refuses with a 422 naming the field, in the shape the rest of the API
and its document give: a name that is no scenario id (`.`, `..`), a definition that cannot be
read (a YAML alias that contains itself), an unknown fault or parameter.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from facility.netutil import free_port
from facility.store.users import Role
from tests.api.conftest import Accounts
from tests.api.test_access_matrix import B1_DEVICES, BUILDINGS
from testsupport.servers import Mosquitto
from testsupport.system import TOKEN, running_system, write_site

# A lift and a lighting panel in each of B1 and B2 (the pump of write_site is in B2 too), and a
# scenario library: one of B1's lifts, one of B2's, and one that touches both buildings.
SITE = BUILDINGS + "scenarios: [scenarios]\n"
EVERY_DEVICE = {"pump-1", "lift-1", "lift-2", "lights-1"}
HOUR_LONG = "{at: 0s, inject: {device: %s, fault: door_fault}}, {at: 1h, clear: {device: %s}}"
LIBRARY = {
    "b1-lift": f"name: b1-lift\nsteps: [{HOUR_LONG % ('lift-1', 'lift-1')}]\n",
    "b2-lift": f"name: b2-lift\nsteps: [{HOUR_LONG % ('lift-2', 'lift-2')}]\n",
    "both-lifts": f"name: both-lifts\nsteps: [{HOUR_LONG % ('lift-1', 'lift-2')}]\n",
}


@contextlib.asynccontextmanager
async def b1_engineer(
    tmp_path: Path, mosquitto: Mosquitto, accounts: Accounts
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """The estate running, with clients of an engineer limited to B1 and of the admin."""
    port = free_port()
    (tmp_path / "scenarios").mkdir()
    for name, text in LIBRARY.items():
        (tmp_path / "scenarios" / f"{name}.yaml").write_text(text)
    site = write_site(tmp_path, mosquitto.url, port, extra=SITE.format(port=port))
    token = await accounts.add("eng", Role.ENGINEER, ["B1"])
    async with (
        running_system(site, accounts.data) as (url, _site),
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}) as eng,
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as admin,
    ):
        yield eng, admin


async def faults_of(admin: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    """The faults of every simulated device, as the admin sees them."""
    return {d["id"]: d["faults"] for d in (await admin.get("/sim/devices")).json()}


def clearing(device: str) -> dict[str, str]:
    """A request to play a scenario of B1's lift whose second step clears `device`."""
    return {"definition": f"name: mine\nsteps: [{HOUR_LONG % ('lift-1', device)}]"}


def answer(response: httpx.Response) -> tuple[int, Any]:
    return response.status_code, response.json()


async def test_a_user_limited_to_a_building_sees_and_drives_only_its_simulated_devices(
    tmp_path: Path, mosquitto: Mosquitto, accounts: Accounts
) -> None:
    async with b1_engineer(tmp_path, mosquitto, accounts) as (eng, admin):
        assert {d["id"] for d in (await eng.get("/sim/devices")).json()} == B1_DEVICES
        assert {d["id"] for d in (await admin.get("/sim/devices")).json()} == EVERY_DEVICE

        # Another building's device answers as a device that does not exist, whatever the fault.
        for fault in ("entrapment", "no-such-fault"):
            theirs = await eng.post("/sim/faults", json={"device": "lift-2", "fault": fault})
            unknown = await eng.post("/sim/faults", json={"device": "nope", "fault": fault})
            assert answer(theirs) == (404, {"detail": "no simulated device 'lift-2'"})
            assert answer(unknown) == (404, {"detail": "no simulated device 'nope'"})
        assert (await faults_of(admin))["lift-2"] == {}

        injected = await admin.post("/sim/faults", json={"device": "lift-2", "fault": "entrapment"})
        assert injected.status_code == 201, injected.text
        for path in ("/sim/faults/{}", "/sim/faults/{}/entrapment"):
            theirs, unknown = await eng.delete(path.format("lift-2")), await eng.delete(path.format("nope"))
            assert answer(theirs) == (404, {"detail": "no simulated device 'lift-2'"}), path
            assert answer(unknown) == (404, {"detail": "no simulated device 'nope'"}), path
        assert "entrapment" in (await faults_of(admin))["lift-2"]

        # Their own building's devices they drive as any engineer.
        mine = await eng.post("/sim/faults", json={"device": "lift-1", "fault": "entrapment"})
        assert mine.status_code == 201 and "entrapment" in mine.json()["faults"], mine.text
        cleared = await eng.delete("/sim/faults/lift-1/entrapment")
        assert cleared.status_code == 200 and cleared.json()["faults"] == {}, cleared.text


async def test_a_user_limited_to_a_building_plays_and_sees_only_scenarios_of_its_devices(
    tmp_path: Path, mosquitto: Mosquitto, accounts: Accounts
) -> None:
    async with b1_engineer(tmp_path, mosquitto, accounts) as (eng, admin):
        listed = (await eng.get("/sim/scenarios")).json()
        assert [s["name"] for s in listed["library"]] == ["b1-lift"]
        assert {s["name"] for s in (await admin.get("/sim/scenarios")).json()["library"]} == set(LIBRARY)

        # A library scenario that touches another building is one that does not exist.
        for name in ("b2-lift", "both-lifts", "nope"):
            refused = await eng.post("/sim/scenarios", json={"name": name})
            assert answer(refused) == (404, {"detail": f"no scenario {name!r} (known: b1-lift)"}), name
        # So is a definition's step on another building's device: the same 422 as an unknown one.
        hidden, unknown = [await eng.post("/sim/scenarios", json=clearing(device)) for device in ("lift-2", "nope")]
        assert (hidden.status_code, hidden.text) == (422, unknown.text.replace("nope", "lift-2"))
        [problem] = hidden.json()["detail"]
        assert problem["loc"] == ["body", "definition"], problem
        assert problem["msg"].endswith("steps[1].clear.device: no simulated device 'lift-2'"), problem
        assert (await faults_of(admin))["lift-2"] == {}

        # Another building's run is not in the list, and by id it is a run that does not exist.
        theirs = await admin.post("/sim/scenarios", json={"name": "b2-lift"})
        assert theirs.status_code == 201, theirs.text
        run = theirs.json()["id"]
        assert (await eng.get("/sim/scenarios")).json()["runs"] == []
        for method in ("GET", "DELETE"):
            hidden, unknown = [await eng.request(method, f"/sim/scenarios/{n}") for n in (run, 999)]
            assert answer(hidden) == (404, {"detail": f"no scenario run {run}"}), method
            assert answer(unknown) == (404, {"detail": "no scenario run 999"}), method
        assert (await admin.get(f"/sim/scenarios/{run}")).json()["state"] == "running"

        # Their own scenarios they play, list and stop as any engineer.
        mine = await eng.post("/sim/scenarios", json={"name": "b1-lift"})
        assert mine.status_code == 201, mine.text
        assert [r["id"] for r in (await eng.get("/sim/scenarios")).json()["runs"]] == [mine.json()["id"]]
        stopped = await eng.delete(f"/sim/scenarios/{mine.json()['id']}")
        assert stopped.status_code == 200 and stopped.json()["state"] == "stopped", stopped.text
        assert (await admin.delete(f"/sim/scenarios/{run}")).json()["state"] == "stopped"


async def test_a_refused_fault_or_scenario_is_a_422_naming_the_field_as_the_rest_of_the_api(
    tmp_path: Path, mosquitto: Mosquitto, accounts: Accounts
) -> None:
    """The shape the document gives for 422 (FastAPI's own), not a bare string."""
    async with b1_engineer(tmp_path, mosquitto, accounts) as (eng, _admin):
        refusals = {
            ("body", "fault"): await eng.post("/sim/faults", json={"device": "lift-1", "fault": "nope"}),
            ("body", "params"): await eng.post(
                "/sim/faults", json={"device": "lift-1", "fault": "entrapment", "params": {"floor": 3}}
            ),
            ("path", "fault"): await eng.delete("/sim/faults/lift-1/nope"),
            ("body", "definition"): await eng.post("/sim/scenarios", json={"definition": "steps: ["}),
        }
        for field, refused in refusals.items():
            assert refused.status_code == 422, (field, refused.text)
            assert [e["loc"] for e in refused.json()["detail"]] == [list(field)], refused.text


async def test_a_scenario_name_that_is_no_scenario_id_is_422_naming_the_field(
    tmp_path: Path, mosquitto: Mosquitto, accounts: Accounts
) -> None:
    async with b1_engineer(tmp_path, mosquitto, accounts) as (eng, admin):
        for client in (eng, admin):
            for name in (".", "..", "../b2-lift", "B1-LIFT"):
                refused = await client.post("/sim/scenarios", json={"name": name})
                assert refused.status_code == 422, (name, refused.text)
                assert [e["loc"] for e in refused.json()["detail"]] == [["body", "name"]], name


async def test_a_definition_with_a_self_referencing_alias_is_422_naming_the_definition(
    tmp_path: Path, mosquitto: Mosquitto, accounts: Accounts
) -> None:
    async with b1_engineer(tmp_path, mosquitto, accounts) as (eng, _admin):
        for definition in ("&a [*a]", "name: loop\nsteps: &s [{at: 0s, inject: *s}]\n", "&m {a: *m}"):
            refused = await eng.post("/sim/scenarios", json={"definition": definition})
            assert refused.status_code == 422, (definition, refused.text)
            assert [e["loc"] for e in refused.json()["detail"]] == [["body", "definition"]], refused.text
