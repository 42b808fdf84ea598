"""Names of the ids a report shows (priorities, systems, statuses, history actions) in both languages."""

from __future__ import annotations

from facility.store.tasks import Bilingual

WORDS: dict[str, Bilingual] = {
    # priorities
    "emergency": Bilingual("紧急", "emergency"),
    "high": Bilingual("高", "high"),
    "medium": Bilingual("中", "medium"),
    "low": Bilingual("低", "low"),
    # systems (the profiles' `system`)
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
    # alarm states
    "unacknowledged": Bilingual("未确认", "unacknowledged"),
    "acknowledged": Bilingual("已确认", "acknowledged"),
    "rtn_unacknowledged": Bilingual("已恢复未确认", "returned, unacknowledged"),
    "normal": Bilingual("正常", "normal"),
    "shelved": Bilingual("已搁置", "shelved"),
    "suppressed": Bilingual("设计抑制", "suppressed"),
    "out_of_service": Bilingual("停用检修", "out of service"),
    # alarm history
    "raised": Bilingual("报警", "raised"),
    "raised again": Bilingual("再次报警", "raised again"),
    "returned to normal": Bilingual("恢复正常", "returned to normal"),
    "unshelved": Bilingual("取消搁置", "unshelved"),
    "comment": Bilingual("备注", "comment"),
    "suppression ended": Bilingual("抑制结束", "suppression ended"),
    "chattering": Bilingual("频繁报警", "chattering"),
    "chattering ended": Bilingual("频繁报警结束", "chattering ended"),
    "escalated": Bilingual("已升级", "escalated"),
    "out of service": Bilingual("停用检修", "out of service"),
    "back in service": Bilingual("恢复使用", "back in service"),
    # task kinds
    "inspection": Bilingual("巡检", "inspection"),
    "repair": Bilingual("维修", "repair"),
    "preventive": Bilingual("保养", "preventive"),
    "complaint": Bilingual("投诉", "complaint"),
    # task statuses
    "open": Bilingual("待处理", "open"),
    "assigned": Bilingual("已派单", "assigned"),
    "in_progress": Bilingual("处理中", "in progress"),
    "resolved": Bilingual("已解决", "resolved"),
    "verified": Bilingual("已验收", "verified"),
    "cancelled": Bilingual("已取消", "cancelled"),
    # task history
    "created": Bilingual("创建", "created"),
    "recurred": Bilingual("再次发生", "recurred"),
    "condition cleared": Bilingual("条件已消除", "condition cleared"),
    "status": Bilingual("状态变更", "status changed"),
    "ticked": Bilingual("勾选检查项", "item ticked"),
    "unticked": Bilingual("取消勾选", "item unticked"),
    "note": Bilingual("记录", "note"),
    # plans
    "opened": Bilingual("启动", "opened"),
    "step done": Bilingual("步骤完成", "step done"),
    "closed": Bilingual("关闭", "closed"),
    # where a record comes from
    "alarm": Bilingual("报警", "alarm"),
    "task": Bilingual("工单", "task"),
    "plan": Bilingual("预案", "plan"),
}


def word(value: str, lang: str) -> str:
    """The name of an id in `lang`; an id without one is shown as it is, underscores as spaces."""
    known = WORDS.get(value)
    if known is None:
        return value.replace("_", " ")
    return known.zh if lang == "zh" else known.en
