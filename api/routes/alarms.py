"""Alarms: the list duty staff work from (and its file for a spreadsheet), one alarm with its
history, and what they do to it (acknowledge, shelve, unshelve, comment). Another building's alarm
is 404 to a limited user."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import Field

from api import schemas
from api.auth import User
from api.body import MAX_ID, Body, RecordId
from api.context import ApiContext, source_of
from api.deps import Ctx, Duty, Viewer
from api.download import LIST_FILE, ListFormatQuery, ListLangQuery, list_file
from facility.errors import NotFound
from facility.model import AlarmState, Priority, now_ns
from facility.records import AlarmRecord, HistoryEntry, replaced_texts, spread_texts
from facility.store.alarm_pages import SORTS
from facility.store.alarms import MAX_COMMENT, MAX_SHELVE_NS, MINUTE_NS
from facility.vocabulary import ACTIVATIONS, AlarmAction
from reports.lists import AlarmFilter, alarm_list

Sort = Literal["desk", "priority", "-priority", "changed_at", "-changed_at", "raised_at", "-raised_at"]
assert set(Sort.__args__) == set(SORTS)  # type: ignore[attr-defined]


# What the ops store writes as a history entry's `detail` (English, kept as written for the audit),
# read back so that the desk can say it in the user's language.
ESCALATED = re.compile(r"not acknowledged within (?P<s>\d+) s")
CHATTERING = re.compile(r"(?P<n>\d+) activations within (?P<m>\d+) min")
SHELVED = re.compile(r"until (?P<until>\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ): (?P<reason>.*)", re.S)


def history_text(entry: HistoryEntry, alarm: AlarmRecord, zone: ZoneInfo) -> dict[str, str]:
    """A history entry's detail in both languages, from its kind and parameters: the stored detail
    is English where the system wrote it, and a person's own words (a comment, a reason) stay as
    they were written."""
    detail, action = entry.detail, entry.action
    if action in ACTIVATIONS and detail == alarm.message.en:
        return {"zh": alarm.message.zh, "en": alarm.message.en}
    if action in ACTIVATIONS and (was := replaced_texts(detail, alarm.history)):
        return was
    if action == AlarmAction.SPREAD:
        return spread_texts(detail)
    if action == AlarmAction.ESCALATED and (m := ESCALATED.fullmatch(detail)):
        seconds = int(m["s"])
        zh = f"超过 {seconds // 60} 分钟未确认" if seconds % 60 == 0 else f"超过 {seconds} 秒未确认"
        return {"zh": zh, "en": detail}
    if action == AlarmAction.CHATTERING and (m := CHATTERING.fullmatch(detail)):
        return {"zh": f"{m['m']} 分钟内报警 {m['n']} 次", "en": detail}
    if action == AlarmAction.SHELVED and (m := SHELVED.fullmatch(detail)):
        until = datetime.strptime(m["until"], "%Y-%m-%d %H:%M:%SZ").replace(tzinfo=UTC).astimezone(zone)
        shown = f"{until:%Y-%m-%d %H:%M}"
        return {"zh": f"搁置至 {shown}：{m['reason']}", "en": f"until {shown}: {m['reason']}"}
    return {"zh": detail, "en": detail}


class Shelve(Body):
    reason: str = Field(min_length=1, max_length=500, description="why it may be hidden; kept in its history")
    minutes: int = Field(ge=1, le=MAX_SHELVE_NS // MINUTE_NS, description="it comes back by itself after this")


class Comment(Body):
    text: str = Field(min_length=1, max_length=MAX_COMMENT)


@dataclass(frozen=True)
class AlarmQuery:
    """What the alarm list and its export are asked for: the filters, and where the devices are."""

    filters: AlarmFilter
    buildings: tuple[str, ...]
    systems: tuple[str, ...]
    devices: tuple[str, ...]


async def visible_alarm(ctx: ApiContext, alarm_id: int, user: User) -> AlarmRecord:
    """The alarm, or NotFound (404) when it is unknown or of another building than the user's: the
    two look the same, so that a limited user learns nothing of the other buildings."""
    found = await ctx.ops.alarms.get_alarm(alarm_id)
    if not ctx.may_see(user, found.device):
        raise NotFound(f"no alarm {alarm_id}")
    return found


async def act(
    ctx: ApiContext, alarm_id: int, user: User, action: Callable[[], Awaitable[AlarmRecord]]
) -> dict[str, Any]:
    """Check the alarm is the user's to see, then carry out `action` (an AlarmService call); an
    action its state refuses is a Conflict (409, api.errors)."""
    await visible_alarm(ctx, alarm_id, user)
    return ctx.placed(await action())


def alarm_query(
    ctx: Ctx,
    open: Annotated[bool, Query(description="only open alarms (false: closed ones too)")] = True,
    state: Annotated[list[AlarmState], Query()] = [],  # noqa: B006 (FastAPI copies query defaults)
    priority: Annotated[list[Priority], Query()] = [],  # noqa: B006
    building: Annotated[list[str], Query()] = [],  # noqa: B006
    system: Annotated[list[str], Query()] = [],  # noqa: B006
    device: Annotated[list[str], Query()] = [],  # noqa: B006
    since: Annotated[datetime | None, Query(description="raised from (ISO 8601; no offset: site time)")] = None,
    until: Annotated[datetime | None, Query(description="raised before")] = None,
    sort: Sort = "desk",
) -> AlarmQuery:
    """The list's query parameters, one dependency for the list and its export: they filter alike."""
    filters = AlarmFilter(
        open_only=open,
        states=tuple(state),
        priorities=tuple(p.value for p in priority),
        since=None if since is None else ctx.ns_of(since, "since"),
        until=None if until is None else ctx.ns_of(until, "until"),
        sort=sort,
    )
    return AlarmQuery(filters, tuple(building), tuple(system), tuple(device))


