"""The alarms of the ops store: raising, spreading and returning to normal (the rules), and what
duty staff do to them (acknowledge, shelve, comment, take a device out of service), with the flags
the store judges itself (chattering, escalation).

An alarm row is open from the moment it is raised until it is returned to normal, acknowledged and
not shelved (a shelf outlives recurrences, as ISA-18.2 shelves the alarm, not one occurrence). At
most one open alarm exists per rule and device (a partial unique index makes the database enforce
it); a recurrence re-activates the open one instead of adding a second. Besides its ISA state an
alarm carries flags: shelved (by a user, with reason and expiry), suppressed by design, out of
service (its device is under maintenance), chattering and escalated. Every change is a history
entry (facility.vocabulary.AlarmAction), written in the transaction that makes it.

Refused operator actions raise `ActionRefused` saying why; an unknown alarm id raises `NotFound`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from facility.errors import Conflict, NotFound
from facility.records import AlarmRecord, NewAlarm, spread_detail
from facility.store.audit import audit_json
from facility.store.site_scope import by_key
from facility.store.tables import AlarmHistoryRow, AlarmRow, AuditRow, OutOfServiceRow
from facility.vocabulary import ACTIVATIONS, AlarmAction, Text

if TYPE_CHECKING:
    from facility.store.alarm_pages import AlarmPages

MINUTE_NS = 60 * 1_000_000_000
CHATTER_LIMIT = 5  # activations within the window beyond which an alarm is chattering
CHATTER_WINDOW_NS = 10 * MINUTE_NS  # also how long it must stay quiet to stop chattering
MAX_SHELVE_NS = 24 * 60 * MINUTE_NS  # a shelf longer than a day hides a fault: fix or take out of service
MAX_COMMENT = 2000  # characters


class ActionRefused(Conflict):
    """An action the input or the alarm's state does not allow; the message says why (409 at the API)."""


def alarm_record(row: AlarmRow, *, with_history: bool = False) -> AlarmRecord:
    """The alarm as the rules, the desk and the notifiers see it (its history only when asked: a list
    of alarms does not need it), so that no caller holds a row bound to a session."""
    return AlarmRecord(
        id=row.id,
        rule=row.rule_id,
        device=row.device_id,
        priority=row.priority,
        state=row.state.value,
        active=row.active,
        acknowledged=row.acknowledged,
        title=Text(row.title_zh, row.title_en),
        message=Text(row.message_zh, row.message_en),
        raised_at=row.raised_at,
        changed_at=row.changed_at,
        acked_at=row.acked_at,
        acked_by=row.acked_by,
        cleared_at=row.cleared_at,
        activated_at=row.activated_at,
        shelved=row.shelved,
        shelved_until=row.shelved_until,
        shelved_by=row.shelved_by,
        shelve_reason=row.shelve_reason,
        suppressed=row.suppressed,
        out_of_service=row.out_of_service,
        chattering=row.chattering,
        escalated=row.escalated,
        history=tuple(h.entry() for h in row.history) if with_history else (),
    )


