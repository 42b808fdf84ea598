// The task board: work orders by status, overdue ones marked, moved on by buttons that offer only
// the next legal status (facility/store/tasks.py MOVES), with assignment, checklist, notes, and a
// form for a resident's complaint. The assignee is picked from the site's people, teams and vendors
// (GET /tasks/assignees); verifying a task with checklist items open names them, and only a
// manager may verify it anyway, with a reason the task's history keeps and the card shows.
import { PRIORITIES, errorOf } from "./alarms.js";
import { api } from "./api.js";
import { exportButtons, fileList, toolbarSlot } from "./files.js";
import { named, pick, t } from "./i18n.js";
import { act, can, changed, placed, state } from "./state.js";
import { $, draft, duration, el, field, forget, siteIso, when } from "./util.js";

const COLUMNS = ["open", "assigned", "in_progress", "resolved", "verified"];
const UNFINISHED = new Set(["open", "assigned", "in_progress"]);
const NEXT = { assigned: "in_progress", in_progress: "resolved", resolved: "verified" };  // open moves by assigning
const VERIFIED_SHOWN_MS = 24 * 3600 * 1000;

let assignees = [];  // {id, kind, name: {zh, en}} from GET /tasks/assignees
const overrides = new Map();  // task id -> its "checklist overridden" history entries, read when it is opened
const attached = new Map();  // task id -> its photos and files, read when it is opened

const isOverdue = (task) => UNFINISHED.has(task.status) && Date.now() > task.due / 1e6;

export async function loadTasks() {
  const live = COLUMNS.filter((c) => c !== "verified").map((c) => `status=${c}`).join("&");
  const [open, verified, choices] = await Promise.all([
    api(`/tasks?${live}&limit=500`), api("/tasks?status=verified&sort=-changed_at&limit=100"), api("/tasks/assignees"),
  ]);
  assignees = choices;
  state.tasks = new Map([...open.items, ...verified.items].map((task) => [task.id, task]));
  changed();
}

export function upsertTask(record) {
  const task = placed(record);
  const known = state.tasks.get(task.id);
  if (known && known.changed_at > task.changed_at) return;
  if (overrides.has(task.id)) readDetail(task.id);
  if (task.status === "cancelled") state.tasks.delete(task.id);
  else state.tasks.set(task.id, task);
  changed();
}

// ---- Actions (duty and above)

function post(key, path, body) {
  return act(key, async () => {
    upsertTask(await api(path, { method: "POST", body }));
    return true;
  });
}

async function assign(task) {
  const key = `assignee-${task.id}`;
  if (await post(`assign-${task.id}`, `/tasks/${task.id}/assign`, { assignee: draft(key).trim() })) {
    forget(key);
    state.reassigning = null;
    changed();
  }
}

const move = (task, status) => post(`move-${task.id}`, `/tasks/${task.id}/status`, { status });

async function verifyOverChecklist(task) {
  const key = `override-${task.id}`;
  const body = { status: "verified", override: draft(key).trim() };
  if (await post(`move-${task.id}`, `/tasks/${task.id}/status`, body)) {
    forget(key);
    changed();
  }
}

/** What an opened card shows beyond the list: its checklist overrides (who verified it over open
 * items, and why) from its history, and its photos and files. */
async function readDetail(id) {
  try {
    const [detail, files] = await Promise.all([api(`/tasks/${id}`), api(`/tasks/${id}/attachments`)]);
    overrides.set(id, detail.history.filter((h) => h.action === "checklist overridden"));
    attached.set(id, files);
  } catch (error) {
    overrides.delete(id);  // the card shows nothing rather than something stale
    attached.delete(id);
    console.warn(`task ${id}: detail not read`, error);
  }
  changed();
}

function attachments(task) {
  const path = `/tasks/${task.id}/attachments`;
  return fileList(`attach-${task.id}`, path, attached.get(task.id) || [], () => readDetail(task.id));
}

