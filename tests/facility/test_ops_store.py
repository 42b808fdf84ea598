"""The ops store keeps one open alarm per rule and device through the ISA-18.2 lifecycle (ack,
shelve, suppression, out of service, chattering, escalation), and keeps it across restarts; on
SQLite and on PostgreSQL."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from facility.errors import NotFound
from facility.records import AlarmRecord, NewAlarm
from facility.store.alarms import ActionRefused
from facility.store.ops import OpsStore
from facility.store.users import Role, UserStore, digest

S = 1_000_000_000
MIN = 60 * S
HOUR = 60 * MIN


def new(ts: int, rule: str = "r1", device: str = "d1", *, priority: str = "high", suppressed: bool = False) -> NewAlarm:
    return NewAlarm(rule, device, priority, "标题", "title", "说明", "message", ts, suppressed)


def actions(alarm: AlarmRecord) -> list[tuple[str, str, str]]:
    return [(h.action, h.actor, h.source) for h in alarm.history]


async def test_recurrence_updates_the_open_alarm_never_duplicates(ops_url: str) -> None:
    store = OpsStore(ops_url, site="t")
    await store.start()
    first, action = await store.alarms.raise_alarm(new(1))
    assert action == "raised" and first.state == "unacknowledged"
    again, action = await store.alarms.raise_alarm(new(2))
    assert action is None and again.id == first.id  # still active: nothing to do
    returned = await store.alarms.return_to_normal("r1", "d1", 3)
    assert returned is not None and returned.state == "rtn_unacknowledged"
    recurred, action = await store.alarms.raise_alarm(new(4))
    assert action == "raised again" and recurred.id == first.id and recurred.state == "unacknowledged"
    assert len(await store.alarms.list_alarms(include_closed=True)) == 1
    await store.close()


async def test_acknowledged_then_cleared_alarm_closes_and_a_new_one_follows(ops_url: str) -> None:
    store = OpsStore(ops_url, site="t")
    await store.start()
    first, _ = await store.alarms.raise_alarm(new(1))
    acked = await store.alarms.acknowledge(first.id, "duty", "10.0.0.5", 2)
    assert acked is not None and acked.state == "acknowledged" and acked.acked_by == "duty"
    again = await store.alarms.acknowledge(first.id, "other", "10.0.0.6", 3)
    assert again is not None and again.acked_by == "duty"  # a second ack changes nothing
    closed = await store.alarms.return_to_normal("r1", "d1", 4)
    assert closed is not None and closed.state == "normal"
    assert await store.alarms.list_alarms() == []
    second, action = await store.alarms.raise_alarm(new(5))
    assert action == "raised" and second.id != first.id
    detail = await store.alarms.get_alarm(first.id)
    assert detail is not None
    assert [(h.action, h.actor, h.source) for h in detail.history] == [
        ("raised", "rules", ""),
        ("acknowledged", "duty", "10.0.0.5"),
        ("returned to normal", "rules", ""),
    ]
    with pytest.raises(NotFound, match="no alarm 9999"):
        await store.alarms.acknowledge(9999, "duty", "", 6)
    await store.close()


async def test_alarms_survive_a_restart(ops_url: str) -> None:
    url = ops_url
    store = OpsStore(url, site="t")
    await store.start()
    raised, _ = await store.alarms.raise_alarm(new(1, device="pump-1"))
    await store.alarms.shelve(raised.id, "duty", "10.0.0.5", "pump under repair", 2 * HOUR, 1 * HOUR)
    await store.alarms.set_out_of_service("pump-1", True, "eng", "10.0.0.9", "seal replacement", 1 * HOUR)
    await store.close()

    reopened = OpsStore(url, site="t")
    await reopened.start()
    (alarm,) = await reopened.alarms.list_alarms()
    assert alarm.id == raised.id and alarm.state == "out_of_service"
    assert (alarm.shelved, alarm.shelved_until, alarm.out_of_service) == (True, 2 * HOUR, True)
    assert await reopened.alarms.active_conditions() == [("r1", "pump-1")]
    assert list(await reopened.alarms.out_of_service()) == ["pump-1"]
    await reopened.close()


async def test_shelved_alarm_stays_shelved_through_recurrence_until_unshelved(ops_url: str) -> None:
    store = OpsStore(ops_url, site="t")
    await store.start()
    raised, _ = await store.alarms.raise_alarm(new(1 * HOUR))
    await store.alarms.acknowledge(raised.id, "duty", "10.0.0.5", 1 * HOUR + 1)
    shelved = await store.alarms.shelve(raised.id, "duty", "10.0.0.5", " pump under repair ", 3 * HOUR, 1 * HOUR + 2)
    assert shelved is not None and shelved.state == "shelved"
    assert (shelved.shelved_until, shelved.shelved_by, shelved.shelve_reason) == (
        3 * HOUR,
        "duty",
        "pump under repair",
    )
    cleared = await store.alarms.return_to_normal("r1", "d1", 1 * HOUR + 3)
    assert cleared is not None and cleared.state == "shelved"  # acknowledged and cleared, but the shelf holds
    assert [a.id for a in await store.alarms.list_alarms()] == [raised.id]
    recurred, action = await store.alarms.raise_alarm(new(1 * HOUR + 4))
    assert action == "raised again" and recurred.id == raised.id and recurred.shelved

    back = await store.alarms.unshelve(raised.id, "lead", "10.0.0.7", 1 * HOUR + 5)
    assert back is not None and back.state == "unacknowledged"
    assert (back.shelved, back.shelved_until, back.shelved_by, back.shelve_reason) == (
        False,
        None,
        None,
        None,
    )
    detail = await store.alarms.get_alarm(raised.id)
    assert actions(detail)[2:] == [
        ("shelved", "duty", "10.0.0.5"),
        ("returned to normal", "rules", ""),
        ("raised again", "rules", ""),
        ("unshelved", "lead", "10.0.0.7"),
    ]
    assert detail is not None and "pump under repair" in detail.history[2].detail
    await store.close()


async def test_a_shelved_alarm_that_cleared_and_was_acknowledged_closes_when_its_shelf_expires(ops_url: str) -> None:
    store = OpsStore(ops_url, site="t")
    await store.start()
    raised, _ = await store.alarms.raise_alarm(new(1 * HOUR))
    await store.alarms.shelve(raised.id, "duty", "", "known fault", 2 * HOUR, 1 * HOUR)
    await store.alarms.return_to_normal("r1", "d1", 1 * HOUR + 1)
    await store.alarms.acknowledge(raised.id, "duty", "", 1 * HOUR + 2)
    assert await store.alarms.unshelve_expired(2 * HOUR - 1) == []
    (expired,) = await store.alarms.unshelve_expired(2 * HOUR)
    assert expired.id == raised.id and expired.state == "normal" and not expired.shelved
    assert await store.alarms.list_alarms() == []
    assert actions(await store.alarms.get_alarm(raised.id))[-1] == ("unshelved", "system", "")
    await store.close()


async def test_bad_actions_are_refused_and_leave_no_trace(ops_url: str) -> None:
    store = OpsStore(ops_url, site="t")
    await store.start()
    raised, _ = await store.alarms.raise_alarm(new(1 * HOUR))
    alarm_id = raised.id
    now = 1 * HOUR + 1
    with pytest.raises(ActionRefused, match="reason"):
        await store.alarms.shelve(alarm_id, "duty", "", "  ", now + HOUR, now)
    with pytest.raises(ActionRefused, match="not in the future"):
        await store.alarms.shelve(alarm_id, "duty", "", "repair", now, now)
    with pytest.raises(ActionRefused, match="24 h at most"):
        await store.alarms.shelve(alarm_id, "duty", "", "repair", now + 24 * HOUR + 1, now)
    with pytest.raises(ActionRefused, match="not shelved"):
        await store.alarms.unshelve(alarm_id, "duty", "", now)
    with pytest.raises(ActionRefused, match="text"):
        await store.alarms.comment(alarm_id, "duty", "", " ", now)
    with pytest.raises(ActionRefused, match="2000 characters"):
        await store.alarms.comment(alarm_id, "duty", "", "x" * 2001, now)
    with pytest.raises(NotFound, match="no alarm 9999"):
        await store.alarms.shelve(9999, "duty", "", "repair", now + HOUR, now)
    with pytest.raises(NotFound, match="no alarm 9999"):
        await store.alarms.unshelve(9999, "duty", "", now)
    with pytest.raises(NotFound, match="no alarm 9999"):
        await store.alarms.comment(9999, "duty", "", "hello", now)
    assert actions(await store.alarms.get_alarm(alarm_id)) == [("raised", "rules", "")]

    await store.alarms.acknowledge(alarm_id, "duty", "", now)
    await store.alarms.return_to_normal("r1", "d1", now + 1)
    with pytest.raises(ActionRefused, match="closed"):
        await store.alarms.shelve(alarm_id, "duty", "", "repair", now + HOUR, now + 2)
    await store.close()


async def test_comments_are_kept_with_who_when_and_where_even_on_closed_alarms(ops_url: str) -> None:
    store = OpsStore(ops_url, site="t")
    await store.start()
    raised, _ = await store.alarms.raise_alarm(new(1))
    await store.alarms.acknowledge(raised.id, "duty", "10.0.0.5", 2)
    await store.alarms.return_to_normal("r1", "d1", 3)
    commented = await store.alarms.comment(raised.id, "duty", "10.0.0.5", " 已通知维保 vendor called ", 4)
    assert commented is not None and commented.state == "normal"
    detail = await store.alarms.get_alarm(raised.id)
    assert detail is not None
    assert detail.history[-1].as_json() == {
        "ts": 4,
        "action": "comment",
        "actor": "duty",
        "source": "10.0.0.5",
        "detail": "已通知维保 vendor called",
    }
    await store.close()


async def test_suppressed_by_design_alarm_is_kept_and_flagged_until_suppression_ends(ops_url: str) -> None:
    store = OpsStore(ops_url, site="t")
    await store.start()
    raised, action = await store.alarms.raise_alarm(new(1, suppressed=True))
    assert action == "raised" and raised.state == "suppressed" and raised.suppressed
    assert (await store.alarms.raise_alarm(new(2, suppressed=True)))[1] is None
    ended, action = await store.alarms.raise_alarm(new(3))
    assert action == "suppression ended" and ended.id == raised.id
    assert ended.state == "unacknowledged" and not ended.suppressed and ended.activated_at == 1
    again, action = await store.alarms.raise_alarm(new(4, suppressed=True))
    assert action == "suppressed" and again.state == "suppressed"
    assert [a for a, _, _ in actions(await store.alarms.get_alarm(raised.id))] == [
        "raised",
        "suppression ended",
        "suppressed",
    ]
    await store.close()


async def test_alarms_of_a_device_out_of_service_are_recorded_with_the_flag(ops_url: str) -> None:
    store = OpsStore(ops_url, site="t")
    await store.start()
    before, _ = await store.alarms.raise_alarm(new(1, "r1", "pump-1"))
    other, _ = await store.alarms.raise_alarm(new(1, "r1", "pump-2"))
    with pytest.raises(ActionRefused, match="reason"):
        await store.alarms.set_out_of_service("pump-1", True, "eng", "10.0.0.9", "", 2)
    (flagged,) = await store.alarms.set_out_of_service("pump-1", True, "eng", "10.0.0.9", "seal replacement", 2)
    assert flagged.id == before.id and flagged.state == "out_of_service"
    during, _ = await store.alarms.raise_alarm(new(3, "r2", "pump-1"))
    assert during.out_of_service and during.state == "out_of_service"
    assert not (await store.alarms.get_alarm(other.id)).out_of_service
    with pytest.raises(ActionRefused, match="out of service already"):
        await store.alarms.set_out_of_service("pump-1", True, "eng", "", "again", 4)
    assert await store.alarms.out_of_service() == {
        "pump-1": {"since": 2, "by": "eng", "source": "10.0.0.9", "reason": "seal replacement"}
    }

    back = await store.alarms.set_out_of_service("pump-1", False, "eng", "10.0.0.9", "", 5)
    assert sorted(a.id for a in back) == sorted([before.id, during.id])
    assert all(not a.out_of_service and a.state == "unacknowledged" for a in back)
    with pytest.raises(ActionRefused, match="not out of service"):
        await store.alarms.set_out_of_service("pump-1", False, "eng", "", "", 6)
    assert await store.alarms.out_of_service() == {}
    assert actions(await store.alarms.get_alarm(before.id))[1:] == [
        ("out of service", "eng", "10.0.0.9"),
        ("back in service", "eng", "10.0.0.9"),
    ]
    audit = await store.audit.entries()
    assert [(e.action, e.target, e.actor, e.source, e.detail) for e in reversed(audit)] == [
        ("out of service", "pump-1", "eng", "10.0.0.9", {"reason": "seal replacement"}),
        ("back in service", "pump-1", "eng", "10.0.0.9", {"reason": ""}),
    ]
    await store.close()


async def test_more_than_five_activations_in_ten_minutes_is_chattering_until_quiet_for_ten(ops_url: str) -> None:
    store = OpsStore(ops_url, site="t")
    await store.start()
    spread = [k * 3 * MIN for k in range(6)]  # six activations over 15 min: never six within 10
    for ts in spread:
        alarm, _ = await store.alarms.raise_alarm(new(ts))
        await store.alarms.return_to_normal("r1", "d1", ts + S)
    assert not alarm.chattering

    start = 1 * HOUR
    for k in range(6):  # within 10 min; the third occurrence is acknowledged, so a new alarm row follows
        alarm, _ = await store.alarms.raise_alarm(new(start + k * MIN))
        assert alarm.chattering == (k == 5)
        cleared = await store.alarms.return_to_normal("r1", "d1", start + k * MIN + S)
        if k == 2:
            await store.alarms.acknowledge(alarm.id, "duty", "", start + k * MIN + 2 * S)
    last = start + 5 * MIN
    detail = await store.alarms.get_alarm(alarm.id)
    assert detail is not None and ("chattering", "rules", "") in actions(detail)
    assert "6 activations within 10 min" in detail.history[-2].detail

    assert await store.alarms.clear_quiet_chattering(last + 10 * MIN - 1) == []
    (quiet,) = await store.alarms.clear_quiet_chattering(last + 10 * MIN)
    assert quiet.id == alarm.id and not quiet.chattering and cleared is not None
    assert actions(await store.alarms.get_alarm(alarm.id))[-1] == ("chattering ended", "rules", "")
    await store.close()


async def test_unacknowledged_alarms_escalate_once_after_their_priority_limit(ops_url: str) -> None:
    store = OpsStore(ops_url, site="t")
    await store.start()
    limits = {"emergency": 2 * MIN, "high": 10 * MIN}
    t = 1 * HOUR
    fire, _ = await store.alarms.raise_alarm(new(t, "fire", "panel-1", priority="emergency"))
    pump, _ = await store.alarms.raise_alarm(new(t, "pressure", "pump-1", priority="high"))
    acked, _ = await store.alarms.raise_alarm(new(t, "fire", "panel-2", priority="emergency"))
    shelved, _ = await store.alarms.raise_alarm(new(t, "fire", "panel-3", priority="emergency"))
    await store.alarms.raise_alarm(new(t, "lamp", "light-1", priority="low"))
    await store.alarms.acknowledge(acked.id, "duty", "", t + S)
    await store.alarms.shelve(shelved.id, "duty", "", "panel test", t + HOUR, t + S)

    assert await store.alarms.escalate_due(limits, t + 2 * MIN - 1) == []
    (escalated,) = await store.alarms.escalate_due(limits, t + 2 * MIN)
    assert escalated.id == fire.id and escalated.escalated and escalated.state == "unacknowledged"
    assert await store.alarms.escalate_due(limits, t + 5 * MIN) == []  # once
    assert [a.id for a in await store.alarms.escalate_due(limits, t + 10 * MIN)] == [pump.id]
    assert await store.alarms.escalate_due(limits, t + 24 * HOUR) == []  # low has no limit; ack and shelf hold
    assert actions(await store.alarms.get_alarm(fire.id))[-1] == ("escalated", "system", "")

    await store.alarms.return_to_normal("fire", "panel-1", t + 11 * MIN)
    again, _ = await store.alarms.raise_alarm(new(t + 12 * MIN, "fire", "panel-1", priority="emergency"))
    assert not again.escalated  # a new activation may escalate again
    assert [a.id for a in await store.alarms.escalate_due(limits, t + 14 * MIN)] == [fire.id]
    await store.close()


async def test_a_database_from_before_the_lifecycle_columns_is_refused_by_name(ops_url: str) -> None:
    old = create_async_engine(ops_url)
    async with old.begin() as conn:
        await conn.execute(text("CREATE TABLE alarms (id INTEGER PRIMARY KEY, rule_id VARCHAR(200))"))
    await old.dispose()
    store = OpsStore(ops_url, site="t")
    with pytest.raises(RuntimeError, match=r"alarms\.device_id, .*alarms\.shelved, .*alarms\.escalated"):
        await store.start()
    await store.close()


async def test_a_token_looked_up_at_debug_leaves_no_trace_of_it_in_the_log(
    ops_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """`facility run -v` logs at DEBUG: the drivers' and SQLAlchemy's logs must not carry the
    parameters of queries, among them the digest of every token presented (a digest looks a user
    up as well as the token does)."""
    caplog.set_level(logging.DEBUG)
    store = OpsStore(ops_url, site="t")
    await store.start()
    try:
        users = UserStore(store)
        token = await users.add("ana", Role.DUTY)
        assert await users.find(token) is not None
        caplog.set_level(logging.INFO, logger="sqlalchemy.engine")  # SQL echo, as one debugging a query turns it on
        assert await users.find(token) is not None
    finally:
        await store.close()
    assert "ops store" in caplog.text and "SELECT users" in caplog.text  # the log was captured, SQL too
    assert digest(token) not in caplog.text and token not in caplog.text
