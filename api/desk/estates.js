// The company view (各项目), for users of whole estates: every estate they may reach, side by side —
// open emergencies, unacknowledged alarms, overdue tasks, devices offline and out of service, and
// this month's alarms, mean time to acknowledge and tasks on time — with a link to each estate's
// own desk where its site file gives one. The figures are the server's (GET /estates), each
// estate's read with its own reports' queries; the desk only lays them out.
import { api } from "./api.js";
import { t } from "./i18n.js";
import { changed } from "./state.js";
import { $, duration, el, fill } from "./util.js";

const estates = { items: [], month: "", loading: false, error: "" };
let desks = [];  // the estates the user may reach, for the header's switch

/** The estates the user may reach and their desks (GET /estates/desks), once at login. */
export async function loadDesks() {
  try {
    desks = await api("/estates/desks");
  } catch {
    desks = [];  // the switch stays hidden: this desk works on without it
  }
  changed();
}

/** The header's estate switch: shown when the user may reach another estate whose desk is known;
 * choosing one opens that estate's desk. */
export function renderSwitch() {
  const select = $("#estate-switch");
  const others = desks.filter((d) => !d.here && d.desk_url);
  select.hidden = others.length === 0;
  $("#site").hidden = !select.hidden;  // the switch names this estate first: the name once, not twice
  select.setAttribute("aria-label", t("estateSwitch"));
  const here = desks.find((d) => d.here);
  const key = JSON.stringify([t("estateSwitch"), here, others]);
  if (select.hidden || select.dataset.key === key) return;  // an open list is not rebuilt under the hand
  select.dataset.key = key;
  fill(select,
    el("option", { value: "" }, here ? here.name || here.site : t("estateSwitch")),
    ...others.map((d) => el("option", { value: d.desk_url }, d.name || d.site)));
  if (!select.dataset.wired) {
    select.dataset.wired = "1";
    select.addEventListener("change", () => { if (select.value) window.location.assign(select.value); });
  }
}

export async function loadEstates() {
  estates.loading = true;
  changed();
  try {
    const view = await api("/estates");
    estates.items = view.items;
    estates.month = view.month;
    estates.error = "";
  } catch (err) {
    estates.error = err.message;
  } finally {
    estates.loading = false;
    changed();
  }
}

// Each figure's cell says its column's word too, shown on a phone, where each estate is a card.
function figure(label, value, alarming = false) {
  const shown = typeof value === "number" ? String(value) : value;
  return el("td", { class: alarming && value > 0 ? "figure alarming" : "figure", "data-label": t(label) }, shown);
}

function row(estate) {
  const name = estate.name || estate.site;
  const link = estate.here ? el("span", { class: "quiet" }, t("estateHere"))
    : estate.desk_url ? el("a", { href: estate.desk_url, rel: "noopener" }, t("estateOpenDesk"))
    : el("span", { class: "quiet" }, t("estateNoDesk"));
  return el("tr", { "data-estate": estate.site },
    el("th", { scope: "row" }, name, el("div", { class: "quiet mono" }, estate.site)),
    figure("estateEmergencies", estate.open_emergencies, true),
    figure("estateUnacked", estate.unacknowledged, true),
    figure("estateOverdue", estate.overdue_tasks, true),
    figure("estateOffline", estate.offline_devices, true),
    figure("estateOutOfService", estate.out_of_service),
    figure("estateMonthAlarms", estate.month_alarms),
    figure("estateMtta", estate.month_mtta_ns === null ? "—" : duration(estate.month_mtta_ns / 1e9)),
    figure("estateOnTime", estate.month_on_time === null ? "—" : `${Math.round(estate.month_on_time * 100)}%`),
    el("td", { class: "desk-link" }, link));
}

export function renderEstates() {
  const section = $("#tab-estates");
  if (section.hidden) return;
  fill($("#estates tbody"), ...estates.items.map(row));
  $("#estates").hidden = estates.items.length === 0;
  $("#estates-month").textContent = estates.month ? t("estatesMonth", { month: estates.month }) : "";
  $("#estates-status").textContent = estates.error ? t("loadFailed", { what: t("estates"), message: estates.error })
    : estates.loading ? t("loading")
    : estates.items.length === 0 ? t("noEstates")
    : t("estatesShown", { n: estates.items.length });
}