/** What the board shows, as the export's filters: its statuses (not cancelled), and overdue only when ticked. */
function boardQuery() {
  const statuses = COLUMNS.map((c) => `status=${c}`).join("&");
  return state.onlyOverdue ? `${statuses}&overdue=true` : statuses;
}

/** What the picker shows for an assignee: a person's or vendor's name, a team's word. */
function assigneeName(choice) {
  return choice.kind === "team" ? named("team", choice.id) : pick(choice.name);
}

function tick(task, n, done) {
  return post(`check-${task.id}-${n}`, `/tasks/${task.id}/checklist/${n}`, { done });
}

async function note(task) {
  const key = `task-note-${task.id}`;
  if (await post(key, `/tasks/${task.id}/notes`, { text: draft(key).trim() })) {
    forget(key);
    changed();
  }
}

async function createComplaint() {
  const checklist = draft("new-checklist").split("\n").map((line) => line.trim()).filter(Boolean);
  const body = {
    title: draft("new-title").trim(),
    kind: "complaint",
    priority: draft("new-priority", "medium"),
    description: draft("new-description").trim(),
    due: siteIso(draft("new-due")),
    checklist,
  };
  const made = await act("new-task", async () => {
    upsertTask(await api("/tasks", { method: "POST", body }));
    return true;
  });
  if (made) {
    forget("new-title", "new-priority", "new-description", "new-due", "new-checklist");
    state.newTask = false;
    changed();
  }
}

// ---- Rendering

function assignForm(task, label) {
  const key = `assignee-${task.id}`;
  return el("form", { class: "inline-form assign-form", onsubmit: (event) => {
    event.preventDefault();
    assign(task);
  } },
  field("select", key, { required: true, "aria-label": t("assignee"), value: draft(key, task.assignee || "") },
    el("option", { value: "" }, t("assigneeHint")),
    ["person", "team", "vendor"].map((kind) => {
      const choices = assignees.filter((a) => a.kind === kind);
      return choices.length ? el("optgroup", { label: t(`assigneeKind_${kind}`) },
        choices.map((a) => el("option", { value: a.id, selected: a.id === draft(key, task.assignee || "") }, assigneeName(a)))) : null;
    })),
  el("button", { type: "submit", class: "primary", disabled: state.busy.has(`assign-${task.id}`) }, label));
}

function taskActions(task) {
  if (!can("duty") || task.status === "verified") return null;
  const out = [];
  if (task.status === "open") {
    out.push(assignForm(task, t("assign")));
  } else {
    const next = NEXT[task.status];
    const unticked = (task.checklist || []).filter((item) => !item.done);
    if (next === "verified" && unticked.length) out.push(checklistOpen(task, unticked));
    out.push(el("div", { class: "actions" },
      el("button", {
        type: "button", class: "primary move", "data-to": next, disabled: state.busy.has(`move-${task.id}`), onclick: () => move(task, next),
      }, t(`move_${next}`)),
      UNFINISHED.has(task.status) && state.reassigning !== task.id
        ? el("button", { type: "button", onclick: () => { state.reassigning = task.id; changed(); } }, t("reassign"))
        : null,
      state.cancelling === task.id
        ? [el("button", { type: "button", class: "danger", onclick: () => move(task, "cancelled") }, t("confirmCancelTask")),
          el("button", { type: "button", onclick: () => { state.cancelling = null; changed(); } }, t("keepTask"))]
        : el("button", { type: "button", class: "subtle", onclick: () => { state.cancelling = task.id; changed(); } }, t("cancelTask"))));
    if (state.reassigning === task.id) out.push(assignForm(task, t("reassign")));
    if (task.status === "resolved" && task.condition_active) out.push(el("p", { class: "hint" }, t("waitsForClear")));
  }
  out.push(errorOf(`assign-${task.id}`), errorOf(`move-${task.id}`));
  return out;
}

