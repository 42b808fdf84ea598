// Equipment records (设备台账) on the desk: a device's record (nameplate, purchase, maintenance
// contract, exact location) with its whole history of alarms, tasks and service, newest first; an
// edit form for engineers; a printable device card; and the ledger of every device the user may see
// as an Excel or CSV download.
import { openDetail } from "./detail.js";
import { api } from "./api.js";
import { saveFile } from "./files.js";
import { actionWord, lang, named, pick, t } from "./i18n.js";
import { can, changed, state } from "./state.js";
import { $, el, fill, siteDate, when } from "./util.js";

const HISTORY_PAGE = 50;
const CARD_HISTORY = 10;  // the printed card keeps the latest entries: a card, not an archive
// The record's fields as the form and the card show them: [field, word, input type].
const FIELDS = [
  ["model", "eq_model", "text"], ["manufacturer", "eq_manufacturer", "text"],
  ["serial_number", "eq_serial_number", "text"], ["install_date", "eq_install_date", "date"],
  ["warranty_end", "eq_warranty_end", "date"], ["vendor", "eq_vendor", "vendor"],
  ["contract", "eq_contract", "text"], ["contract_end", "eq_contract_end", "date"],
  ["location", "eq_location", "text"], ["notes", "eq_notes", "notes"],
];
const LIMITS = { location: 500, notes: 4000 };  // other text: 200, as the server takes it
const ENDS = ["warranty_end", "contract_end"];  // may not come before the install date

// The open record: the device (from the board), its record and history pages as read.
const open = { device: null, record: null, history: [], total: 0, editing: false, error: "", loading: false };
let shown = "";  // what the dialog shows: redrawn only when that changes, not at each poll of the board

export async function openRecord(device, { trend } = {}) {
  Object.assign(open, { device, record: null, history: [], total: 0, editing: false, error: "", loading: true, trend });
  const dialog = $("#equipment");
  if (!dialog.open) dialog.showModal();
  shown = "";
  renderEquipment();
  try {
    const id = encodeURIComponent(device.id);
    const [record, history] = await Promise.all([api(`/devices/${id}/record`), api(`/devices/${id}/history?limit=${HISTORY_PAGE}`)]);
    if (open.device !== device) return;
    Object.assign(open, { record, history: history.items, total: history.total });
  } catch (err) {
    open.error = err.message;
  }
  open.loading = false;
  shown = "";
  renderEquipment();
}

export function closeRecord() {
  open.device = null;
  const dialog = $("#equipment");
  if (dialog.open) dialog.close();
  fill($("#device-card"));
}

async function moreHistory() {
  const id = encodeURIComponent(open.device.id);
  try {
    const page = await api(`/devices/${id}/history?limit=${HISTORY_PAGE}&offset=${open.history.length}`);
    open.history.push(...page.items);
    open.total = page.total;
  } catch (err) {
    open.error = err.message;
  }
  shown = "";
  renderEquipment();
}

async function save(form) {
  const body = Object.fromEntries(FIELDS.map(([key, , type]) => {
    const value = form.elements[key].value.trim();
    return [key, type === "date" && !value ? null : value];
  }));
  const late = ENDS.find((key) => body.install_date && body[key] && body[key] < body.install_date);
  if (late) {
    open.error = t("eqEndsBeforeInstall", { field: t(`eq_${late}`) });
  } else {
    try {
      open.record = await api(`/devices/${encodeURIComponent(open.device.id)}/record`, { method: "PUT", body });
      open.editing = false;
      open.error = "";
      await refreshHistory();  // the save is in the history now
    } catch (err) {
      open.error = err.message;
    }
  }
  shown = "";
  renderEquipment();
}

async function refreshHistory() {
  const page = await api(`/devices/${encodeURIComponent(open.device.id)}/history?limit=${HISTORY_PAGE}`);
  Object.assign(open, { history: page.items, total: page.total });
}

/** The ledger of every device the user may see, in the desk's language. */
export async function exportLedger(format) {
  state.errors.delete("ledger");
  try {
    const name = `equipment-${(state.site && state.site.id) || "site"}-${siteDate(0)}.${format}`;
    await saveFile(`/equipment?format=${format}&lang=${lang()}`, name);
  } catch (err) {
    state.errors.set("ledger", err.message);
  }
  changed();
}