class AlarmStore:
    """The alarms of one ops store (`OpsStore.alarms`); `pages` answers their lists."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], pages: AlarmPages, chatter_limit: int) -> None:
        self._sessions = sessions
        self._pages = pages
        self._chatter_limit = chatter_limit

    async def raise_alarm(self, new: NewAlarm) -> tuple[AlarmRecord, str | None]:
        """Raise or re-activate the open alarm of (rule, device), or, while it is active, start or
        end its suppression; returns it and the history action recorded (None: nothing changed)."""
        async with self._sessions.begin() as s:
            row = await self._open(s, new.rule_id, new.device_id)
            if row is not None and row.active:
                if row.suppressed == new.suppressed:
                    return alarm_record(row), None
                row.suppressed, row.changed_at = new.suppressed, new.ts
                action = AlarmAction.SUPPRESSED if new.suppressed else AlarmAction.SUPPRESSION_ENDED
                s.add(AlarmHistoryRow(alarm_id=row.id, ts=new.ts, action=action, actor="rules"))
                return alarm_record(row), action
            if row is None:
                row = AlarmRow(
                    rule_id=new.rule_id,
                    device_id=new.device_id,
                    raised_at=new.ts,
                    acknowledged=False,
                    is_open=True,
                    out_of_service=await by_key(s, OutOfServiceRow, device_id=new.device_id) is not None,
                )
                s.add(row)
                action = AlarmAction.RAISED
            else:
                action = AlarmAction.RAISED_AGAIN
            row.priority, row.title_zh, row.title_en = new.priority, new.title_zh, new.title_en
            row.message_zh, row.message_en = new.message_zh, new.message_en
            row.active, row.acknowledged, row.suppressed, row.escalated = True, False, new.suppressed, False
            row.changed_at, row.activated_at, row.cleared_at, row.acked_at, row.acked_by = (
                new.ts,
                new.ts,
                None,
                None,
                None,
            )
            await s.flush()
            s.add(AlarmHistoryRow(alarm_id=row.id, ts=new.ts, action=action, actor="rules", detail=new.message_en))
            await self._note_chattering(s, row, new.ts)
            return alarm_record(row), action

    async def spread_alarm(self, new: NewAlarm) -> tuple[AlarmRecord | None, str | None]:
        """Give the active alarm of (rule, device) the title and message of `new` (its condition's
        text grew while active) and record a `spread` entry with the new message and the one it
        replaced, in both languages;
        returns it and `spread`, or it and None when it shows that text already (a spread applied
        again), or None and None when no alarm of (rule, device) is active."""
        async with self._sessions.begin() as s:
            row = await self._open(s, new.rule_id, new.device_id)
            if row is None or not row.active:
                return None, None
            texts = (new.title_zh, new.title_en, new.message_zh, new.message_en)
            if (row.title_zh, row.title_en, row.message_zh, row.message_en) == texts:
                return alarm_record(row), None
            was = (row.message_zh or row.title_zh, row.message_en or row.title_en)
            row.title_zh, row.title_en, row.message_zh, row.message_en = texts
            row.changed_at = new.ts
            detail = spread_detail((new.message_zh or new.title_zh, new.message_en or new.title_en), was)
            s.add(AlarmHistoryRow(alarm_id=row.id, ts=new.ts, action=AlarmAction.SPREAD, actor="rules", detail=detail))
            return alarm_record(row), AlarmAction.SPREAD

    async def _note_chattering(self, s: AsyncSession, row: AlarmRow, ts: int) -> None:
        """Flag the alarm once (rule, device) has gone active more than the limit within the window,
        counting the occurrences that have closed since."""
        if row.chattering:
            return
        query = (
            select(func.count())
            .select_from(AlarmHistoryRow)
            .join(AlarmRow)
            .where(
                AlarmRow.rule_id == row.rule_id,
                AlarmRow.device_id == row.device_id,
                AlarmHistoryRow.action.in_(ACTIVATIONS),
                AlarmHistoryRow.ts > ts - CHATTER_WINDOW_NS,
            )
        )
        count = (await s.execute(query)).scalar_one()
        if count > self._chatter_limit:
            row.chattering = True
            detail = f"{count} activations within {CHATTER_WINDOW_NS // MINUTE_NS} min"
            s.add(AlarmHistoryRow(alarm_id=row.id, ts=ts, action=AlarmAction.CHATTERING, actor="rules", detail=detail))

    async def return_to_normal(self, rule_id: str, device_id: str, ts: int) -> AlarmRecord | None:
        """Mark the active alarm of (rule, device) as returned to normal; None if there is none."""
        async with self._sessions.begin() as s:
            row = await self._open(s, rule_id, device_id)
            if row is None or not row.active:
                return None
            row.active, row.cleared_at, row.changed_at = False, ts, ts
            row.settle()
            s.add(AlarmHistoryRow(alarm_id=row.id, ts=ts, action=AlarmAction.RETURNED_TO_NORMAL, actor="rules"))
            return alarm_record(row)

    async def acknowledge(self, alarm_id: int, user: str, source: str, ts: int) -> AlarmRecord:
        """Acknowledge an alarm; NotFound if no such alarm. Acknowledging twice changes nothing."""
        async with self._sessions.begin() as s:
            row = await s.get(AlarmRow, alarm_id, with_for_update=True)
            if row is None:
                raise NotFound(f"no alarm {alarm_id}")
            if not row.acknowledged:
                row.acknowledged, row.acked_at, row.acked_by, row.changed_at = True, ts, user, ts
                row.settle()
                s.add(
                    AlarmHistoryRow(alarm_id=row.id, ts=ts, action=AlarmAction.ACKNOWLEDGED, actor=user, source=source)
                )
            return alarm_record(row)

    async def shelve(self, alarm_id: int, user: str, source: str, reason: str, until_ns: int, ts: int) -> AlarmRecord:
        """Hide an open alarm from duty staff until `until_ns` (at most a day ahead), with a reason;
        shelving a shelved alarm sets a new expiry. NotFound if no such alarm; ActionRefused for an
        empty reason, an expiry not ahead or too far ahead, or a closed alarm."""
        reason = reason.strip()
        if not reason:
            raise ActionRefused("a reason is needed to shelve an alarm")
        if until_ns <= ts:
            raise ActionRefused(f"the shelf expiry {_utc(until_ns)} is not in the future")
        if until_ns - ts > MAX_SHELVE_NS:
            raise ActionRefused(f"an alarm can be shelved for {MAX_SHELVE_NS // (60 * MINUTE_NS)} h at most")
        async with self._sessions.begin() as s:
            row = await s.get(AlarmRow, alarm_id, with_for_update=True)
            if row is None:
                raise NotFound(f"no alarm {alarm_id}")
            if not row.is_open:
                raise ActionRefused(f"alarm {alarm_id} is closed; only an open alarm can be shelved")
            row.shelved, row.shelved_until, row.shelved_by, row.shelve_reason = True, until_ns, user, reason
            row.changed_at = ts
            row.settle()
            detail = f"until {_utc(until_ns)}: {reason}"
            s.add(
                AlarmHistoryRow(
                    alarm_id=row.id, ts=ts, action=AlarmAction.SHELVED, actor=user, source=source, detail=detail
                )
            )
            return alarm_record(row)

    async def unshelve(self, alarm_id: int, user: str, source: str, ts: int) -> AlarmRecord:
        """Put a shelved alarm back before its expiry. NotFound if no such alarm; ActionRefused if it is
        not shelved."""
        async with self._sessions.begin() as s:
            row = await s.get(AlarmRow, alarm_id, with_for_update=True)
            if row is None:
                raise NotFound(f"no alarm {alarm_id}")
            if not row.shelved:
                raise ActionRefused(f"alarm {alarm_id} is not shelved")
            _unshelve(s, row, user, source, "", ts)
            return alarm_record(row)

    async def unshelve_expired(self, ts: int) -> list[AlarmRecord]:
        """Put back every alarm whose shelf has expired by `ts`."""
        async with self._sessions.begin() as s:
            query = select(AlarmRow).where(AlarmRow.shelved, AlarmRow.shelved_until <= ts).with_for_update()
            rows = (await s.scalars(query)).all()
            for row in rows:
                _unshelve(s, row, "system", "", "shelf expired", ts)
            return [alarm_record(row) for row in rows]

    async def comment(self, alarm_id: int, user: str, source: str, text: str, ts: int) -> AlarmRecord:
        """Add a note to an alarm's history, open or closed. NotFound if no such alarm; ActionRefused for
        an empty or overlong text."""
        text = text.strip()
        if not text:
            raise ActionRefused("a comment needs some text")
        if len(text) > MAX_COMMENT:
            raise ActionRefused(f"a comment is at most {MAX_COMMENT} characters, this one has {len(text)}")
        async with self._sessions.begin() as s:
            row = await s.get(AlarmRow, alarm_id)
            if row is None:
                raise NotFound(f"no alarm {alarm_id}")
            s.add(
                AlarmHistoryRow(
                    alarm_id=row.id, ts=ts, action=AlarmAction.COMMENT, actor=user, source=source, detail=text
                )
            )
            return alarm_record(row)

    async def set_out_of_service(
        self, device: str, on: bool, user: str, source: str, reason: str, ts: int
    ) -> list[AlarmRecord]:
        """Take a device out of service (a reason is needed) or put it back; its open alarms take the
        flag, and the audit log records who, when and from where. Returns the alarms changed.
        ActionRefused if the device is already in the state asked for, or the reason is missing."""
        reason = reason.strip()
        if on and not reason:
            raise ActionRefused("a reason is needed to take a device out of service")
        async with self._sessions.begin() as s:
            current = await by_key(s, OutOfServiceRow, lock=True, device_id=device)
            if on and current is not None:
                raise ActionRefused(
                    f"{device} is out of service already, since {_utc(current.since)} by {current.set_by}"
                )
            if not on and current is None:
                raise ActionRefused(f"{device} is not out of service")
            if on:
                s.add(OutOfServiceRow(device_id=device, since=ts, set_by=user, source=source, reason=reason))
            else:
                await s.delete(current)
            action = AlarmAction.OUT_OF_SERVICE if on else AlarmAction.BACK_IN_SERVICE
            s.add(
                AuditRow(
                    ts=ts,
                    actor=user,
                    source=source,
                    action=action,
                    target=device,
                    detail=audit_json({"reason": reason}),
                    outcome="ok",
                    device=device,
                )
            )
            query = select(AlarmRow).where(AlarmRow.device_id == device, AlarmRow.is_open).with_for_update()
            rows = (await s.scalars(query)).all()
            for row in rows:
                row.out_of_service, row.changed_at = on, ts
                s.add(AlarmHistoryRow(alarm_id=row.id, ts=ts, action=action, actor=user, source=source, detail=reason))
            return [alarm_record(row) for row in rows]

    async def out_of_service(self) -> dict[str, dict[str, Any]]:
        """The devices under maintenance: since when, set by whom, from where and why."""
        async with self._sessions() as s:
            rows = await s.scalars(select(OutOfServiceRow).order_by(OutOfServiceRow.device_id))
            return {
                r.device_id: {"since": r.since, "by": r.set_by, "source": r.source, "reason": r.reason} for r in rows
            }

    async def clear_quiet_chattering(self, ts: int) -> list[AlarmRecord]:
        """Stop calling alarms chattering once they have not gone active for the chatter window."""
        async with self._sessions.begin() as s:
            query = select(AlarmRow).where(AlarmRow.chattering, AlarmRow.activated_at <= ts - CHATTER_WINDOW_NS)
            rows = (await s.scalars(query.with_for_update())).all()
            for row in rows:
                row.chattering = False
                s.add(AlarmHistoryRow(alarm_id=row.id, ts=ts, action=AlarmAction.CHATTERING_ENDED, actor="rules"))
            return [alarm_record(row) for row in rows]

    async def escalate_due(self, limits: Mapping[str, int], ts: int) -> list[AlarmRecord]:
        """Escalate, once per activation, each open alarm of a priority in `limits` (ns) left
        unacknowledged that long since it went active; shelved, suppressed and out-of-service alarms
        are not in front of duty staff and do not escalate."""
        if not limits:
            return []
        due = or_(*(and_(AlarmRow.priority == p, AlarmRow.activated_at <= ts - limit) for p, limit in limits.items()))
        query = select(AlarmRow).where(
            AlarmRow.is_open,
            AlarmRow.acknowledged == false(),
            AlarmRow.escalated == false(),
            AlarmRow.shelved == false(),
            AlarmRow.suppressed == false(),
            AlarmRow.out_of_service == false(),
            due,
        )
        async with self._sessions.begin() as s:
            rows = (await s.scalars(query.with_for_update())).all()
            for row in rows:
                row.escalated, row.changed_at = True, ts
                detail = f"not acknowledged within {limits[row.priority] // 1_000_000_000} s"
                s.add(
                    AlarmHistoryRow(alarm_id=row.id, ts=ts, action=AlarmAction.ESCALATED, actor="system", detail=detail)
                )
            return [alarm_record(row) for row in rows]

    async def list_alarms(self, *, include_closed: bool = False, limit: int = 500) -> list[AlarmRecord]:
        """The open alarms, or with `include_closed` the `limit` most recently changed of any state."""
        page, _ = await self._pages.page(open_only=not include_closed, sort="-changed_at", limit=limit)
        return page

    async def get_alarm(self, alarm_id: int) -> AlarmRecord:
        """The alarm with its history; NotFound if there is none of that id."""
        async with self._sessions() as s:
            query = select(AlarmRow).where(AlarmRow.id == alarm_id).options(selectinload(AlarmRow.history))
            row = (await s.scalars(query)).first()
            if row is None:
                raise NotFound(f"no alarm {alarm_id}")
            return alarm_record(row, with_history=True)

    async def active_conditions(self) -> list[tuple[str, str]]:
        """(rule, device) of every alarm still active, so the engine can resume where it stopped."""
        async with self._sessions() as s:
            rows = await s.execute(select(AlarmRow.rule_id, AlarmRow.device_id).where(AlarmRow.active))
            return [(r, d) for r, d in rows.all()]

    @staticmethod
    async def _open(s: AsyncSession, rule_id: str, device_id: str) -> AlarmRow | None:
        query = select(AlarmRow).where(AlarmRow.rule_id == rule_id, AlarmRow.device_id == device_id, AlarmRow.is_open)
        return (await s.scalars(query)).first()


def _unshelve(s: AsyncSession, row: AlarmRow, user: str, source: str, detail: str, ts: int) -> None:
    row.shelved, row.shelved_until, row.shelved_by, row.shelve_reason = False, None, None, None
    row.changed_at = ts
    row.settle()
    s.add(
        AlarmHistoryRow(alarm_id=row.id, ts=ts, action=AlarmAction.UNSHELVED, actor=user, source=source, detail=detail)
    )


def _utc(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
