// The words of the task board, of the files on tasks and plan steps, and of the lists' exports,
// zh and en, merged into the desk's (i18n.js).
export const TASK_WORDS = {
  zh: {
    assigneeHint: "选择处理人", assigneeKind_person: "人员", assigneeKind_team: "班组", assigneeKind_vendor: "维保单位",
    checklistOpen: "还有 {n} 项检查未完成，不能验收：", overrideReason: "强制验收原因", overrideHint: "说明为何未完成检查即验收",
    verifyAnyway: "强制验收", overrideByManager: "检查项全部完成后方可验收；如需强制验收，请联系主管。",
    overriddenBy: "{who} 于 {time} 强制验收：{reason}",
    attachFile: "上传照片或文件", attachFailed: "上传失败（{status}）",
    exportXlsx: "导出 Excel", exportCsv: "导出 CSV",
  },
  en: {
    assigneeHint: "choose who does it", assigneeKind_person: "People", assigneeKind_team: "Teams", assigneeKind_vendor: "Vendors",
    checklistOpen: "{n} checklist item(s) not done; the task cannot be verified:", overrideReason: "Reason to verify anyway",
    overrideHint: "why verify with the checklist open", verifyAnyway: "Verify anyway",
    overrideByManager: "Tick every item to verify; only a manager may verify anyway.",
    overriddenBy: "Verified over the checklist by {who} at {time}: {reason}",
    attachFile: "Add a photo or file", attachFailed: "Upload failed ({status})",
    exportXlsx: "Export Excel", exportCsv: "Export CSV",
  },
};