// ---- Rendering

const vendors = () => (state.site && state.site.vendors) || [];

function vendorShown(record) {
  if (!record.vendor) return "";
  return record.vendor_name ? pick(record.vendor_name) : record.vendor;
}

function valueOf(record, key) {
  if (key === "vendor") return vendorShown(record);
  return record[key] || "";
}

/** Marks a duty officer acts on: a warranty or contract that has run out. */
function expiry(record, key) {
  const day = record[key];
  if (!day || !ENDS.includes(key) || day >= siteDate(0)) return null;
  return el("span", { class: "chip expired" }, t(key === "warranty_end" ? "eqWarrantyOver" : "eqContractOver"));
}

function place(record) {
  const p = record.place;
  return [p.building ? t("atBuilding", { b: p.building }) : "", p.floor ? t("atFloor", { f: p.floor }) : "", p.room]
    .filter(Boolean).join(" · ");
}

function facts(record) {
  const rows = [
    [t("eqDevice"), `${record.name || record.device} (${record.device})`],
    [t("eqSystem"), t(`system_${record.system}`)],
    [t("eqPlace"), place(record) || "—"],
    ...FIELDS.map(([key, word]) => [t(word), valueOf(record, key) || "—", expiry(record, key)]),
    [t("eqUpdated"), record.written ? `${record.updated_by} · ${when(record.updated_at)}` : t("eqNotWritten")],
  ];
  return el("dl", { class: "record-fields" },
    rows.flatMap(([label, value, mark]) => [el("dt", {}, label), el("dd", {}, value, mark ? " " : null, mark)]));
}

function input(key, type, record) {
  const attrs = { id: `eq-${key}`, name: key, value: record[key] || "" };
  if (type === "date") return el("input", { ...attrs, type: "date" });
  if (type === "notes") return el("textarea", { ...attrs, rows: 3, maxlength: LIMITS.notes });
  if (type === "vendor") {
    const known = vendors().some((v) => v.id === record.vendor);
    return el("select", attrs,
      el("option", { value: "" }, t("eqNoVendor")),
      vendors().map((v) => el("option", { value: v.id, selected: v.id === record.vendor }, pick(v.name) || v.id)),
      record.vendor && !known ? el("option", { value: record.vendor, selected: true }, record.vendor) : null);
  }
  return el("input", { ...attrs, type: "text", maxlength: LIMITS[key] || 200 });
}

function editForm(record) {
  return el("form", { class: "record-form", onsubmit: (event) => {
    event.preventDefault();
    save(event.target);
  } },
  FIELDS.map(([key, word, type]) => el("label", { for: `eq-${key}`, class: type === "notes" ? "wide" : "" },
    el("span", {}, t(word)), input(key, type, record))),
  el("div", { class: "actions" },
    el("button", { type: "submit", class: "primary" }, t("eqSave")),
    el("button", { type: "button", onclick: () => { open.editing = false; open.error = ""; shown = ""; renderEquipment(); } }, t("cancel"))));
}

function statusMove(detail) {
  const [from, to] = detail.split(" -> ");
  return to ? `${t(`status_${from}`)} → ${t(`status_${to}`)}` : "";
}

/** What an entry says beyond its action: people's own words (notes, comments, reasons) and the
 * moves of a task, never the English the server writes for its logs. */
function entryDetail(h) {
  if (h.kind === "task" && h.action === "status") return statusMove(h.detail);
  if (h.kind === "task" && h.action === "assigned") return `→ ${named("team", h.detail.split(" to ").pop())}`;
  if (["note", "comment"].includes(h.action) || h.kind === "device") return h.detail;
  return "";
}

function entryAction(h) {
  if (h.kind === "task") return t(`taskAction_${h.action.replaceAll(" ", "_")}`);
  return actionWord(h.action);
}

function showTask(id) {
  closeRecord();
  state.expandedTasks.add(id);
  const task = state.tasks.get(id);
  if (task) state.taskColumn = task.status;
  $('#tabs button[data-tab="tasks"]').click();
  requestAnimationFrame(() => {
    const card = document.querySelector(`article.task[data-task="${id}"]`);
    if (card) card.scrollIntoView({ block: "center" });
  });
}

