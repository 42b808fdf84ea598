// One alarm in full: its facts, its history and comments, and the emergency plan it opened, whose
// steps are ticked here (with a note) against their time limits, with photos and files taken from
// a phone while working them.
import { alarmActions, errorOf, marks, shelveForm, stateLabel, upsertAlarm, upsertPlan, where } from "./alarms.js";
import { api } from "./api.js";
import { fileList } from "./files.js";
import { actionWord, named, pick, t } from "./i18n.js";
import { act, can, changed, state } from "./state.js";
import { $, draft, duration, el, field, fill, forget, when } from "./util.js";

let reloadTimer = null;

export async function openDetail(id) {
  state.detail = { id, alarm: state.alarms.get(id) || null, plan: null, error: "" };
  changed();
  await loadDetail();
  const panel = $("#detail");
  if (panel && !panel.hidden) panel.focus();
}

export function closeDetail() {
  state.detail = null;
  changed();
}

/** Read the alarm (with its history) and its plan again. */
export async function loadDetail() {
  const id = state.detail && state.detail.id;
  if (id === undefined || id === null) return;
  try {
    const alarm = await api(`/alarms/${id}`);
    const plan = alarm.plan ? await api(`/plans/${alarm.plan}`) : null;
    if (!state.detail || state.detail.id !== id) return;
    state.detail.alarm = alarm;
    state.detail.plan = plan;
    state.detail.error = "";
  } catch (err) {
    if (state.detail && state.detail.id === id) state.detail.error = err.message;
  }
  changed();
}

/** An event touched the open alarm: read its history again, once per burst. */
export function detailTouched(alarmId) {
  if (!state.detail || state.detail.id !== alarmId) return;
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(loadDetail, 300);
}

function comment(id) {
  const key = `comment-${id}`;
  const text = draft(key).trim();
  return act(key, async () => {
    upsertAlarm(await api(`/alarms/${id}/comments`, { method: "POST", body: { text } }));
    forget(key);
    await loadDetail();
    return true;
  });
}

function tick(plan, step) {
  const key = `step-${plan.id}-${step.id}`;
  return act(key, async () => {
    upsertPlan(await api(`/plans/${plan.id}/steps/${encodeURIComponent(step.id)}`, {
      method: "POST", body: { note: draft(`note-${key}`).trim() },
    }));
    forget(`note-${key}`);
    return true;
  });
}

function closePlan(plan) {
  return act(`close-plan-${plan.id}`, async () => {
    upsertPlan(await api(`/plans/${plan.id}/close`, { method: "POST" }));
    state.confirmClosePlan = null;
    return true;
  });
}

function fact(label, value) {
  return value ? [el("dt", {}, label), el("dd", {}, value)] : [];
}

function renderStep(plan, step, now) {
  const key = `step-${plan.id}-${step.id}`;
  const done = Boolean(step.done_at);
  const overdue = !done && (step.overdue || (plan.state === "open" && now >= step.due_at / 1e6));
  const left = (step.due_at / 1e6 - now) / 1000;
  const due = done ? "" : overdue ? t("stepLate", { d: duration(-left) }) : t("stepLeft", { d: duration(left) });
  const body = [
    el("div", { class: "step-text" }, pick(step.text)),
    el("div", { class: "quiet" }, t("stepDue", { time: when(step.due_at, "clock") }), due ? ` · ${due}` : ""),
  ];
  if (done) {
    body.push(el("div", { class: "step-done" },
      "✓ ", t("doneBy", { who: step.done_by || "", time: when(step.done_at, "clock") }),
      step.late ? el("span", { class: "mark late" }, t("late")) : null,
      step.note ? el("div", { class: "note" }, step.note) : null));
  } else if (plan.state === "open" && can("duty")) {
    body.push(el("form", { class: "step-form", onsubmit: (event) => {
      event.preventDefault();
      tick(plan, step);
    } },
    field("input", `note-${key}`, { placeholder: t("stepNote"), maxlength: 1000, "aria-label": t("stepNote") }),
    el("button", { type: "submit", class: "primary", disabled: state.busy.has(key) }, t("stepDone"))));
    body.push(errorOf(key));
  }
  const files = step.attachments || [];
  if (files.length || can("duty")) {
    const path = `/plans/${plan.id}/steps/${encodeURIComponent(step.id)}/attachments`;
    body.push(fileList(`attach-${key}`, path, files, loadDetail));
  }
  return el("li", { class: `step${done ? " done" : ""}${overdue ? " overdue" : ""}`, "data-step": step.id }, body);
}

