// The desk's words in Simplified Chinese and English; the choice is remembered in localStorage.
// The words for ids (priorities, alarm states, task kinds and statuses, systems, the library's
// teams, task history) are not here: they are the kernel's one table (facility/words.py), served at
// /api/v1/words, which `useWords` files under the desk's keys, so that an id reads the same on the
// desk as in the reports and notifications.

const TEXT = {
  zh: {
    title: "值班台", pageTitle: "值班台", emergencyTitle: "⚠ 紧急报警未确认 ({n})", otherLanguage: "English",
    token: "访问令牌", login: "登录", logout: "退出", badToken: "令牌无效或已被吊销",
    networkError: "无法连接服务器", retryAfter: "{n} 秒后可重试", loading: "正在加载…",
    loadFailed: "无法读取{what}：{message}", site: "项目信息", words: "显示用词", flood: "报警风暴状态", plans: "应急预案",
    live: "在线", offline: "离线", connecting: "连接中…", heard: "最后消息：{d}",
    offlineBanner: "与服务器的连接已中断，页面上的内容可能已过时。正在自动重连…（最后一次收到服务器消息：{d}）",
    offlineNever: "无法连接服务器，页面上的内容可能已过时。正在自动重连…",
    alarms: "报警", tasks: "工单", devices: "设备", reports: "报表",
    role_viewer: "只读", role_duty: "值班员", role_engineer: "工程师", role_manager: "经理", role_admin: "管理员",
    priority: "优先级", state: "状态", alarm: "报警", device: "设备", time: "时间", where: "位置",
    stillActive: "报警中", cleared: "已恢复", chattering: "频繁抖动", escalated: "已升级",
    notRecorded: "未入库", notRecordedHint: "运维数据库暂无响应：报警已发出，恢复后自动入库，届时可确认",
    shelvedUntil: "搁置至 {time}",
    view_open: "当前报警", view_shelved: "已搁置", view_closed: "已恢复",
    noAlarms: "当前无报警", noShelved: "没有搁置的报警", noClosed: "没有已恢复的报警",
    moreAlarms: "显示 {shown} / 共 {total} 条", andMore: "另有 {n} 条…",
    ack: "确认", shelve: "搁置", unshelve: "取消搁置", cancel: "取消", close: "关闭",
    shelveReason: "搁置原因", shelveReasonHint: "例如：传感器更换中", shelveMinutes: "时长（分钟，最长 1440）",
    emergencyBanner: "紧急报警未确认：{n} 条", silence: "静音", enableSound: "开启报警声音",
    silenced: "已静音（有新的紧急报警时会再次响起）",
    floodBanner: "报警风暴：自 {time} 起 {n} 条报警。请先处理紧急和高优先级报警。",
    emergencyCount: "{n} 条紧急报警", showEmergencies: "展开紧急报警列表", hideEmergencies: "收起紧急报警列表",
    atBuilding: "楼栋 {b}", atFloor: "楼层 {f}", shelvedBecause: "搁置原因：{reason}",
    badTokenChars: "令牌中含有不可用的字符（空格、换行或中文字符），请重新复制令牌",
    checkingToken: "正在验证令牌…", slowServer: "服务器响应较慢，仍在等待…",
    zoomIn: "放大", zoomOut: "缩小", zoomReset: "复位", zoomHint: "在曲线上拖动可放大所选时段",
    openPlans: "进行中的应急预案", stepsOverdue: "{n} 步超时",
    raised: "发生时间", acked: "确认", clearedAt: "恢复时间", history: "记录与备注",
    addComment: "添加备注", commentHint: "写下处理情况…",
    plan: "应急预案", planClosed: "已结束", stepDue: "时限 {time}", stepLeft: "剩余 {d}", stepLate: "已超时 {d}",
    stepNote: "备注（可选）", stepDone: "完成", doneBy: "{who} 于 {time} 完成", late: "超时完成",
    closePlan: "结束预案", closePlanSure: "还有未完成的步骤，确定结束？",
    newComplaint: "新建投诉工单", onlyOverdue: "只看超时", noTasks: "无",
    move_in_progress: "开始处理", move_resolved: "标记已解决", move_verified: "验收",
    assign: "派单", reassign: "改派", assignee: "处理人",
    cancelTask: "取消工单", confirmCancelTask: "确定取消", keepTask: "不取消",
    waitsForClear: "报警条件尚未消除，暂不能验收。", conditionActive: "条件仍存在", recurrences: "重复 {n} 次",
    dueAt: "期限 {time}", overdueBy: "超时 {d}", verifiedAt: "验收于 {time}", overdueTasks: "{n} 张工单超时",
    addNote: "添加记录", noteHint: "处理记录…",
    taskTitle: "标题", taskTitleHint: "例如：3 栋 1201 厨房漏水", due: "期限", description: "描述",
    checklistLines: "检查项（每行一项）", create: "创建",
    allBuildings: "全部楼栋", allSystems: "全部系统", noBuilding: "未指定楼栋", noDevices: "没有设备",
    deviceOnline: "通讯正常", deviceOffline: "通讯中断", lastSeen: "最后通讯 {time}",
    q_good: "", q_stale: "过期", q_no_comm: "通讯中断", q_bad: "数值无效", q_no_data: "无数据",
    yes: "是", no: "否", showTrend: "查看趋势",
    takeOutOfService: "停用检修", backInService: "恢复使用", oosReason: "停用原因",
    range_1h: "1 小时", range_24h: "24 小时", range_7d: "7 天",
    noHistory: "此时间段内没有可绘制的数据", trendSummary: "最小 {min} {unit} · 最大 {max} {unit} · {n} 个读数",
    bucket: "每点 {d}",
    // Equipment records (equipment.js), in the words of a property company's archive.
    eqOpen: "台账", eqTitle: "设备台账", eqCardTitle: "设备卡", eqDevice: "设备", eqSystem: "所属系统", eqPlace: "所在位置",
    eq_model: "型号", eq_manufacturer: "生产厂家", eq_serial_number: "出厂编号", eq_install_date: "安装日期",
    eq_warranty_end: "质保到期", eq_vendor: "维保单位", eq_contract: "维保合同", eq_contract_end: "合同到期",
    eq_location: "安装位置", eq_notes: "备注", eqUpdated: "最后修改", eqNotWritten: "尚未建档", eqNoVendor: "未指定",
    eqSave: "保存", eqEdit: "编辑台账", eqPrint: "打印设备卡", eqHistory: "设备履历", eqHistoryCount: "共 {n} 条",
    eqLatestHistory: "近期履历", eqNoHistory: "暂无记录", eqMore: "加载更多", eqTrends: "运行趋势：",
    eqPrinted: "打印时间 {time}", eqWarrantyOver: "已过保", eqContractOver: "合同已到期",
    eqEndsBeforeInstall: "{field}不能早于安装日期", eqExportXlsx: "导出台账 Excel", eqExportCsv: "导出台账 CSV",
    eqKind_alarm: "报警", eqKind_task: "工单", eqKind_device: "设备",
    briefing: "晨会简报", handover: "交接班报告", monthly: "月报", reportDate: "日期", reportSince: "自",
    reportMonth: "月份", show: "查看", print: "打印", downloadXlsx: "下载 Excel", downloadCsv: "下载 CSV", downloadMd: "下载 Markdown",
    // The health banner (health.js): what a part that is not up means for the duty officer.
    healthBanner: "系统部分功能异常：", healthLastSuccess: "（最后正常：{d}）",
    health_ops_store_down: "报警已显示，尚未入库：运维数据库不可用，恢复后自动补记",
    health_ops_store_degraded: "运维数据库响应缓慢，报警入库延迟",
    health_outcomes_down: "报警日志无法写入本地磁盘，请立即通知技术人员",
    health_outcomes_degraded: "报警变更待入库",
    health_telemetry_store_down: "遥测库不可用，数据暂存本地，恢复后自动补写",
    health_telemetry_store_degraded: "遥测库写入缓慢，数据暂存本地",
    health_spool_down: "本地暂存空间已满，常规数据正在丢弃（报警数据不受影响）",
    health_spool_degraded: "本地暂存空间将满，或常规数据已有丢弃",
    health_broker_down: "消息服务器断开，部分设备数据暂停接收",
    health_broker_degraded: "消息服务器连接不稳定",
    health_modbus_bus_down: "总线 {where} 无应答，该总线上的设备数据中断",
    health_modbus_bus_degraded: "总线 {where} 通讯不稳定",
    health_event_loop_down: "服务器处理迟缓，报警可能延迟",
    health_event_loop_degraded: "服务器处理迟缓，报警可能延迟",
    health_other_down: "组件 {name} 不可用", health_other_degraded: "组件 {name} 运行异常",
    // Dead letters (letters.js): the input the system could not use, for engineers.
    letters: "数据异常", lettersIntro: "网关和通知无法使用的数据：格式错误的报文、未登记的主题、无法解码的读数、存储拒收的读数、发送失败的通知。",
    refresh: "刷新", loadMore: "加载更多", allSources: "全部来源", letterSource: "来源", letterReason: "原因",
    letterContent: "内容", letterPayload: "原始内容（{n} 字符）", noDevice: "无对应设备", noLetters: "没有异常数据",
    lettersShown: "显示 {n} / {total} 条，最新在前",
    // The company view (estates.js): every estate the user may reach, side by side.
    estates: "各项目", estatesIntro: "公司各项目的实时情况与本月指标，数据来自各项目共用的运维数据库。",
    estate: "项目", estateEmergencies: "紧急报警", estateUnacked: "未确认报警", estateOverdue: "超时工单",
    estateOffline: "离线设备", estateOutOfService: "停用设备", estateMonthAlarms: "本月报警",
    estateMtta: "平均确认时间", estateOnTime: "工单按期完成率", estateDesk: "值班台",
    estateHere: "当前值班台", estateOpenDesk: "进入该项目值班台", estateNoDesk: "未配置值班台地址",
    estatesMonth: "本月：{month}", noEstates: "没有可查看的项目", estatesShown: "共 {n} 个项目",
    estateSwitch: "切换项目",
    source_mqtt: "MQTT 报文", source_modbus: "Modbus 读数", source_telemetry: "存储拒收", source_webhook: "外发通知",
    reason_unknown_topic: "没有设备使用此主题（主题拼写错误，或设备未在站点文件中登记）",
    reason_bad_status: "状态主题的内容既不是 online 也不是 offline",
    reason_not_json: "不是 JSON 格式", reason_not_object: "不是 JSON 对象", reason_too_large: "报文超过大小上限",
    reason_unreadable: "报文无法读取", letterOriginal: "系统原文",
    // The task board, the files on tasks and plan steps, and the lists' exports.
    assigneeHint: "选择处理人", assigneeKind_person: "人员", assigneeKind_team: "班组", assigneeKind_vendor: "维保单位",
    checklistOpen: "还有 {n} 项检查未完成，不能验收：", overrideReason: "强制验收原因", overrideHint: "说明为何未完成检查即验收",
    verifyAnyway: "强制验收", overrideByManager: "检查项全部完成后方可验收；如需强制验收，请联系主管。",
    overriddenBy: "{who} 于 {time} 强制验收：{reason}",
    attachFile: "上传照片或文件", attachFailed: "上传失败（{status}）",
    exportXlsx: "导出 Excel", exportCsv: "导出 CSV",
  },
  en: {
    title: "Duty desk", pageTitle: "Duty desk", emergencyTitle: "⚠ Emergency unacknowledged ({n})", otherLanguage: "中文",
    token: "Access token", login: "Log in", logout: "Log out", badToken: "The token is not valid or was revoked",
    networkError: "The server cannot be reached", retryAfter: "try again in {n} s", loading: "Loading…",
    loadFailed: "Could not read {what}: {message}", site: "the site", words: "display words", flood: "the flood state", plans: "plans",
    live: "Live", offline: "Offline", connecting: "Connecting…", heard: "last heard {d}",
    offlineBanner: "Connection to the server lost: what this page shows may be out of date. Reconnecting… (last heard from the server {d})",
    offlineNever: "The server cannot be reached: what this page shows may be out of date. Reconnecting…",
    alarms: "Alarms", tasks: "Tasks", devices: "Devices", reports: "Reports",
    role_viewer: "viewer", role_duty: "duty", role_engineer: "engineer", role_manager: "manager", role_admin: "admin",
    priority: "Priority", state: "State", alarm: "Alarm", device: "Device", time: "Time", where: "Where",
    stillActive: "still active", cleared: "cleared", chattering: "chattering", escalated: "escalated",
    notRecorded: "not yet recorded",
    notRecordedHint: "The ops store does not answer: the alarm is raised, and is recorded (and can be acknowledged) when it answers again",
    shelvedUntil: "shelved until {time}",
    view_open: "Current", view_shelved: "Shelved", view_closed: "Closed",
    noAlarms: "No alarms", noShelved: "No shelved alarms", noClosed: "No closed alarms",
    moreAlarms: "showing {shown} of {total}", andMore: "and {n} more…",
    ack: "Acknowledge", shelve: "Shelve", unshelve: "Unshelve", cancel: "Cancel", close: "Close",
    shelveReason: "Reason", shelveReasonHint: "e.g. sensor being replaced", shelveMinutes: "Minutes (at most 1440)",
    emergencyBanner: "Emergency alarms unacknowledged: {n}", silence: "Silence", enableSound: "Turn alarm sound on",
    silenced: "Silenced (sounds again on the next new emergency)",
    floodBanner: "Alarm flood: {n} alarms since {time}. Deal with emergency and high priority first.",
    emergencyCount: "{n} emergency alarms", showEmergencies: "Show the emergency alarms", hideEmergencies: "Hide the emergency alarms",
    atBuilding: "Building {b}", atFloor: "Floor {f}", shelvedBecause: "Shelved because: {reason}",
    badTokenChars: "The token has characters no token has (a space, a line break or a Chinese character): copy it again",
    checkingToken: "Checking the token…", slowServer: "The server is slow to answer; still waiting…",
    zoomIn: "Zoom in", zoomOut: "Zoom out", zoomReset: "Reset", zoomHint: "Drag across the chart to zoom into that time",
    openPlans: "Emergency plans under way", stepsOverdue: "{n} overdue",
    raised: "Raised", acked: "Acknowledged", clearedAt: "Cleared", history: "History and comments",
    addComment: "Add comment", commentHint: "What was done…",
    plan: "Emergency plan", planClosed: "closed", stepDue: "by {time}", stepLeft: "{d} left", stepLate: "{d} overdue",
    stepNote: "Note (optional)", stepDone: "Done", doneBy: "done by {who} at {time}", late: "late",
    closePlan: "Close plan", closePlanSure: "Steps are still open. Close the plan anyway?",
    newComplaint: "New complaint task", onlyOverdue: "Overdue only", noTasks: "None",
    move_in_progress: "Start work", move_resolved: "Mark resolved", move_verified: "Verify",
    assign: "Assign", reassign: "Reassign", assignee: "Assignee",
    cancelTask: "Cancel task", confirmCancelTask: "Yes, cancel it", keepTask: "Keep it",
    waitsForClear: "The alarm condition has not cleared yet: the task cannot be verified.",
    conditionActive: "condition still active", recurrences: "recurred {n}×",
    dueAt: "due {time}", overdueBy: "overdue by {d}", verifiedAt: "verified {time}", overdueTasks: "{n} tasks overdue",
    addNote: "Add note", noteHint: "Work note…",
    taskTitle: "Title", taskTitleHint: "e.g. water leak in the kitchen of 3-1201", due: "Due", description: "Description",
    checklistLines: "Checklist (one item a line)", create: "Create",
    allBuildings: "All buildings", allSystems: "All systems", noBuilding: "No building", noDevices: "No devices",
    deviceOnline: "online", deviceOffline: "no communication", lastSeen: "last seen {time}",
    q_good: "", q_stale: "stale", q_no_comm: "no communication", q_bad: "bad value", q_no_data: "no data",
    yes: "yes", no: "no", showTrend: "Show the trend",
    takeOutOfService: "Take out of service", backInService: "Back in service", oosReason: "Why (maintenance, …)",
    range_1h: "1 h", range_24h: "24 h", range_7d: "7 d",
    noHistory: "Nothing to draw in this range", trendSummary: "min {min} {unit} · max {max} {unit} · {n} readings",
    bucket: "one point per {d}",
    eqOpen: "Record", eqTitle: "Equipment record", eqCardTitle: "Device card", eqDevice: "Device", eqSystem: "System",
    eqPlace: "Building, floor, room", eq_model: "Model", eq_manufacturer: "Manufacturer", eq_serial_number: "Serial number",
    eq_install_date: "Installed", eq_warranty_end: "Warranty ends", eq_vendor: "Maintenance vendor",
    eq_contract: "Maintenance contract", eq_contract_end: "Contract ends", eq_location: "Exact location", eq_notes: "Notes",
    eqUpdated: "Last changed", eqNotWritten: "not filled in yet", eqNoVendor: "none", eqSave: "Save", eqEdit: "Edit record",
    eqPrint: "Print device card", eqHistory: "History", eqHistoryCount: "{n} entries", eqLatestHistory: "Latest history",
    eqNoHistory: "Nothing recorded yet", eqMore: "Show more", eqTrends: "Trends:", eqPrinted: "printed {time}",
    eqWarrantyOver: "out of warranty", eqContractOver: "contract ended",
    eqEndsBeforeInstall: "{field} cannot be before the install date", eqExportXlsx: "Export records (Excel)",
    eqExportCsv: "Export records (CSV)", eqKind_alarm: "alarm", eqKind_task: "task", eqKind_device: "device",
    briefing: "Morning briefing", handover: "Shift handover", monthly: "Monthly report", reportDate: "Date",
    reportSince: "Since", reportMonth: "Month", show: "Show", print: "Print", downloadXlsx: "Download Excel", downloadCsv: "Download CSV",
    downloadMd: "Download Markdown",
    // The health banner (health.js): what a part that is not up means for the duty officer.
    healthBanner: "Part of the service is not working:", healthLastSuccess: " (last worked {d})",
    health_ops_store_down: "Alarms are shown but not yet recorded: the ops store is unavailable; they are recorded once it is back",
    health_ops_store_degraded: "The ops store is slow: alarms are recorded late",
    health_outcomes_down: "The alarm journal cannot be written to local disk: call the engineer on duty now",
    health_outcomes_degraded: "Alarm changes are waiting to be recorded",
    health_telemetry_store_down: "Telemetry store unavailable: readings are kept on local disk and written once it is back",
    health_telemetry_store_degraded: "Telemetry store slow: readings wait on local disk",
    health_spool_down: "Local spool full: routine readings are being dropped (alarm readings are kept)",
    health_spool_degraded: "Local spool nearly full, or routine readings were dropped",
    health_broker_down: "Message broker disconnected: readings of MQTT devices have stopped",
    health_broker_degraded: "Message broker connection unstable",
    health_modbus_bus_down: "Modbus bus {where} not answering: its devices are not being read",
    health_modbus_bus_degraded: "Modbus bus {where} unreliable",
    health_event_loop_down: "The server is running late: alarms may be delayed",
    health_event_loop_degraded: "The server is running late: alarms may be delayed",
    health_other_down: "{name} is down", health_other_degraded: "{name} is degraded",
    // Dead letters (letters.js): the input the system could not use, for engineers.
    letters: "Dead letters", lettersIntro: "Input the gateway and the notifiers could not use: malformed payloads, topics no device has, values that do not decode, readings the store refused, notifications that failed.",
    refresh: "Refresh", loadMore: "Load more", allSources: "All sources", letterSource: "Source", letterReason: "Reason",
    letterContent: "Content", letterPayload: "What came ({n} characters)", noDevice: "no device", noLetters: "No dead letters",
    lettersShown: "{n} of {total}, newest first",
    // The company view (estates.js): every estate the user may reach, side by side.
    estates: "Estates", estatesIntro: "Every estate of the company, live and this month, from the ops database the estates share.",
    estate: "Estate", estateEmergencies: "Emergencies", estateUnacked: "Unacknowledged", estateOverdue: "Overdue tasks",
    estateOffline: "Devices offline", estateOutOfService: "Out of service", estateMonthAlarms: "Alarms this month",
    estateMtta: "Mean time to acknowledge", estateOnTime: "Tasks on time", estateDesk: "Desk",
    estateHere: "This desk", estateOpenDesk: "Open its desk", estateNoDesk: "No desk address given",
    estatesMonth: "Month: {month}", noEstates: "No estates to show", estatesShown: "{n} estates",
    estateSwitch: "Switch estate",
    source_mqtt: "MQTT message", source_modbus: "Modbus value", source_telemetry: "Refused by the store", source_webhook: "Notification",
    reason_unknown_topic: "no device has this topic (a misspelt topic, or a device the site file does not list)",
    reason_bad_status: "the status topic said neither online nor offline",
    reason_not_json: "not JSON", reason_not_object: "not a JSON object", reason_too_large: "payload over the size taken",
    reason_unreadable: "could not be read", letterOriginal: "as the system wrote it",
    // The task board, the files on tasks and plan steps, and the lists' exports.
    assigneeHint: "choose who does it", assigneeKind_person: "People", assigneeKind_team: "Teams", assigneeKind_vendor: "Vendors",
    checklistOpen: "{n} checklist item(s) not done; the task cannot be verified:", overrideReason: "Reason to verify anyway",
    overrideHint: "why verify with the checklist open", verifyAnyway: "Verify anyway",
    overrideByManager: "Tick every item to verify; only a manager may verify anyway.",
    overriddenBy: "Verified over the checklist by {who} at {time}: {reason}",
    attachFile: "Add a photo or file", attachFailed: "Upload failed ({status})",
    exportXlsx: "Export Excel", exportCsv: "Export CSV",
  },
};