/** Before verifying: the checklist items still open; a manager may verify anyway, giving a reason. */
function checklistOpen(task, unticked) {
  const key = `override-${task.id}`;
  return el("div", { class: "checklist-open" },
    el("p", { class: "hint" }, t("checklistOpen", { n: unticked.length })),
    el("ul", { class: "open-items" }, unticked.map((item) => el("li", {}, pick(item.text)))),
    can("manager") ? el("form", { class: "inline-form override-form", onsubmit: (event) => {
      event.preventDefault();
      verifyOverChecklist(task);
    } },
    field("input", key, { required: true, maxlength: 500, placeholder: t("overrideHint"), "aria-label": t("overrideReason") }),
    el("button", { type: "submit", class: "danger", disabled: state.busy.has(`move-${task.id}`) }, t("verifyAnyway")))
      : el("p", { class: "quiet" }, t("overrideByManager")));
}

function checklist(task) {
  return el("ul", { class: "checklist" }, (task.checklist || []).map((item, i) => {
    const n = item.n ?? i;
    const who = item.by ?? item.done_by;
    const at = item.at ?? item.done_at;
    const key = `check-${task.id}-${n}`;
    const editable = can("duty") && task.status !== "verified";
    return el("li", { "data-item": n },
      el("label", {},
        el("input", {
          type: "checkbox", checked: item.done, disabled: !editable || state.busy.has(key),
          onchange: (event) => tick(task, n, event.target.checked),
        }),
        ` ${pick(item.text)}`),
      item.done && who ? el("span", { class: "quiet" }, ` · ${who} ${when(at, "short")}`) : null,
      errorOf(key));
  }));
}

function details(task) {
  const key = `task-note-${task.id}`;
  const description = pick(task.description);
  return el("div", { class: "task-details" },
    description ? el("p", {}, description) : null,
    checklist(task),
    attachments(task),
    (overrides.get(task.id) || []).map((h) => el("p", { class: "override" },
      t("overriddenBy", { who: h.actor, time: when(h.ts, "short"), reason: h.detail }))),
    el("ul", { class: "notes" }, (task.notes || []).map((n) => el("li", {},
      el("span", { class: "quiet" }, `${when(n.ts, "short")} ${n.by}`), " ", n.text))),
    can("duty") ? el("form", { class: "inline-form note-form", onsubmit: (event) => {
      event.preventDefault();
      note(task);
    } },
    field("input", key, { required: true, maxlength: 2000, placeholder: t("noteHint"), "aria-label": t("addNote") }),
    el("button", { type: "submit", disabled: state.busy.has(key) }, t("addNote"))) : null,
    errorOf(key));
}

function card(task) {
  const overdue = isOverdue(task);
  const open = state.expandedTasks.has(task.id);
  const items = task.checklist || [];
  const done = items.filter((i) => i.done).length;
  const late = (Date.now() - task.due / 1e6) / 1000;
  const vendor = task.vendor && ((state.site && state.site.vendors) || []).find((v) => v.id === task.vendor);
  const assigned = task.assignee && assignees.find((a) => a.id === task.assignee);
  const who = [assigned ? assigneeName(assigned) : task.assignee, task.team && named("team", task.team),
    vendor ? pick(vendor.name) : task.vendor]
    .filter(Boolean).join(" · ");
  const place = [task.device_name || task.device, task.building].filter(Boolean).join(" · ");
  return el("article", {
    class: `task priority-${task.priority}${overdue ? " overdue" : ""}`, "data-task": task.id, "data-status": task.status,
  },
  el("button", {
    type: "button", class: "task-title", "aria-expanded": String(open), onclick: () => {
      if (open) state.expandedTasks.delete(task.id);
      else {
        state.expandedTasks.add(task.id);
        readDetail(task.id);
      }
      changed();
    },
  }, el("span", { class: `badge ${task.priority}` }, t(task.priority)), " ", pick(task.title)),
  el("div", { class: "task-meta" },
    el("span", { class: "chip" }, t(`kind_${task.kind}`)),
    el("span", { class: overdue ? "due overdue" : "due" },
      task.status === "verified" ? t("verifiedAt", { time: when(task.closed_at || task.changed_at, "short") })
        : t("dueAt", { time: when(task.due, "short") }),
      overdue ? ` · ${t("overdueBy", { d: duration(late) })}` : ""),
    who ? el("span", {}, who) : null,
    place ? el("span", { class: "quiet" }, place) : null,
    items.length ? el("span", { class: "quiet" }, `☑ ${done}/${items.length}`) : null,
    task.condition_active && task.status !== "verified" ? el("span", { class: "mark" }, t("conditionActive")) : null,
    task.recurrences ? el("span", { class: "mark" }, t("recurrences", { n: task.recurrences })) : null),
  open ? details(task) : null,
  taskActions(task));
}