function entryTitle(h) {
  const title = pick(h.title);
  if (h.kind === "alarm") {
    return el("button", { type: "button", class: "link-button", onclick: () => { closeRecord(); openDetail(h.id); } }, title);
  }
  if (h.kind === "task" && state.tasks.has(h.id)) {
    return el("button", { type: "button", class: "link-button", onclick: () => showTask(h.id) }, title);
  }
  return title ? el("span", {}, title) : null;
}

function historyList(entries, { links }) {
  if (!entries.length) return el("p", { class: "quiet" }, t("eqNoHistory"));
  return el("ol", { class: "record-history" }, entries.map((h) => el("li", { "data-kind": h.kind },
    el("time", {}, when(h.ts, "short")), " ",
    el("span", { class: `chip kind-${h.kind}` }, t(`eqKind_${h.kind}`)), " ",
    el("strong", {}, entryAction(h)), " ",
    links ? entryTitle(h) : pick(h.title), " ",
    h.actor ? el("span", { class: "quiet" }, named("actor", h.actor)) : null,
    entryDetail(h) ? el("div", { class: "quiet" }, entryDetail(h)) : null)));
}

function trends(device) {
  const points = Object.entries(device.points || {});
  if (!points.length || !open.trend) return null;
  return el("div", { class: "record-trends" }, el("span", {}, t("eqTrends")),
    points.map(([name, p]) => el("button", { type: "button", class: "subtle", "data-point": name,
      onclick: () => open.trend(device, name) }, pick(p.label) || name)));
}

/** The card that prints (see desk.css, @media print): the record and its latest history. */
function renderCard(record) {
  const site = state.site ? pick(state.site.title) || state.site.name : "";
  fill($("#device-card"),
    el("h1", {}, t("eqCardTitle")),
    el("p", { class: "quiet" }, [site, t("eqPrinted", { time: when(Date.now() * 1e6) })].filter(Boolean).join(" · ")),
    facts(record),
    el("h2", {}, t("eqLatestHistory")),
    historyList(open.history.slice(0, CARD_HISTORY), { links: false }));
}

export function renderEquipment() {
  const dialog = $("#equipment");
  if (!open.device || !dialog.open) {
    shown = "";
    return;
  }
  const signature = JSON.stringify([open.device.id, open.loading, open.editing, open.error, open.history.length, lang()]);
  if (signature === shown) return;  // an edit form being filled in is not rebuilt under the fingers
  shown = signature;
  const { device, record } = open;
  const title = `${t("eqTitle")} · ${device.name || device.id}`;
  let body;
  if (open.loading) body = el("p", { class: "quiet" }, t("loading"));
  else if (!record) body = el("p", { class: "error", role: "alert" }, open.error);
  else {
    renderCard(record);
    body = [
      open.editing ? editForm(record) : facts(record),
      open.error ? el("p", { class: "error", role: "alert" }, open.error) : null,
      open.editing ? null : el("div", { class: "actions" },
        can("engineer") ? el("button", { type: "button", class: "primary edit-record", onclick: () => {
          open.editing = true;
          shown = "";
          renderEquipment();
        } }, t("eqEdit")) : null,
        el("button", { type: "button", class: "print-card", onclick: () => window.print() }, t("eqPrint"))),
      trends(device),
      el("h3", {}, t("eqHistory"), " ", el("span", { class: "quiet" }, t("eqHistoryCount", { n: open.total }))),
      historyList(open.history, { links: true }),
      open.history.length < open.total
        ? el("button", { type: "button", class: "more-history", onclick: moreHistory }, t("eqMore")) : null,
    ];
  }
  dialog.replaceChildren(
    el("header", {}, el("h2", { id: "equipment-title" }, title),
      el("button", { type: "button", class: "close", "aria-label": t("close"), onclick: closeRecord }, "×")),
    el("div", { class: "record-body" }, body));
}

$("#equipment").addEventListener("close", closeRecord);  // Escape closes it too
$("#ledger-xlsx").addEventListener("click", () => exportLedger("xlsx"));
$("#ledger-csv").addEventListener("click", () => exportLedger("csv"));
