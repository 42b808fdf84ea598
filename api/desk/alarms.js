// The live alarm list, its banners (unacknowledged emergencies, alarm flood, open plans) and the
// one-click actions: acknowledge, shelve (reason and minutes from a small inline form), unshelve.
//
// An alarm raised while the ops store is down comes as a provisional event (`recorded: false`, no
// id): it is listed at once, marked "not yet recorded", with no actions (there is nothing to act on
// yet), until the recorded alarm of the same rule and device replaces it.
import { api } from "./api.js";
import { exportButtons, toolbarSlot } from "./files.js";
import { pick, t } from "./i18n.js";
import { act, can, changed, placed, state } from "./state.js";
import { $, draft, el, field, forget, when } from "./util.js";

export const PRIORITIES = ["emergency", "high", "medium", "low"];
const RANK = { emergency: 0, high: 1, medium: 2, low: 3 };
const MAX_SHELVE_MIN = 1440;

/** Not yet acknowledged and not kept from the desk (shelved, suppressed, out of service). */
const needsAttention = (a) => a.state === "unacknowledged" || a.state === "rtn_unacknowledged";

export function unackedEmergencies() {
  return [...state.alarms.values()].filter((a) => a.priority === "emergency" && needsAttention(a));
}

/** Raised, shown, but not yet in the ops store: it has no id and cannot be acted on. */
export const isProvisional = (a) => a.recorded === false;
const provisionalKey = (a) => `provisional:${a.rule}/${a.device}`;

/** Whether recorded alarm `a` is the one provisional alarm `p` stood for (at most one alarm is open
 * per rule and device): an active one, or one changed since `p` was raised. */
const records = (a, p) => a.rule === p.rule && a.device === p.device && (a.active || a.changed_at >= p.changed_at);

function deskOrder(a, b) {
  return (needsAttention(b) - needsAttention(a)) || (RANK[a.priority] - RANK[b.priority]) || (b.changed_at - a.changed_at);
}

// ---- Data

export async function loadAlarms() {
  const page = await api("/alarms?limit=500");
  const waiting = [...state.alarms.values()].filter((p) => isProvisional(p) && !page.items.some((a) => records(a, p)));
  state.alarms = new Map([...page.items.map((a) => [a.id, a]), ...waiting.map((p) => [provisionalKey(p), p])]);
  state.alarmTotal = page.total;
  if (state.alarmView === "closed") await loadClosed();
  changed();
}

export async function loadClosed() {
  const page = await api("/alarms?open=false&state=normal&sort=-changed_at&limit=200");
  state.closedAlarms = new Map(page.items.map((a) => [a.id, a]));
  changed();
}

export async function loadFlood() {
  state.flood = await api("/alarms/flood");
  changed();
}

export async function loadPlans() {
  const list = await api("/plans?open=true");
  state.plans = new Map(list.map((p) => [p.id, p]));
  changed();
}

/** An alarm from an event or an action's answer; an older copy never replaces a newer one. */
export function upsertAlarm(record) {
  const alarm = placed(record);
  if (isProvisional(alarm) && alarm.spread) {  // a spread while the store is down: the recorded row grows
    const standing = [...state.alarms.values()].find(
      (a) => !isProvisional(a) && a.active && a.rule === alarm.rule && a.device === alarm.device);
    if (standing) {
      state.alarms.set(standing.id, { ...standing, title: alarm.title, message: alarm.message, changed_at: alarm.changed_at });
      changed();
      return;
    }
  }
  if (isProvisional(alarm)) {
    state.alarms.set(provisionalKey(alarm), alarm);
    changed();
    return;
  }
  const stood = state.alarms.get(provisionalKey(alarm));
  if (stood && records(alarm, stood)) state.alarms.delete(provisionalKey(alarm));
  const known = state.alarms.get(alarm.id) || (state.closedAlarms && state.closedAlarms.get(alarm.id));
  if (known && known.changed_at > alarm.changed_at) return;
  if (alarm.state === "normal") {
    if (state.alarms.delete(alarm.id)) state.alarmTotal = Math.max(0, (state.alarmTotal || 1) - 1);
    if (state.closedAlarms) state.closedAlarms.set(alarm.id, alarm);
  } else {
    if (!state.alarms.has(alarm.id)) state.alarmTotal = (state.alarmTotal || 0) + 1;
    state.alarms.set(alarm.id, alarm);
    if (state.closedAlarms) state.closedAlarms.delete(alarm.id);
  }
  if (state.detail && state.detail.id === alarm.id) state.detail.alarm = { ...state.detail.alarm, ...alarm };
  changed();
}

