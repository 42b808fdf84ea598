// The device board: devices by building and system with their live values, units, quality and age
// (a stale value says so, a device that stopped answering is greyed), out-of-service marks, and a
// trend chart of any point over the last hour, day or week; each device's equipment record (设备台账).
import { errorOf } from "./alarms.js";
import { api } from "./api.js";
import { trendChart } from "./chart.js";
import { openRecord, renderEquipment } from "./equipment.js";
import { lang, pick, t } from "./i18n.js";
import { act, can, changed, state } from "./state.js";
import { $, draft, duration, el, field, forget, when } from "./util.js";

const RANGES = { "1h": 3600, "24h": 86_400, "7d": 7 * 86_400 };
const MIN_ZOOM_NS = 60e9;  // zooming stops at a minute: the store keeps nothing finer worth a chart
// The open trend: `range` is the chosen hour/day/week, `whole` its [from, to] in ns, and
// `from`..`to` the time shown (narrower once zoomed), which is what `history` was read for.
const trend = {
  device: null, point: null, range: "24h", history: null, error: "", whole: [0, 0], from: 0, to: 0, loading: false,
};
let trendShown = "";  // what the dialog shows: it is redrawn only when that changes, not at each poll

export async function loadDevices() {
  const list = await api("/devices");
  state.devices = list;
  state.devicesAt = Date.now();
  changed();
}

/** A device came online or went quiet: mark it at once, the values follow with the next read. */
export function deviceStatus(event) {
  const device = state.devices.find((d) => d.id === event.device);
  if (device) {
    device.online = event.online;
    changed();
  }
}

function setOutOfService(device) {
  const key = `oos-reason-${device.id}`;
  return act(`oos-${device.id}`, async () => {
    await api(`/devices/${encodeURIComponent(device.id)}/out-of-service`, { method: "PUT", body: { reason: draft(key).trim() } });
    forget(key);
    state.oosForm = null;
    await loadDevices();
    return true;
  });
}

function backInService(device) {
  return act(`oos-${device.id}`, async () => {
    await api(`/devices/${encodeURIComponent(device.id)}/out-of-service`, { method: "DELETE" });
    await loadDevices();
    return true;
  });
}

/** A point's value as the desk shows it: in its profile's words for that value where it has
 * them (`value_labels`, a bool keyed "true"/"false"), else yes/no, a rounded number, or as sent. */
function shown(value, words) {
  if (value === null || value === undefined) return "—";
  const word = words && words[String(value)];
  if (word) return pick(word);
  if (typeof value === "boolean") return t(value ? "yes" : "no");
  if (typeof value === "number" && !Number.isInteger(value)) return String(+value.toFixed(3));
  return String(value);
}

function pointRow(device, name, p, elapsed) {
  const label = pick(p.label) || name;
  const age = p.age_s === null || p.age_s === undefined ? null : p.age_s + elapsed;
  const quality = p.quality || "no_data";
  return [
    el("dt", {}, label),
    el("dd", { class: `q-${quality}`, "data-point": name },
      el("button", {
        type: "button", class: "value", title: t("showTrend"), onclick: () => openTrend(device, name),
      }, shown(p.value, p.value_labels), p.unit ? el("span", { class: "unit" }, ` ${p.unit}`) : null),
      quality !== "good" ? el("span", { class: "quality" }, t(`q_${quality}`)) : null,
      age !== null ? el("span", { class: "age" }, duration(age)) : null),
  ];
}

