"""The one table of display words: the names of the ids a person reads (priorities, systems, alarm
states, task kinds and statuses, history actions, the library's teams) in both languages.

It is the kernel's so that every reader of an id names it alike: the reports (through
`reports.values`), the notifications, and the duty desk, which is served this table
(GET /api/v1/words) instead of keeping a copy of its own. A closed alarm is 已恢复, an alarm
suppressed by design 条件屏蔽, an emergency-response task 应急 (its priority 紧急), on the page and on
paper alike. Ids stay ASCII; what a duty officer reads is a `Text`.
"""

from __future__ import annotations

from facility.vocabulary import Text

PRIORITIES: dict[str, Text] = {
    "emergency": Text("紧急", "emergency"),
    "high": Text("高", "high"),
    "medium": Text("中", "medium"),
    "low": Text("低", "low"),
}
SYSTEMS: dict[str, Text] = {  # the profiles' `system`
    "water_supply": Text("生活给水", "water supply"),
    "drainage": Text("排水", "drainage"),
    "elevators": Text("电梯", "elevators"),
    "fire": Text("消防", "fire"),
    "power": Text("供配电", "power"),
    "lighting": Text("照明", "lighting"),
    "access": Text("门禁", "access"),
    "hvac": Text("暖通空调", "HVAC"),
    "security": Text("安防", "security"),
    "other": Text("其他", "other"),
}
ALARM_STATES: dict[str, Text] = {
    "unacknowledged": Text("未确认", "unacknowledged"),
    "acknowledged": Text("已确认", "acknowledged"),
    "rtn_unacknowledged": Text("已恢复未确认", "cleared, unacknowledged"),
    "normal": Text("已恢复", "closed"),
    "shelved": Text("已搁置", "shelved"),
    "suppressed": Text("条件屏蔽", "suppressed by design"),
    "out_of_service": Text("停用检修", "out of service"),
}
TASK_KINDS: dict[str, Text] = {
    "inspection": Text("巡检", "inspection"),
    "repair": Text("维修", "repair"),
    "preventive": Text("保养", "preventive"),
    "emergency": Text("应急", "emergency"),  # emergency response: 紧急 is the priority's word
    "complaint": Text("投诉", "complaint"),
}
TASK_STATUSES: dict[str, Text] = {
    "open": Text("待派单", "open"),
    "assigned": Text("已派单", "assigned"),
    "in_progress": Text("处理中", "in progress"),
    "resolved": Text("已解决", "resolved"),
    "verified": Text("已验收", "verified"),
    "cancelled": Text("已取消", "cancelled"),
}
ALARM_ACTIONS: dict[str, Text] = {  # an alarm's history: what was done (确认), not the state it left (已确认)
    "raised": Text("报警发生", "raised"),
    "raised again": Text("再次发生", "raised again"),
    "spread": Text("报警部位增加", "more points in alarm"),  # as the desk's alarm card says it
    "acknowledged": Text("确认", "acknowledged"),
    "returned to normal": Text("已恢复", "returned to normal"),
    "shelved": Text("搁置", "shelved"),
    "unshelved": Text("取消搁置", "unshelved"),
    "comment": Text("备注", "comment"),
    "suppressed": Text("条件屏蔽", "suppressed"),
    "suppression ended": Text("屏蔽解除", "suppression ended"),
    "chattering": Text("频繁抖动", "chattering"),
    "chattering ended": Text("抖动结束", "chattering ended"),
    "escalated": Text("升级", "escalated"),
    "out of service": Text("停用检修", "out of service"),
    "back in service": Text("恢复使用", "back in service"),
}
TASK_ACTIONS: dict[str, Text] = {  # a task's history, as the desk's task card names it too
    "created": Text("创建工单", "created"),
    "recurred": Text("再次发生", "recurred"),
    "condition cleared": Text("报警条件消除", "condition cleared"),
    "status": Text("状态变更", "status changed"),
    "ticked": Text("完成检查项", "item done"),
    "unticked": Text("撤销检查项", "item undone"),
    "note": Text("处理记录", "note"),
    "assigned": Text("派单", "assigned"),
    "checklist overridden": Text("强制验收", "verified over the checklist"),
    "attached": Text("上传附件", "file added"),
}
DEVICE_ACTIONS: dict[str, Text] = {  # a device's own history, beside its alarms' and tasks'
    "record saved": Text("台账修改", "record changed"),
}
OTHERS: dict[str, Text] = {
    # a plan's history
    "opened": Text("启动", "opened"),
    "step done": Text("步骤完成", "step done"),
    "closed": Text("结束", "closed"),
    # where a record comes from
    "alarm": Text("报警", "alarm"),
    "task": Text("工单", "task"),
    "plan": Text("预案", "plan"),
}
# The words of a history's action column (`action`): an alarm's `acknowledged` is what was done, 确认.
ACTIONS: dict[str, Text] = {**OTHERS, **DEVICE_ACTIONS, **TASK_ACTIONS, **ALARM_ACTIONS}
# The words of a `word` column. An id of two groups is named by the later: `emergency` is the
# priority's 紧急 here, and a column of task kinds (`task_kind`) names it 应急 from TASK_KINDS; an
# alarm state (已确认) over the history action of the same id (确认).
WORDS: dict[str, Text] = {
    **ALARM_ACTIONS,
    **TASK_ACTIONS,
    **OTHERS,
    **TASK_STATUSES,
    **TASK_KINDS,
    **ALARM_STATES,
    **SYSTEMS,
    **PRIORITIES,
}


# Teams, vendors and people are ids the site's users choose; those the rule library uses, and the
# system's own actors, have the names the desk gives them. Any other is shown as it is.
NAMES: dict[str, Text] = {
    "plumbing": Text("给排水班组", "Plumbing"),
    "electrical": Text("强电班组", "Electrical"),
    "controls": Text("弱电班组", "Controls"),
    "security": Text("秩序维护部", "Security"),
    "engineering": Text("工程部", "Engineering"),
    "elevator-vendor": Text("电梯维保单位", "Lift contractor"),
    "elevator-contractor": Text("电梯维保单位", "Lift contractor"),
    "fire-maintenance": Text("消防维保单位", "Fire contractor"),
    "fire-safety": Text("消防班组", "Fire safety"),
    "customer-service": Text("客服中心", "Customer service"),
    "rules": Text("规则引擎", "rules"),
    "system": Text("系统", "system"),
}


def table() -> dict[str, dict[str, Text]]:
    """Every group of words by its name, as the desk is served them (GET /api/v1/words)."""
    return {
        "priorities": PRIORITIES,
        "systems": SYSTEMS,
        "alarm_states": ALARM_STATES,
        "task_kinds": TASK_KINDS,
        "task_statuses": TASK_STATUSES,
        "alarm_actions": ALARM_ACTIONS,
        "task_actions": TASK_ACTIONS,
        "device_actions": DEVICE_ACTIONS,
        "others": OTHERS,
        "names": NAMES,
    }


def name(value: str, lang: str) -> str:
    """The name of a team or actor id in `lang`, or the id (a person, a vendor's name) as it is."""
    known = NAMES.get(value)
    return value if known is None else known.pick(lang)


def word(value: str, lang: str, among: dict[str, Text] = WORDS) -> str:
    """The name of an id in `lang` (of the group `among`); an id without one is shown as it is,
    underscores as spaces."""
    known = among.get(value)
    return value.replace("_", " ") if known is None else known.pick(lang)