function newTaskForm() {
  return el("form", { id: "new-task", class: "panel-form", onsubmit: (event) => {
    event.preventDefault();
    createComplaint();
  } },
  el("h3", {}, t("newComplaint")),
  el("label", {}, t("taskTitle"), field("input", "new-title", { required: true, maxlength: 200, placeholder: t("taskTitleHint") })),
  el("label", {}, t("priority"), field("select", "new-priority", { value: "medium" },
    PRIORITIES.map((p) => el("option", { value: p, selected: p === draft("new-priority", "medium") }, t(p))))),
  el("label", {}, t("due"), field("input", "new-due", { type: "datetime-local" })),
  el("label", {}, t("description"), field("textarea", "new-description", { rows: 2, maxlength: 4000 })),
  el("label", {}, t("checklistLines"), field("textarea", "new-checklist", { rows: 2 })),
  el("div", { class: "actions" },
    el("button", { type: "submit", class: "primary", disabled: state.busy.has("new-task") }, t("create")),
    el("button", { type: "button", onclick: () => { state.newTask = false; changed(); } }, t("cancel"))),
  errorOf("new-task"));
}

export function renderTasks() {
  const tasks = [...state.tasks.values()].filter((task) => !state.onlyOverdue || isOverdue(task));
  const board = $("#board");
  board.dataset.show = state.taskColumn;
  const since = Date.now() - VERIFIED_SHOWN_MS;
  board.replaceChildren(...COLUMNS.map((column) => {
    let list = tasks.filter((task) => task.status === column);
    if (column === "verified") {
      list = list.filter((task) => (task.closed_at || task.changed_at) / 1e6 >= since)
        .sort((a, b) => (b.closed_at || b.changed_at) - (a.closed_at || a.changed_at));
    } else {
      list.sort((a, b) => (isOverdue(b) - isOverdue(a)) || (a.due - b.due));
    }
    return el("section", { class: "column", "data-column": column },
      el("h3", {}, t(`status_${column}`), " ", el("span", { class: "count" }, String(list.length))),
      list.length ? list.map(card) : el("p", { class: "quiet" }, t("noTasks")));
  }));
  for (const button of document.querySelectorAll("#task-columns button")) {
    const column = button.dataset.column;
    const n = tasks.filter((task) => task.status === column).length;
    button.textContent = `${t(`status_${column}`)} (${n})`;
    button.setAttribute("aria-pressed", String(column === state.taskColumn));
  }
  $("#new-task-slot").replaceChildren(state.newTask && can("duty") ? newTaskForm() : "");
  $("#new-task-button").hidden = !can("duty") || Boolean(state.newTask);
  toolbarSlot("#tab-tasks .toolbar", "task-exports").replaceChildren(exportButtons("tasks", boardQuery));
  $("#only-overdue").checked = Boolean(state.onlyOverdue);
  const overdue = [...state.tasks.values()].filter(isOverdue).length;
  const count = $("#count-tasks");
  count.textContent = overdue ? String(overdue) : "";
  count.title = overdue ? t("overdueTasks", { n: overdue }) : "";
}