function deviceCard(d, elapsed) {
  const oos = d.out_of_service;
  const where = [d.location.floor ? t("atFloor", { f: d.location.floor }) : "", d.location.room].filter(Boolean).join(" · ");
  const key = `oos-${d.id}`;
  let engineer = null;
  if (can("engineer")) {
    if (oos) {
      engineer = el("button", { type: "button", disabled: state.busy.has(key), onclick: () => backInService(d) }, t("backInService"));
    } else if (state.oosForm === d.id) {
      engineer = el("form", { class: "inline-form", onsubmit: (event) => {
        event.preventDefault();
        setOutOfService(d);
      } },
      field("input", `oos-reason-${d.id}`, { required: true, maxlength: 500, placeholder: t("oosReason"), "aria-label": t("oosReason") }),
      el("button", { type: "submit", class: "primary", disabled: state.busy.has(key) }, t("takeOutOfService")),
      el("button", { type: "button", onclick: () => { state.oosForm = null; changed(); } }, t("cancel")));
    } else {
      engineer = el("button", { type: "button", class: "subtle", onclick: () => { state.oosForm = d.id; changed(); } }, t("takeOutOfService"));
    }
  }
  return el("article", { class: `device${d.online === false ? " offline" : ""}${oos ? " oos" : ""}`, "data-device": d.id },
    el("header", {},
      el("h4", {}, d.name || d.id),
      el("span", { class: `chip ${d.online === false ? "down" : "up"}` },
        d.online === false ? t("deviceOffline") : t("deviceOnline"))),
    el("div", { class: "quiet" }, [d.id, where].filter(Boolean).join(" · "),
      d.online === false && d.last_seen ? ` · ${t("lastSeen", { time: when(d.last_seen, "short") })}` : ""),
    oos ? el("div", { class: "oos-note" }, t("state_out_of_service"), ": ", oos.reason || "",
      oos.by ? ` (${oos.by}, ${when(oos.since, "short")})` : "") : null,
    el("dl", {}, Object.entries(d.points || {}).flatMap(([name, p]) => pointRow(d, name, p, elapsed))),
    el("div", { class: "device-actions" },
      el("button", { type: "button", class: "record", onclick: () => openRecord(d, { trend: openTrend }) }, t("eqOpen")),
      engineer),
    errorOf(key));
}

export function renderDevices() {
  const elapsed = (Date.now() - state.devicesAt) / 1000;
  const building = state.deviceBuilding || "";
  const system = state.deviceSystem || "";
  const devices = state.devices.filter((d) => (!building || d.location.building === building) && (!system || d.system === system));
  const groups = new Map();
  for (const d of devices) {
    const b = d.location.building || "";
    if (!groups.has(b)) groups.set(b, new Map());
    const systems = groups.get(b);
    const s = d.system || "other";
    if (!systems.has(s)) systems.set(s, []);
    systems.get(s).push(d);
  }
  const buildings = [...groups.keys()].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  $("#devices").replaceChildren(...buildings.map((b) => el("section", { class: "building", "data-building": b },
    el("h3", {}, b ? t("atBuilding", { b }) : t("noBuilding")),
    [...groups.get(b).entries()].sort(([x], [y]) => x.localeCompare(y)).map(([s, list]) => el("div", { class: "system", "data-system": s },
      el("h4", {}, t(`system_${s}`)),
      el("div", { class: "device-grid" }, list.map((d) => deviceCard(d, elapsed))))))));
  if (!devices.length) $("#devices").replaceChildren(el("p", { class: "quiet" }, t("noDevices")));
  renderFilters();
  renderTrend();
  renderEquipment();
  const ledgerError = state.errors.get("ledger") || "";
  $("#ledger-error").textContent = ledgerError;
  $("#ledger-error").hidden = !ledgerError;
}

let filtersShown = "";

function renderFilters() {
  const site = state.site || {};
  const buildings = site.buildings || [...new Set(state.devices.map((d) => d.location.building).filter(Boolean))].sort();
  const systems = site.systems || [...new Set(state.devices.map((d) => d.system).filter(Boolean))].sort();
  const signature = JSON.stringify([buildings, systems, lang(), state.deviceBuilding, state.deviceSystem]);
  if (signature === filtersShown) return;  // an open drop-down is not rebuilt under the pointer
  filtersShown = signature;
  const fill = (select, values, label, chosen) => {
    select.replaceChildren(el("option", { value: "" }, label),
      ...values.map((v) => el("option", { value: v, selected: v === chosen }, label === t("allSystems") ? t(`system_${v}`) : t("atBuilding", { b: v }))));
  };
  fill($("#device-building"), buildings, t("allBuildings"), state.deviceBuilding || "");
  fill($("#device-system"), systems, t("allSystems"), state.deviceSystem || "");
}

// ---- Trend of one point

async function openTrend(device, point, range = trend.range) {
  Object.assign(trend, { device, point, range });
  const dialog = $("#trend");
  if (!dialog.open) dialog.showModal();
  const to = Date.now() * 1e6;
  trend.whole = [to - RANGES[range] * 1e9, to];
  await showTime(...trend.whole);
}

/** Read and draw the trend over [fromNs, toNs]: zooming reads again, so a narrower time shows finer
 * buckets rather than the same few points spread wider. */
