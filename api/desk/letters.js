// Dead letters (数据异常), for engineers: the input the system could not use — a payload that is
// not JSON, a topic no device has, a Modbus value that does not decode, a reading the store
// refused, a notification that failed — newest first, with where it came from, why, and what came.
// The reason is the system's own text: its known forms are put in the desk's words, and a parser's
// detail after them is shown as the system wrote it.
import { api } from "./api.js";
import { exportButtons, toolbarSlot } from "./files.js";
import { pick, t } from "./i18n.js";
import { changed, state } from "./state.js";
import { $, el, fill, when } from "./util.js";

const PAGE = 100;
const letters = { items: [], total: 0, source: "", loading: false, error: "" };

// The reasons the gateway and the notifier give, by how they begin, and the desk's word for each;
// the whole text (a parser's detail, in English) stays one click away, as the system wrote it.
const REASONS = [
  [/^no device has this topic$/, "reason_unknown_topic"],
  [/^status is neither online nor offline$/, "reason_bad_status"],
  [/^not JSON: /, "reason_not_json"],
  [/^not a JSON object but /, "reason_not_object"],
  [/^payload of \d+ bytes is over \d+$/, "reason_too_large"],
  [/^could not be read: /, "reason_unreadable"],
];

function reasonCell(reason) {
  const known = REASONS.find(([pattern]) => pattern.test(reason));
  if (!known) return el("td", { class: "reason" }, reason);
  return el("td", { class: "reason" }, t(known[1]),
    el("details", {}, el("summary", {}, t("letterOriginal")), el("pre", { class: "payload" }, reason)));
}

export async function loadLetters(more = false) {
  letters.loading = true;
  changed();
  const params = new URLSearchParams({ limit: String(PAGE), offset: String(more ? letters.items.length : 0) });
  if (letters.source) params.append("source", letters.source);
  try {
    const page = await api(`/dead-letters?${params}`);
    letters.items = more ? [...letters.items, ...page.items] : page.items;
    letters.total = page.total;
    letters.error = "";
  } catch (err) {
    letters.error = err.message;
  } finally {
    letters.loading = false;
    changed();
  }
}

function deviceName(id) {
  if (!id) return t("noDevice");
  const device = state.devices.find((d) => d.id === id);
  return device && device.name ? `${pick(device.name)} (${id})` : id;
}

function row(letter) {
  return el("tr", { "data-letter": String(letter.id) },
    el("td", { class: "when" }, when(letter.ts)),
    el("td", {}, t(`source_${letter.source}`)),
    el("td", {}, deviceName(letter.device), el("div", { class: "quiet mono" }, letter.key)),
    reasonCell(letter.reason),
    el("td", {}, letter.payload
      ? el("details", {}, el("summary", {}, t("letterPayload", { n: letter.payload.length })),
        el("pre", { class: "payload" }, letter.payload))
      : ""));
}

export function renderLetters() {
  const section = $("#tab-letters");
  if (section.hidden) return;
  const select = $("#letter-source");
  if (!select.options.length) {
    for (const source of ["", "mqtt", "modbus", "telemetry", "webhook"]) {
      select.append(el("option", { value: source }, source ? t(`source_${source}`) : t("allSources")));
    }
    select.addEventListener("change", () => { letters.source = select.value; loadLetters(); });
  }
  fill(toolbarSlot("#tab-letters .toolbar", "letters-exports"),
    exportButtons("dead-letters", () => new URLSearchParams(letters.source ? { source: letters.source } : {}).toString()));
  for (const option of select.options) option.textContent = option.value ? t(`source_${option.value}`) : t("allSources");
  fill($("#letters tbody"), ...letters.items.map(row));
  $("#letters").hidden = letters.items.length === 0;
  const status = $("#letters-status");
  status.textContent = letters.error ? t("loadFailed", { what: t("letters"), message: letters.error })
    : letters.loading ? t("loading")
    : letters.items.length === 0 ? t("noLetters")
    : t("lettersShown", { n: letters.items.length, total: letters.total });
  $("#letters-more").hidden = letters.loading || letters.items.length >= letters.total;
}