export function upsertPlan(record) {
  const plan = placed(record);
  if (plan.state === "open") state.plans.set(plan.id, plan);
  else state.plans.delete(plan.id);
  if (state.detail && state.detail.plan && state.detail.plan.id === plan.id) state.detail.plan = plan;
  changed();
}

// ---- Actions (duty and above)

function acknowledge(id) {
  return act(`ack-${id}`, async () => {
    upsertAlarm(await api(`/alarms/${id}/ack`, { method: "POST" }));
    return true;
  });
}

async function shelve(id) {
  const reason = draft(`shelve-reason-${id}`).trim();
  const minutes = Number(draft(`shelve-minutes-${id}`, "60"));
  const done = await act(`shelve-${id}`, async () => {
    upsertAlarm(await api(`/alarms/${id}/shelve`, { method: "POST", body: { reason, minutes } }));
    return true;
  });
  if (done) {
    state.shelving = null;
    forget(`shelve-reason-${id}`, `shelve-minutes-${id}`);
    changed();
  }
}

function unshelve(id) {
  return act(`unshelve-${id}`, async () => {
    upsertAlarm(await api(`/alarms/${id}/unshelve`, { method: "POST" }));
    return true;
  });
}

// ---- Rendering

export function stateLabel(a) {
  return t(`state_${a.state}`);
}

/** Marks for what the state alone does not say; the shelve reason is shown, not left to a tooltip
 * (the detail names it among its facts instead, `withReason: false`). */
export function marks(a, { withReason = true } = {}) {
  const out = [];
  if (a.shelved) {
    const until = a.shelved_until ? t("shelvedUntil", { time: when(a.shelved_until, "short") }) : t("state_shelved");
    out.push(el("span", { class: "mark shelved" }, until));
    if (withReason && a.shelve_reason) out.push(el("div", { class: "shelve-reason" }, t("shelvedBecause", { reason: a.shelve_reason })));
  }
  if (a.suppressed && a.state !== "suppressed") out.push(el("span", { class: "mark suppressed" }, t("state_suppressed")));
  if (a.out_of_service && a.state !== "out_of_service") out.push(el("span", { class: "mark oos" }, t("state_out_of_service")));
  if (a.chattering) out.push(el("span", { class: "mark chattering" }, t("chattering")));
  if (a.escalated) out.push(el("span", { class: "mark escalated" }, t("escalated")));
  if (isProvisional(a)) out.push(el("span", { class: "mark late unrecorded", title: t("notRecordedHint") }, t("notRecorded")));
  if (["shelved", "suppressed", "out_of_service"].includes(a.state)) {
    out.push(el("span", { class: "mark" }, t(a.active ? "stillActive" : "cleared")));
    if (!a.acknowledged) out.push(el("span", { class: "mark" }, t("state_unacknowledged")));
  }
  return out;
}

export function errorOf(key) {
  const message = state.errors.get(key);
  return message ? el("p", { class: "error", role: "alert" }, message) : null;
}

/** Acknowledge / shelve / unshelve buttons for an alarm, with their errors; nothing for a viewer. */
export function alarmActions(a) {
  if (!can("duty") || a.state === "normal" || isProvisional(a)) return [];
  const stop = (fn) => (event) => {
    event.stopPropagation();
    fn();
  };
  const buttons = [];
  if (!a.acknowledged) {
    buttons.push(el("button", {
      type: "button", class: "ack primary", disabled: state.busy.has(`ack-${a.id}`), onclick: stop(() => acknowledge(a.id)),
    }, t("ack")));
  }
  if (a.shelved) {
    buttons.push(el("button", {
      type: "button", class: "unshelve", disabled: state.busy.has(`unshelve-${a.id}`), onclick: stop(() => unshelve(a.id)),
    }, t("unshelve")));
  } else if (state.shelving !== a.id) {
    buttons.push(el("button", {
      type: "button", class: "shelve", onclick: stop(() => {
        state.shelving = a.id;
        changed();
      }),
    }, t("shelve")));
  }
  return [
    el("div", { class: "actions" }, buttons),
    errorOf(`ack-${a.id}`), errorOf(`unshelve-${a.id}`),
  ];
}

