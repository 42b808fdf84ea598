"""The ops store: alarms and their history, dead letters and the audit log, on SQLAlchemy (SQLite
by default, PostgreSQL by URL).

An alarm row is open from the moment it is raised until it is both returned to normal and
acknowledged. At most one open alarm exists per rule and device (a partial unique index makes the
database enforce it); a recurrence re-activates the open one instead of adding a second.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, selectinload

from facility.model import AlarmState


class Base(DeclarativeBase):
    pass


class AlarmRow(Base):
    __tablename__ = "alarms"

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(200))
    device_id: Mapped[str] = mapped_column(String(200))
    priority: Mapped[str] = mapped_column(String(20))
    title_zh: Mapped[str] = mapped_column(Text, default="")
    title_en: Mapped[str] = mapped_column(Text, default="")
    message_zh: Mapped[str] = mapped_column(Text, default="")
    message_en: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool]
    acknowledged: Mapped[bool]
    is_open: Mapped[bool]
    raised_at: Mapped[int] = mapped_column(BigInteger)  # UTC ns
    changed_at: Mapped[int] = mapped_column(BigInteger)
    acked_at: Mapped[int | None] = mapped_column(BigInteger)
    acked_by: Mapped[str | None] = mapped_column(String(200))
    cleared_at: Mapped[int | None] = mapped_column(BigInteger)
    history: Mapped[list[AlarmHistoryRow]] = relationship(order_by="AlarmHistoryRow.id", cascade="all, delete-orphan")

    __table_args__ = (
        Index(
            "one_open_alarm_per_rule_and_device",
            "rule_id",
            "device_id",
            unique=True,
            sqlite_where=text("is_open"),
            postgresql_where=text("is_open"),
        ),
    )

    @property
    def state(self) -> AlarmState:
        return AlarmState.of(self.active, self.acknowledged)


class AlarmHistoryRow(Base):
    __tablename__ = "alarm_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    alarm_id: Mapped[int] = mapped_column(ForeignKey("alarms.id"), index=True)
    ts: Mapped[int] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(200), default="")
    detail: Mapped[str] = mapped_column(Text, default="")


class DeadLetterRow(Base):
    """Input the system could not use, kept so that nothing is lost silently."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(primary_key=True)
    ts: Mapped[int] = mapped_column(BigInteger, index=True)
    source: Mapped[str] = mapped_column(String(40))  # mqtt, modbus, telemetry
    key: Mapped[str] = mapped_column(String(400))  # topic, device/point, ...
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)


class AuditRow(Base):
    """One change someone asked for (a Modbus write, ...): who, when, from where, and how it ended."""

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(primary_key=True)
    ts: Mapped[int] = mapped_column(BigInteger, index=True)  # UTC ns of the request
    actor: Mapped[str] = mapped_column(String(200))  # user name
    source: Mapped[str] = mapped_column(String(200))  # client address
    action: Mapped[str] = mapped_column(String(40))  # write, ...
    target: Mapped[str] = mapped_column(String(400))  # device/point, ...
    detail: Mapped[str] = mapped_column(Text)  # JSON object: value asked for, confirmed value or error
    outcome: Mapped[str] = mapped_column(String(20))  # pending, ok, refused, failed


@dataclass(frozen=True)
class AuditEntry:
    id: int
    ts: int
    actor: str
    source: str
    action: str
    target: str
    detail: dict[str, Any]
    outcome: str


@dataclass(frozen=True)
class DeadLetter:
    ts: int
    source: str
    key: str
    reason: str
    payload: str


@dataclass(frozen=True)
class NewAlarm:
    """What the rules know when a condition becomes active."""

    rule_id: str
    device_id: str
    priority: str
    title_zh: str
    title_en: str
    message_zh: str
    message_en: str
    ts: int


def alarm_dict(row: AlarmRow, *, with_history: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row.id,
        "rule": row.rule_id,
        "device": row.device_id,
        "priority": row.priority,
        "state": row.state.value,
        "active": row.active,
        "acknowledged": row.acknowledged,
        "title": {"zh": row.title_zh, "en": row.title_en},
        "message": {"zh": row.message_zh, "en": row.message_en},
        "raised_at": row.raised_at,
        "changed_at": row.changed_at,
        "acked_at": row.acked_at,
        "acked_by": row.acked_by,
        "cleared_at": row.cleared_at,
    }
    if with_history:
        out["history"] = [
            {"ts": h.ts, "action": h.action, "actor": h.actor, "source": h.source, "detail": h.detail}
            for h in row.history
        ]
    return out


