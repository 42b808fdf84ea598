"""The monthly report's service levels: how fast alarms were acknowledged and tasks resolved,
whether teams and vendors kept their deadlines, and how fast vendors came on site."""

from __future__ import annotations

from facility.records import TaskKind, VendorSla
from facility.store.reads.alarms import Acks
from facility.store.reads.tasks import Deadlines, Repairs
from facility.vocabulary import Text
from reports import alarm_load
from reports.model import Column, Row, Section, text
from reports.scope import Scope

NO_TEAM = text("未指定班组", "no team")


def acks_section(acks: dict[str, Acks]) -> Section:
    """Per priority (in the order of priorities), the time to acknowledge."""
    order = [p for p in alarm_load.PRIORITIES if p in acks] + sorted(set(acks) - set(alarm_load.PRIORITIES))
    rows: list[Row] = [
        {
            "priority": p,
            "activations": acks[p].activations,
            "acked": acks[p].acked,
            "unacked": acks[p].activations - acks[p].acked,
            "mtta": acks[p].total_ns // acks[p].acked if acks[p].acked else None,
        }
        for p in order
    ]
    return Section(
        "acknowledge",
        text("报警确认时间", "Time to acknowledge"),
        columns=[
            Column("priority", text("优先级", "Priority"), "word"),
            Column("activations", text("报警次数", "Alarms"), "count"),
            Column("acked", text("已确认", "Acknowledged"), "count"),
            Column("unacked", text("未确认即再次报警或仍未确认", "Not acknowledged"), "count"),
            Column("mtta", text("平均确认时间", "Mean time to acknowledge"), "duration"),
        ],
        rows=rows,
        note=text(
            "每次报警发生（含再次发生）到其后第一次确认的时间；未确认的不计入平均",
            "From each activation to the acknowledgement that follows it; activations never acknowledged are left out",
        ),
    )


def repairs_section(repairs: dict[str, Repairs]) -> Section:
    """Per task kind, the tasks resolved and their mean time from creation."""
    order = [k.value for k in TaskKind if k.value in repairs]
    return Section(
        "repair",
        text("工单处理时间", "Time to resolve"),
        columns=[
            Column("kind", text("类型", "Kind"), "task_kind"),
            Column("resolved", text("本月解决", "Resolved"), "count"),
            Column("mttr", text("平均处理时间", "Mean time from creation to resolved"), "duration"),
        ],
        rows=[
            {"kind": k, "resolved": repairs[k].resolved, "mttr": repairs[k].total_ns // repairs[k].resolved}
            for k in order
        ],
        note=text(
            "本月解决的工单，自创建至解决；概要中的平均修复时间只计维修、紧急与投诉类",
            "Tasks resolved this month, from creation to resolved; the summary's mean time to repair counts "
            "repair, emergency and complaint tasks only",
        ),
    )


def deadline_section(scope: Scope, key: str, title: Text, by: str, found: dict[str, Deadlines]) -> Section:
    """Per team or vendor (`by`), the deadlines of the month kept."""
    return Section(
        key,
        title,
        columns=[
            Column(by, text("班组", "Team") if by == "team" else text("维保单位", "Vendor"), "name"),
            Column("due", text("本月到期", "Due this month"), "count"),
            Column("met", text("按期完成", "On time"), "count"),
            Column("missed", text("超期", "Late"), "count"),
            Column("pending", text("未到期", "Not due yet"), "count"),
            Column("compliance", text("按期率", "On time, share"), "ratio"),
        ],
        rows=[
            {
                by: (scope.vendor(k) if by == "vendor" else k) or NO_TEAM,
                "due": d.due,
                "met": d.met,
                "missed": d.missed,
                "pending": d.pending,
                "compliance": d.met / (d.met + d.missed) if d.met + d.missed else None,
            }
            for k, d in found.items()
        ],
        note=text(
            "期限在本月内的工单（不含已取消）：解决时间不晚于期限为按期；按期率 = 按期 ÷（按期 + 超期）",
            "Tasks due this month, cancelled ones left out: on time when resolved by the due time; "
            "share = on time ÷ (on time + late)",
        ),
    )


def _response_row(scope: Scope, vendor: str, r: VendorSla) -> Row:
    judged = r.met + r.missed + r.open_past_limit
    return {
        "vendor": scope.vendor(vendor),
        "limit": r.limit_ns,
        "tasks": r.tasks,
        "met": r.met,
        "missed": r.missed,
        "no_show": r.open_past_limit,
        "waiting": r.waiting,
        "compliance": r.met / judged if judged else None,
        "mean": r.mean_response_ns,
        "worst": r.worst_response_ns,
    }


def responses_section(scope: Scope, responses: dict[str, VendorSla]) -> Section:
    """Per vendor with a contract time to arrive, the call-outs it came to in time."""
    return Section(
        "vendor_response",
        text("维保单位到场响应", "Vendor call-out response"),
        columns=[
            Column("vendor", text("维保单位", "Vendor")),
            Column("limit", text("合同到场时限", "Contract: on site within"), "duration"),
            Column("tasks", text("报修次数", "Call-outs"), "count"),
            Column("met", text("按时到场", "On time"), "count"),
            Column("missed", text("迟到", "Late"), "count"),
            Column("no_show", text("超时未到", "Not there, past the limit"), "count"),
            Column("waiting", text("等待中", "Waiting, within the limit"), "count"),
            Column("compliance", text("按时率", "On time, share"), "ratio"),
            Column("mean", text("平均到场时间", "Mean response"), "duration"),
            Column("worst", text("最长到场时间", "Longest response"), "duration"),
        ],
        rows=[_response_row(scope, vendor, r) for vendor, r in sorted(responses.items())],
        note=text(
            "本月发起的维修、紧急与投诉类工单；到场 = 首次转为处理中；按时率 = 按时 ÷（按时 + 迟到 + 超时未到）",
            "Repair, emergency and complaint tasks raised this month; arrival = the first move to in progress; "
            "share = on time ÷ (on time + late + not there past the limit)",
        ),
    )