async function showTime(fromNs, toNs) {
  const { device, point } = trend;
  Object.assign(trend, { history: null, error: "", loading: true, from: fromNs, to: toNs });
  renderTrend();
  const query = new URLSearchParams({
    since: new Date(fromNs / 1e6).toISOString(), until: new Date(toNs / 1e6).toISOString(), max_samples: "500",
  });
  try {
    const history = await api(`/devices/${encodeURIComponent(device.id)}/points/${encodeURIComponent(point)}/history?${query}`);
    if (trend.device !== device || trend.point !== point || trend.from !== fromNs || trend.to !== toNs) return;
    trend.history = history;
  } catch (err) {
    trend.error = err.message;
  }
  trend.loading = false;
  renderTrend();
}

/** Zoom by `factor` (0.5 in, 2 out) within the chosen range: about the latest time while that is
 * shown (what a duty officer is after), else about the middle of the time shown. */
function zoom(factor) {
  const [first, last] = trend.whole;
  const span = Math.min(last - first, Math.max(MIN_ZOOM_NS, (trend.to - trend.from) * factor));
  const end = trend.to === last ? last : Math.min(last, Math.max(first + span, (trend.from + trend.to + span) / 2));
  showTime(end - span, end);
}

const zoomed = () => trend.from > trend.whole[0] || trend.to < trend.whole[1];

export function closeTrend() {
  trend.device = null;
  const dialog = $("#trend");
  if (dialog.open) dialog.close();
}

function renderTrend() {
  const dialog = $("#trend");
  if (!trend.device || !dialog.open) {
    trendShown = "";
    return;
  }
  const width = dialog.clientWidth - 32;  // the dialog's padding: the chart is drawn at its shown size
  const signature = JSON.stringify([trend.device.id, trend.point, trend.range, trend.from, trend.to, trend.loading,
    trend.error, trend.history && trend.history.samples && trend.history.samples.length, width, lang()]);
  if (signature === trendShown && !trend.loading) return;
  trendShown = signature;
  const spec = trend.device.points[trend.point] || {};
  const label = pick(spec.label) || trend.point;
  const title = `${trend.device.name || trend.device.id} · ${label}`;
  let body;
  if (trend.loading) body = el("p", { class: "quiet" }, t("loading"));
  else if (trend.error) body = el("p", { class: "error", role: "alert" }, trend.error);
  else {
    const unit = trend.history.unit ?? spec.unit ?? "";
    const chart = trendChart(trend.history, trend.from, trend.to, unit, { title }, {
      width, onZoom: (from, to) => showTime(from, Math.max(to, from + MIN_ZOOM_NS)),
    });
    const samples = trend.history.samples || [];
    const numbers = samples.filter((s) => typeof s.mean === "number");
    const summary = numbers.length ? t("trendSummary", {
      min: shown(Math.min(...numbers.map((s) => s.min ?? s.mean))),
      max: shown(Math.max(...numbers.map((s) => s.max ?? s.mean))),
      n: numbers.reduce((sum, s) => sum + (s.count || 1), 0),
      unit,
    }) : "";
    body = chart ? [chart, el("p", { class: "quiet" }, summary,
      trend.history.bucket_s ? ` · ${t("bucket", { d: duration(trend.history.bucket_s) })}` : "")]
      : el("p", { class: "quiet" }, t("noHistory"));
  }
  dialog.replaceChildren(
    el("header", {}, el("h2", {}, title),
      el("button", { type: "button", class: "close", "aria-label": t("close"), onclick: closeTrend }, "×")),
    el("div", { class: "ranges", role: "group" }, Object.keys(RANGES).map((r) => el("button", {
      type: "button", "data-range": r, "aria-pressed": String(r === trend.range), onclick: () => openTrend(trend.device, trend.point, r),
    }, t(`range_${r}`))),
    el("span", { class: "spacer" }),
    el("button", { type: "button", class: "zoom-in", disabled: trend.to - trend.from <= MIN_ZOOM_NS, onclick: () => zoom(0.5) }, t("zoomIn")),
    el("button", { type: "button", class: "zoom-out", disabled: !zoomed(), onclick: () => zoom(2) }, t("zoomOut")),
    el("button", { type: "button", class: "zoom-reset", disabled: !zoomed(), onclick: () => showTime(...trend.whole) }, t("zoomReset"))),
    el("div", { class: "chart" }, body),
    el("p", { class: "quiet zoom-hint" }, t("zoomHint")));
}
