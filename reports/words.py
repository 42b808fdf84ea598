"""Names of the ids a report shows (priorities, systems, statuses, history actions) in both languages.

The Chinese are the duty desk's words (api/desk/i18n.js) and the glossary the desk and the reports
share, so that a state has one name wherever a user meets it: a closed alarm is 已恢复, an alarm
suppressed by design 条件屏蔽, an emergency-response task 应急 (its priority 紧急), on the page and on
paper alike (tests/reports/test_words_agree.py holds the two to it)."""

from __future__ import annotations

from facility.store.tasks import Bilingual

PRIORITIES: dict[str, Bilingual] = {
    "emergency": Bilingual("紧急", "emergency"),
    "high": Bilingual("高", "high"),
    "medium": Bilingual("中", "medium"),
    "low": Bilingual("低", "low"),
}
SYSTEMS: dict[str, Bilingual] = {  # the profiles' `system`
    "water_supply": Bilingual("生活给水", "water supply"),
    "drainage": Bilingual("排水", "drainage"),
    "elevators": Bilingual("电梯", "elevators"),
    "fire": Bilingual("消防", "fire"),
    "power": Bilingual("供配电", "power"),
    "lighting": Bilingual("照明", "lighting"),
    "access": Bilingual("门禁", "access"),
    "hvac": Bilingual("暖通空调", "HVAC"),
    "security": Bilingual("安防", "security"),
    "other": Bilingual("其他", "other"),
}
ALARM_STATES: dict[str, Bilingual] = {
    "unacknowledged": Bilingual("未确认", "unacknowledged"),
    "acknowledged": Bilingual("已确认", "acknowledged"),
    "rtn_unacknowledged": Bilingual("已恢复未确认", "cleared, unacknowledged"),
    "normal": Bilingual("已恢复", "closed"),
    "shelved": Bilingual("已搁置", "shelved"),
    "suppressed": Bilingual("条件屏蔽", "suppressed by design"),
    "out_of_service": Bilingual("停用检修", "out of service"),
}
TASK_KINDS: dict[str, Bilingual] = {
    "inspection": Bilingual("巡检", "inspection"),
    "repair": Bilingual("维修", "repair"),
    "preventive": Bilingual("保养", "preventive"),
    "emergency": Bilingual("应急", "emergency"),  # emergency response: 紧急 is the priority's word
    "complaint": Bilingual("投诉", "complaint"),
}
TASK_STATUSES: dict[str, Bilingual] = {
    "open": Bilingual("待派单", "open"),
    "assigned": Bilingual("已派单", "assigned"),
    "in_progress": Bilingual("处理中", "in progress"),
    "resolved": Bilingual("已解决", "resolved"),
    "verified": Bilingual("已验收", "verified"),
    "cancelled": Bilingual("已取消", "cancelled"),
}
_OTHERS: dict[str, Bilingual] = {
    # alarm history
    "raised": Bilingual("报警发生", "raised"),
    "raised again": Bilingual("再次发生", "raised again"),
    "returned to normal": Bilingual("已恢复", "returned to normal"),
    "unshelved": Bilingual("取消搁置", "unshelved"),
    "comment": Bilingual("备注", "comment"),
    "suppression ended": Bilingual("屏蔽解除", "suppression ended"),
    "chattering": Bilingual("频繁抖动", "chattering"),
    "chattering ended": Bilingual("抖动结束", "chattering ended"),
    "escalated": Bilingual("升级", "escalated"),
    "out of service": Bilingual("停用检修", "out of service"),
    "back in service": Bilingual("恢复使用", "back in service"),
    # task history: as the desk names them (taskAction_* in api/desk/i18n.js)
    "created": Bilingual("创建工单", "created"),
    "recurred": Bilingual("再次发生", "recurred"),
    "condition cleared": Bilingual("报警条件消除", "condition cleared"),
    "status": Bilingual("状态变更", "status changed"),
    "ticked": Bilingual("完成检查项", "item done"),
    "unticked": Bilingual("撤销检查项", "item undone"),
    "note": Bilingual("处理记录", "note"),
    # plans
    "opened": Bilingual("启动", "opened"),
    "step done": Bilingual("步骤完成", "step done"),
    "closed": Bilingual("结束", "closed"),
    # where a record comes from
    "alarm": Bilingual("报警", "alarm"),
    "task": Bilingual("工单", "task"),
    "plan": Bilingual("预案", "plan"),
}
# The words of a `word` column. An id of two groups is named by the later: `emergency` is the
# priority's 紧急 here, and a column of task kinds (`task_kind`) names it 应急 from TASK_KINDS.
WORDS: dict[str, Bilingual] = {**_OTHERS, **TASK_STATUSES, **TASK_KINDS, **ALARM_STATES, **SYSTEMS, **PRIORITIES}


# Teams, vendors and people are ids the site's users choose; those the rule library uses, and the
# system's own actors, have the names the desk gives them. Any other is shown as it is.
NAMES: dict[str, Bilingual] = {
    "plumbing": Bilingual("给排水班组", "Plumbing"),
    "electrical": Bilingual("强电班组", "Electrical"),
    "controls": Bilingual("弱电班组", "Controls"),
    "security": Bilingual("秩序维护部", "Security"),
    "engineering": Bilingual("工程部", "Engineering"),
    "elevator-vendor": Bilingual("电梯维保单位", "Lift contractor"),
    "elevator-contractor": Bilingual("电梯维保单位", "Lift contractor"),
    "fire-maintenance": Bilingual("消防维保单位", "Fire contractor"),
    "fire-safety": Bilingual("消防班组", "Fire safety"),
    "customer-service": Bilingual("客服中心", "Customer service"),
    "rules": Bilingual("规则引擎", "rules"),
    "system": Bilingual("系统", "system"),
}


def name(value: str, lang: str) -> str:
    """The name of a team or actor id in `lang`, or the id (a person, a vendor's name) as it is."""
    known = NAMES.get(value)
    if known is None:
        return value
    return known.zh if lang == "zh" else known.en


def word(value: str, lang: str, among: dict[str, Bilingual] = WORDS) -> str:
    """The name of an id in `lang` (of the group `among`); an id without one is shown as it is,
    underscores as spaces."""
    known = among.get(value)
    if known is None:
        return value.replace("_", " ")
    return known.zh if lang == "zh" else known.en