export function shelveForm(a) {
  const submit = (event) => {
    event.preventDefault();
    shelve(a.id);
  };
  return el("form", { class: "shelve-form", onsubmit: submit, onclick: (e) => e.stopPropagation() },
    el("label", {}, t("shelveReason"),
      field("input", `shelve-reason-${a.id}`, { name: "reason", required: true, maxlength: 500, placeholder: t("shelveReasonHint") })),
    el("label", {}, t("shelveMinutes"),
      field("input", `shelve-minutes-${a.id}`, { name: "minutes", type: "number", min: 1, max: MAX_SHELVE_MIN, step: 1, value: "60", required: true })),
    el("button", { type: "submit", class: "primary", disabled: state.busy.has(`shelve-${a.id}`) }, t("shelve")),
    el("button", { type: "button", onclick: () => {
      state.shelving = null;
      state.errors.delete(`shelve-${a.id}`);
      changed();
    } }, t("cancel")),
    errorOf(`shelve-${a.id}`));
}

/** Building and system of an alarm, each named as such: "B1" alone reads as a floor or a building. */
export function where(a) {
  return [a.building ? t("atBuilding", { b: a.building }) : "", a.system ? t(`system_${a.system}`) : ""].filter(Boolean).join(" · ");
}

function row(a) {
  const attention = needsAttention(a);
  const open = isProvisional(a) ? () => {} : () => openAlarm(a.id);  // no record to open yet
  const tr = el("tr", {
    class: `alarm priority-${a.priority} state-${a.state}${attention ? " attention" : ""}${isProvisional(a) ? " provisional" : ""}`,
    "data-alarm": isProvisional(a) ? provisionalKey(a) : a.id, tabindex: 0,
    onclick: open,
    onkeydown: (event) => { if (event.key === "Enter" && event.target === tr) open(); },
  },
  el("td", { class: "priority" },
    attention ? el("span", { class: "marker", title: t("state_unacknowledged") }, "●") : null,
    el("span", { class: `badge ${a.priority}` }, t(a.priority))),
  el("td", { class: "state-cell" }, el("span", { class: "state" }, stateLabel(a)), el("div", { class: "marks" }, marks(a))),
  el("td", { class: "what" }, el("div", { class: "title" }, pick(a.title)), el("div", { class: "quiet" }, pick(a.message))),
  el("td", { class: "where" }, el("div", {}, a.device_name || a.device), el("div", { class: "quiet" }, where(a))),
  el("td", { class: "when" }, when(a.raised_at, "short")),
  el("td", { class: "act" }, alarmActions(a)));
  const rows = [tr];
  if (state.shelving === a.id && can("duty")) {
    rows.push(el("tr", { class: "shelve-row" }, el("td", { colspan: 6 }, shelveForm(a))));
  }
  return rows;
}

let openAlarm = () => {};

/** Set what clicking an alarm does (the detail panel). */
export function onOpenAlarm(open) {
  openAlarm = open;
}

// The alarm views as the export's filters: open ones not shelved, shelved ones, closed ones.
const OPEN_NOT_SHELVED = ["unacknowledged", "acknowledged", "rtn_unacknowledged", "suppressed", "out_of_service"];
const VIEW_QUERY = {
  open: OPEN_NOT_SHELVED.map((s) => `state=${s}`).join("&"),
  shelved: "state=shelved",
  closed: "open=false&state=normal&sort=-changed_at",
};

function shownAlarms() {
  if (state.alarmView === "closed") {
    return [...(state.closedAlarms ? state.closedAlarms.values() : [])].sort((a, b) => b.changed_at - a.changed_at);
  }
  const shelved = state.alarmView === "shelved";
  return [...state.alarms.values()].filter((a) => Boolean(a.shelved) === shelved).sort(deskOrder);
}

export function renderAlarms() {
  const list = shownAlarms();
  $("#alarms tbody").replaceChildren(...list.flatMap(row));
  const open = [...state.alarms.values()];
  const recorded = open.filter((a) => !isProvisional(a)).length;
  const counts = {
    open: open.filter((a) => !a.shelved).length,
    shelved: open.filter((a) => a.shelved).length,
  };
  for (const button of document.querySelectorAll("#alarm-views button")) {
    const view = button.dataset.view;
    button.setAttribute("aria-pressed", String(view === state.alarmView));
    const n = counts[view];
    button.textContent = n === undefined ? t(`view_${view}`) : `${t(`view_${view}`)} (${n})`;
  }
  const empty = $("#no-alarms");
  empty.hidden = list.length > 0;
  empty.textContent = t(state.alarmView === "open" ? "noAlarms" : state.alarmView === "shelved" ? "noShelved" : "noClosed");
  const total = state.alarmTotal || 0;
  $("#alarm-more").hidden = !(state.alarmView !== "closed" && total > recorded);
  $("#alarm-more").textContent = t("moreAlarms", { shown: recorded, total });
  const attention = open.filter(needsAttention).length;
  $("#count-alarms").textContent = attention ? String(attention) : "";
  toolbarSlot("#tab-alarms .toolbar", "alarm-exports").replaceChildren(exportButtons("alarms", () => VIEW_QUERY[state.alarmView]));
  renderPlansStrip();
}

