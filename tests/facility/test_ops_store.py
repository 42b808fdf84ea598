"""The ops store keeps one open alarm per rule and device, and keeps it across restarts; on SQLite
and on PostgreSQL."""

from __future__ import annotations

from facility.store.ops import NewAlarm, OpsStore


def new(ts: int, rule: str = "r1", device: str = "d1") -> NewAlarm:
    return NewAlarm(rule, device, "high", "标题", "title", "说明", "message", ts)


async def test_recurrence_updates_the_open_alarm_never_duplicates(ops_url: str) -> None:
    store = OpsStore(ops_url)
    await store.start()
    first, changed = await store.raise_alarm(new(1))
    assert changed and first["state"] == "unacknowledged"
    again, changed = await store.raise_alarm(new(2))
    assert not changed and again["id"] == first["id"]  # still active: nothing to do
    returned = await store.return_to_normal("r1", "d1", 3)
    assert returned is not None and returned["state"] == "rtn_unacknowledged"
    recurred, changed = await store.raise_alarm(new(4))
    assert changed and recurred["id"] == first["id"] and recurred["state"] == "unacknowledged"
    assert len(await store.list_alarms(include_closed=True)) == 1
    await store.close()


async def test_acknowledged_then_cleared_alarm_closes_and_a_new_one_follows(ops_url: str) -> None:
    store = OpsStore(ops_url)
    await store.start()
    first, _ = await store.raise_alarm(new(1))
    acked = await store.acknowledge(first["id"], "duty", "10.0.0.5", 2)
    assert acked is not None and acked["state"] == "acknowledged" and acked["acked_by"] == "duty"
    again = await store.acknowledge(first["id"], "other", "10.0.0.6", 3)
    assert again is not None and again["acked_by"] == "duty"  # a second ack changes nothing
    closed = await store.return_to_normal("r1", "d1", 4)
    assert closed is not None and closed["state"] == "normal"
    assert await store.list_alarms() == []
    second, changed = await store.raise_alarm(new(5))
    assert changed and second["id"] != first["id"]
    detail = await store.get_alarm(first["id"])
    assert detail is not None
    assert [(h["action"], h["actor"], h["source"]) for h in detail["history"]] == [
        ("raised", "rules", ""),
        ("acknowledged", "duty", "10.0.0.5"),
        ("returned to normal", "rules", ""),
    ]
    assert await store.acknowledge(9999, "duty", "", 6) is None
    await store.close()


async def test_alarms_survive_a_restart(ops_url: str) -> None:
    url = ops_url
    store = OpsStore(url)
    await store.start()
    raised, _ = await store.raise_alarm(new(1, device="pump-1"))
    await store.close()

    reopened = OpsStore(url)
    await reopened.start()
    assert [a["id"] for a in await reopened.list_alarms()] == [raised["id"]]
    assert await reopened.active_conditions() == [("r1", "pump-1")]
    await reopened.close()