function renderPlan(plan) {
  const now = Date.now();
  const done = plan.steps.filter((s) => s.done_at).length;
  const closing = state.confirmClosePlan === plan.id;
  return el("section", { class: `plan plan-${plan.state}`, "data-plan": plan.id },
    el("h3", {}, t("plan"), ": ", pick(plan.title), " ",
      el("span", { class: "quiet" }, `${done}/${plan.steps.length}`, plan.state === "closed" ? ` · ${t("planClosed")}` : "")),
    el("ol", { class: "steps" }, plan.steps.map((s) => renderStep(plan, s, now))),
    plan.state === "open" && can("duty") ? el("div", { class: "actions" },
      closing
        ? [el("span", {}, t("closePlanSure")),
          el("button", { type: "button", class: "danger", onclick: () => closePlan(plan) }, t("closePlan")),
          el("button", { type: "button", onclick: () => { state.confirmClosePlan = null; changed(); } }, t("cancel"))]
        : el("button", { type: "button", onclick: () => { state.confirmClosePlan = plan.id; changed(); } }, t("closePlan")))
      : null,
    errorOf(`close-plan-${plan.id}`));
}

function historyLine(h) {
  const action = actionWord(h.action);
  return el("li", { class: h.action === "comment" ? "comment" : "" },
    el("span", { class: "quiet" }, when(h.ts, "short")), " ",
    el("strong", {}, action), " ", h.actor ? el("span", {}, named("actor", h.actor)) : null,
    h.detail ? el("div", { class: h.action === "comment" ? "note" : "quiet" }, pick(h.text) || h.detail) : null);
}

export function renderDetail() {
  const panel = $("#detail");
  const detail = state.detail;
  panel.hidden = !detail;
  document.body.classList.toggle("detail-open", Boolean(detail));
  if (!detail) {
    panel.replaceChildren();
    return;
  }
  const a = detail.alarm;
  const close = el("button", { type: "button", class: "close", "aria-label": t("close"), onclick: closeDetail }, "×");
  if (!a) {
    fill(panel, el("header", {}, el("h2", {}, t("alarm")), close), errorOrLoading(detail));
    return;
  }
  const commentKey = `comment-${a.id}`;
  const history = (a.history || []).slice().reverse();
  fill(panel,
    el("header", { class: `priority-${a.priority}` },
      el("span", { class: `badge ${a.priority}` }, t(a.priority)), el("h2", {}, pick(a.title)), close),
    detail.error ? el("p", { class: "error", role: "alert" }, detail.error) : null,
    el("p", {}, pick(a.message)),
    el("dl", { class: "facts" },
      fact(t("state"), el("span", {}, el("span", { class: "state" }, stateLabel(a)), " ", marks(a, { withReason: false }))),
      fact(t("device"), `${a.device_name || a.device} (${a.device})`),
      fact(t("where"), where(a)),
      fact(t("raised"), when(a.raised_at)),
      fact(t("acked"), a.acked_at ? `${when(a.acked_at)} · ${a.acked_by || ""}` : ""),
      fact(t("clearedAt"), a.cleared_at && !a.active ? when(a.cleared_at) : ""),
      fact(t("shelveReason"), a.shelved ? el("span", { class: "shelve-reason" }, [a.shelve_reason, a.shelved_by].filter(Boolean).join(" · ")) : "")),
    alarmActions(a),
    state.shelving === a.id && can("duty") ? shelveForm(a) : null,
    detail.plan ? renderPlan(detail.plan) : null,
    el("section", { class: "comments" },
      el("h3", {}, t("history")),
      can("duty") ? el("form", { class: "comment-form", onsubmit: (event) => {
        event.preventDefault();
        comment(a.id);
      } },
      field("textarea", commentKey, { rows: 2, maxlength: 2000, placeholder: t("commentHint"), "aria-label": t("addComment") }),
      el("button", { type: "submit", disabled: state.busy.has(commentKey) }, t("addComment")),
      errorOf(commentKey)) : null,
      el("ol", { class: "history" }, history.map(historyLine))));
}

function errorOrLoading(detail) {
  return detail.error ? el("p", { class: "error", role: "alert" }, detail.error) : el("p", { class: "quiet" }, t("loading"));
}