// Where each served group goes: the key of an id, and whether the desk's English starts with a
// capital (a label or badge) or reads as written (a word inside a sentence).
const GROUPS = {
  priorities: ["{}", true],
  alarm_states: ["state_{}", true],
  task_statuses: ["status_{}", true],
  systems: ["system_{}", true],
  task_kinds: ["kind_{}", false],
  task_actions: ["taskAction_{}", false],
  alarm_actions: ["history_{}", false],
  device_actions: ["history_{}", false],
};
const ACTORS = new Set(["rules", "system"]);  // the system's own actors; every other name is a team's

const capital = (text) => text.charAt(0).toUpperCase() + text.slice(1);

/** Take the served table of words (GET /api/v1/words: {group: {id: {zh, en}}}) as the desk's. */
export function useWords(words) {
  const file = (key, text, capitalised) => {
    TEXT.zh[key] = text.zh;
    TEXT.en[key] = capitalised ? capital(text.en) : text.en;
  };
  for (const [group, [key, capitalised]] of Object.entries(GROUPS)) {
    for (const [id, text] of Object.entries(words[group] || {})) {
      file(key.replace("{}", id.replaceAll(" ", "_")), text, capitalised);
    }
  }
  for (const [id, text] of Object.entries(words.names || {})) file(`${ACTORS.has(id) ? "actor" : "team"}_${id}`, text, false);
}

