"""The alarm, task and plan the stores return and those the API answers are one shape: the API's
model is the record's fields, and where its device is. A field renamed or added in a record
(facility.records.AlarmRecord, TaskRecord, PlanRecord) without the API's model (api.schemas.Alarm,
Task, PlanInstance) fails here, not on the desk at night."""

from __future__ import annotations

from dataclasses import fields

from api import schemas
from api.routes.plans import PlanStepWithFiles
from facility.records import AlarmRecord, NewAlarm, NewTask, PlanRecord, PlanStepRecord, TaskKind, TaskRecord
from facility.store.ops import OpsStore
from facility.store.tasks import TaskStore
from facility.vocabulary import Text


def test_the_apis_alarm_is_the_records_fields_and_its_place() -> None:
    record = {f.name for f in fields(AlarmRecord)} - {"history"}
    assert set(schemas.Alarm.model_fields) == record | set(schemas.Placed.model_fields)
    assert set(schemas.AlarmDetail.model_fields) == set(schemas.Alarm.model_fields) | {"history", "plan"}


async def test_a_stored_alarm_as_the_bus_carries_it_is_what_the_api_answers(ops_store: OpsStore) -> None:
    new = NewAlarm("low-pressure", "pump-1", "high", "压力低", "pressure low", "出口压力低", "outlet low", 1)
    raised, _ = await ops_store.alarms.raise_alarm(new)
    await ops_store.alarms.comment(raised.id, "duty", "10.0.0.5", "vendor called", 2)
    place = {"device_name": "Pump 1", "building": "A", "system": "water_supply"}
    shown = schemas.Alarm.model_validate({**raised.as_json(), **place})
    assert (shown.id, shown.title.en, shown.message.zh) == (raised.id, "pressure low", "出口压力低")
    detail = await ops_store.alarms.get_alarm(raised.id)
    history = [{**h.as_json(), "text": {"zh": h.detail, "en": h.detail}} for h in detail.history]
    answered = schemas.AlarmDetail.model_validate({**detail.as_json(), **place, "history": history, "plan": None})
    assert [h.action for h in answered.history] == ["raised", "comment"]


def test_the_apis_task_is_the_records_json_and_its_place() -> None:
    record = {f.name for f in fields(TaskRecord)} - {"rule", "created_by", "history"} | {"source"}
    assert set(schemas.Task.model_fields) == record | set(schemas.Placed.model_fields)
    assert set(schemas.TaskDetail.model_fields) == set(schemas.Task.model_fields) | {"history"}


async def test_a_stored_task_as_the_bus_carries_it_is_what_the_api_answers(ops_store: OpsStore) -> None:
    tasks = TaskStore(ops_store)
    new = NewTask(
        Text("巡检", "round"), TaskKind.INSPECTION, "medium", 10**18, 1, "wang", checklist=(Text.same("看表"),)
    )
    made = await tasks.create(new)
    await tasks.add_note(made.id, "换了压力传感器", "li", "10.0.0.5", 2)
    place = {"device_name": "", "building": "", "system": ""}
    (listed,) = await tasks.list(3)  # a list's tasks come without their history
    shown = schemas.Task.model_validate({**listed.as_json(), **place})
    assert (shown.source.kind, shown.checklist[0].text.zh, shown.notes[0].text) == ("manual", "看表", "换了压力传感器")
    detail = schemas.TaskDetail.model_validate({**(await tasks.get(made.id, 3)).as_json(), **place})
    assert [h.action for h in detail.history] == ["created", "note"]


def test_the_apis_plan_is_the_records_fields_and_its_place() -> None:
    assert set(schemas.PlanInstance.model_fields) == {f.name for f in fields(PlanRecord)} | set(
        schemas.Placed.model_fields
    )
    assert set(PlanStepWithFiles.model_fields) == {f.name for f in fields(PlanStepRecord)}