Asked = Annotated[AlarmQuery, Depends(alarm_query)]
router = APIRouter(tags=["alarms"])


@router.get("/alarms", response_model=schemas.AlarmPage)
async def list_alarms(
    ctx: Ctx,
    user: Viewer,
    asked: Asked,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> dict[str, Any]:
    """Alarms matching every filter given; `desk` order puts unacknowledged ones first, then by
    priority, then the latest change."""
    devices = ctx.chosen(user, asked.buildings, asked.systems, asked.devices)
    items, total = await asked.filters.page(ctx.ops, devices, limit, offset)
    return {"items": [ctx.placed(a) for a in items], "total": total, "limit": limit, "offset": offset}


@router.get("/alarms/export", response_class=Response, responses=LIST_FILE)
async def export_alarms(
    ctx: Ctx, user: Viewer, asked: Asked, fmt: ListFormatQuery = "xlsx", lang: ListLangQuery = "zh"
) -> Response:
    """Every alarm the list's filters match (with `open=false`, the alarm history), not one
    page, as an Excel workbook or a CSV file: times in site time, states and priorities in
    words of `lang`. At most 10 000 rows (reports.lists.MAX_ROWS), the first in the list's order; a file cut there
    says how many matched. A route of its own rather than a `format` of the list: the list
    answers a page of JSON with its schema, this a file of every row."""
    devices = ctx.chosen(user, asked.buildings, asked.systems, asked.devices)
    return list_file(await alarm_list(ctx.site, ctx.ops, devices, asked.filters, now_ns()), fmt, lang)


@router.get("/alarms/flood", response_model=schemas.Flood, response_model_exclude_none=True)
async def flood(ctx: Ctx, _: Viewer) -> dict[str, Any]:
    """`{active: true, count, since}` while more alarms are raised than staff can handle
    (over 10 in 10 minutes, ending under 5), else `{active: false}`."""
    return await ctx.rules.alarms.flood_state()


@router.get("/alarms/{alarm_id}", response_model=schemas.AlarmDetail)
async def alarm(ctx: Ctx, alarm_id: RecordId, user: Viewer) -> dict[str, Any]:
    """The alarm with its history (who did what, when, from where) and the id of the emergency
    plan it opened, if any."""
    found = await visible_alarm(ctx, alarm_id, user)
    plan = await ctx.rules.plans.of_alarm(alarm_id)
    zone = ZoneInfo(ctx.site.site.timezone)
    history = [{**h.as_json(), "text": history_text(h, found, zone)} for h in found.history]
    return {**ctx.placed(found), "history": history, "plan": plan.id if plan else None}


@router.post("/alarms/{alarm_id}/ack", response_model=schemas.Alarm)
async def acknowledge(ctx: Ctx, alarm_id: RecordId, request: Request, user: Duty) -> dict[str, Any]:
    alarms = ctx.rules.alarms
    return await act(ctx, alarm_id, user, lambda: alarms.acknowledge(alarm_id, user.name, source_of(request)))


@router.post("/alarms/{alarm_id}/shelve", response_model=schemas.Alarm)
async def shelve(ctx: Ctx, alarm_id: RecordId, body: Shelve, request: Request, user: Duty) -> dict[str, Any]:
    """Hide an open alarm for up to a day, with a reason; it comes back by itself."""
    until = now_ns() + body.minutes * MINUTE_NS
    source, alarms = source_of(request), ctx.rules.alarms
    return await act(ctx, alarm_id, user, lambda: alarms.shelve(alarm_id, user.name, source, body.reason, until))


@router.post("/alarms/{alarm_id}/unshelve", response_model=schemas.Alarm)
async def unshelve(ctx: Ctx, alarm_id: RecordId, request: Request, user: Duty) -> dict[str, Any]:
    alarms = ctx.rules.alarms
    return await act(ctx, alarm_id, user, lambda: alarms.unshelve(alarm_id, user.name, source_of(request)))


@router.post("/alarms/{alarm_id}/comments", response_model=schemas.Alarm)
async def comment(ctx: Ctx, alarm_id: RecordId, body: Comment, request: Request, user: Duty) -> dict[str, Any]:
    alarms = ctx.rules.alarms
    return await act(ctx, alarm_id, user, lambda: alarms.comment(alarm_id, user.name, source_of(request), body.text))