let current = localStorage.getItem("desk.lang") === "en" ? "en" : "zh";

export const lang = () => current;

export function setLang(value) {
  current = value === "en" ? "en" : "zh";
  localStorage.setItem("desk.lang", current);
}

/** The text for `key` with `{name}` filled in; an unknown `kind_x` style key shows its own `x`. */
export function t(key, vars = {}) {
  let text = TEXT[current][key];
  if (text === undefined) text = key.includes("_") ? key.slice(key.indexOf("_") + 1) : key;
  return text.replace(/\{(\w+)\}/g, (all, name) => (name in vars ? String(vars[name]) : all));
}

/** The desk's word for an id of some kind (`team`, `actor`, `value`), or the id itself where it
 * knows none: a team or value the library does not name is still shown, as written. */
export function named(kind, id) {
  const text = TEXT[current][`${kind}_${id}`];
  return text === undefined ? String(id) : text;
}

/** The word for an alarm's or a device's history action (served as `alarm_actions` and
 * `device_actions`), or the action as stored where the table names none. */
export function actionWord(action) {
  const text = TEXT[current][`history_${action.replaceAll(" ", "_")}`];
  return text === undefined ? action : text;
}

/** One language of a {zh, en} text, falling back to the other. */
export function pick(text) {
  if (!text) return "";
  if (typeof text === "string") return text;
  return text[current] || text.en || text.zh || "";
}