function renderPlansStrip() {
  const plans = [...state.plans.values()].sort((a, b) => a.opened_at - b.opened_at);
  const strip = $("#plans-strip");
  strip.hidden = plans.length === 0;
  strip.replaceChildren(el("h3", {}, t("openPlans")), ...plans.map((p) => {
    const done = p.steps.filter((s) => s.done_at).length;
    const overdue = p.steps.filter((s) => s.overdue).length;
    return el("button", {
      type: "button", class: `plan-chip${overdue ? " overdue" : ""}`, "data-plan": p.id, onclick: () => openAlarm(p.alarm),
    }, pick(p.title), " · ", `${done}/${p.steps.length}`, overdue ? ` · ${t("stepsOverdue", { n: overdue })}` : "");
  }));
}

// Whether the emergency banner lists its alarms or shows only their count: on a phone the list would
// take half the screen on every tab, so it starts folded there (colour, pulse and sound stay).
let bannerOpen = null;
const PHONE = window.matchMedia("(max-width: 700px)");
const bannerExpanded = () => (bannerOpen === null ? !PHONE.matches : bannerOpen);

export function renderBanners(alert) {
  const emergencies = unackedEmergencies().sort((a, b) => b.changed_at - a.changed_at);
  const banner = $("#emergency-banner");
  banner.hidden = emergencies.length === 0;
  if (emergencies.length) {
    const items = emergencies.slice(0, 3).map((a) => el("li", { "data-alarm": isProvisional(a) ? provisionalKey(a) : a.id },
      isProvisional(a)
        ? el("span", {}, `${pick(a.title)} · ${a.device_name || a.device} · ${when(a.raised_at, "clock")} · ${t("notRecorded")}`)
        : el("button", { type: "button", class: "link-button", onclick: () => openAlarm(a.id) },
          `${pick(a.title)} · ${a.device_name || a.device} · ${when(a.raised_at, "clock")}`),
      can("duty") && !isProvisional(a) ? el("button", {
        type: "button", class: "ack", disabled: state.busy.has(`ack-${a.id}`), onclick: () => acknowledge(a.id),
      }, t("ack")) : null,
      errorOf(`ack-${a.id}`)));
    if (emergencies.length > 3) items.push(el("li", {}, t("andMore", { n: emergencies.length - 3 })));
    const status = alert.status;
    const expanded = bannerExpanded();
    banner.classList.toggle("folded", !expanded);
    banner.replaceChildren(...[
      el("div", { class: "banner-head" },
        el("button", {
          type: "button", id: "emergency-toggle", class: "link-button", "aria-expanded": String(expanded),
          "aria-label": t(expanded ? "hideEmergencies" : "showEmergencies"),
          onclick: () => {
            bannerOpen = !expanded;
            changed();
          },
        }, el("strong", {}, expanded ? t("emergencyBanner", { n: emergencies.length }) : t("emergencyCount", { n: emergencies.length })),
        ` ${expanded ? "▾" : "▸"}`),
        el("div", { class: "sound" },
        status === "sounding" ? el("button", { type: "button", id: "silence", onclick: () => alert.silence() }, t("silence")) : null,
        status === "blocked" ? el("button", { type: "button", id: "enable-sound", onclick: () => alert.unlock() }, t("enableSound")) : null,
        status === "silenced" ? el("span", { class: "quiet-note" }, t("silenced")) : null)),
      expanded ? el("ul", {}, items) : null,
    ].filter(Boolean));
  }
  const flood = $("#flood-banner");
  flood.hidden = !state.flood.active;
  if (state.flood.active) {
    flood.textContent = t("floodBanner", { n: state.flood.count ?? "?", time: state.flood.since ? when(state.flood.since, "clock") : "" });
  }
}