class OpsStore:
    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        self._engine = create_async_engine(url)
        self._sessions = async_sessionmaker(self._engine, expire_on_commit=False)

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        """For the stores of other records (tasks, plans) that keep their tables on `Base`."""
        return self._sessions

    async def start(self) -> None:
        async with self._engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)

    async def close(self) -> None:
        await self._engine.dispose()

    async def raise_alarm(self, new: NewAlarm) -> tuple[dict[str, Any], bool]:
        """Raise or re-activate the open alarm of (rule, device); returns it and whether it changed."""
        async with self._sessions.begin() as s:
            row = await self._open(s, new.rule_id, new.device_id)
            if row is not None and row.active:
                return alarm_dict(row), False
            if row is None:
                row = AlarmRow(
                    rule_id=new.rule_id,
                    device_id=new.device_id,
                    raised_at=new.ts,
                    acknowledged=False,
                    is_open=True,
                )
                s.add(row)
                action = "raised"
            else:
                action = "raised again"
            row.priority, row.title_zh, row.title_en = new.priority, new.title_zh, new.title_en
            row.message_zh, row.message_en = new.message_zh, new.message_en
            row.active, row.acknowledged = True, False
            row.changed_at, row.cleared_at, row.acked_at, row.acked_by = new.ts, None, None, None
            await s.flush()
            s.add(AlarmHistoryRow(alarm_id=row.id, ts=new.ts, action=action, actor="rules", detail=new.message_en))
            return alarm_dict(row), True

    async def return_to_normal(self, rule_id: str, device_id: str, ts: int) -> dict[str, Any] | None:
        """Mark the active alarm of (rule, device) as returned to normal; None if there is none."""
        async with self._sessions.begin() as s:
            row = await self._open(s, rule_id, device_id)
            if row is None or not row.active:
                return None
            row.active, row.cleared_at, row.changed_at = False, ts, ts
            row.is_open = not row.acknowledged
            s.add(AlarmHistoryRow(alarm_id=row.id, ts=ts, action="returned to normal", actor="rules"))
            return alarm_dict(row)

    async def acknowledge(self, alarm_id: int, user: str, source: str, ts: int) -> dict[str, Any] | None:
        """Acknowledge an alarm; None if no such alarm. Acknowledging twice changes nothing."""
        async with self._sessions.begin() as s:
            row = await s.get(AlarmRow, alarm_id)
            if row is None:
                return None
            if not row.acknowledged:
                row.acknowledged, row.acked_at, row.acked_by, row.changed_at = True, ts, user, ts
                row.is_open = row.active
                s.add(AlarmHistoryRow(alarm_id=row.id, ts=ts, action="acknowledged", actor=user, source=source))
            return alarm_dict(row)

    async def list_alarms(self, *, include_closed: bool = False, limit: int = 500) -> list[dict[str, Any]]:
        """Open alarms, all of them (an open alarm is never cut off); with `include_closed`, the
        `limit` most recently changed alarms of any state."""
        async with self._sessions() as s:
            query = select(AlarmRow).order_by(AlarmRow.changed_at.desc())
            query = query.limit(limit) if include_closed else query.where(AlarmRow.is_open)
            return [alarm_dict(row) for row in (await s.scalars(query)).all()]

    async def get_alarm(self, alarm_id: int) -> dict[str, Any] | None:
        async with self._sessions() as s:
            query = select(AlarmRow).where(AlarmRow.id == alarm_id).options(selectinload(AlarmRow.history))
            row = (await s.scalars(query)).first()
            return alarm_dict(row, with_history=True) if row else None

    async def add_dead_letters(self, letters: list[DeadLetter]) -> None:
        async with self._sessions.begin() as s:
            s.add_all(
                DeadLetterRow(ts=d.ts, source=d.source, key=d.key, reason=d.reason, payload=d.payload) for d in letters
            )

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The most recent dead letters, newest first."""
        async with self._sessions() as s:
            rows = await s.scalars(select(DeadLetterRow).order_by(DeadLetterRow.id.desc()).limit(limit))
            return [DeadLetter(r.ts, r.source, r.key, r.reason, r.payload) for r in rows]

    async def add_audit(
        self, *, ts: int, actor: str, source: str, action: str, target: str, detail: dict[str, Any], outcome: str
    ) -> int:
        """Record a change asked for; returns its id, so that a `pending` entry can be finished."""
        async with self._sessions.begin() as s:
            row = AuditRow(
                ts=ts, actor=actor, source=source, action=action, target=target, detail=_json(detail), outcome=outcome
            )
            s.add(row)
            await s.flush()
            return row.id

    async def finish_audit(self, audit_id: int, outcome: str, detail: dict[str, Any]) -> None:
        """Set how a pending entry ended; who, when and where stay as recorded."""
        async with self._sessions.begin() as s:
            row = await s.get(AuditRow, audit_id)
            if row is None:
                raise KeyError(audit_id)
            row.outcome, row.detail = outcome, _json(detail)

    async def audit_log(self, limit: int = 100) -> list[AuditEntry]:
        """The most recent audit entries, newest first."""
        async with self._sessions() as s:
            rows = await s.scalars(select(AuditRow).order_by(AuditRow.id.desc()).limit(limit))
            return [
                AuditEntry(r.id, r.ts, r.actor, r.source, r.action, r.target, json.loads(r.detail), r.outcome)
                for r in rows
            ]

    async def active_conditions(self) -> list[tuple[str, str]]:
        """(rule, device) of every alarm still active, so the engine can resume where it stopped."""
        async with self._sessions() as s:
            rows = await s.execute(select(AlarmRow.rule_id, AlarmRow.device_id).where(AlarmRow.active))
            return [(r, d) for r, d in rows.all()]

    @staticmethod
    async def _open(s: AsyncSession, rule_id: str, device_id: str) -> AlarmRow | None:
        query = select(AlarmRow).where(AlarmRow.rule_id == rule_id, AlarmRow.device_id == device_id, AlarmRow.is_open)
        return (await s.scalars(query)).first()


def _json(detail: dict[str, Any]) -> str:
    return json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str)
