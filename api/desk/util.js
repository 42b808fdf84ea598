// Small helpers shared by the desk's views: building DOM nodes, keeping what someone is typing
// across the re-renders that live events cause, and showing times in the site's own zone.
import { lang } from "./i18n.js";

export const $ = (selector, root = document) => root.querySelector(selector);

/** A DOM element: `on…` attributes become listeners; null, undefined and false are left out. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "value") node.value = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

/** Replace a node's children; arrays are flattened and null, undefined and false left out. */
export function fill(node, ...children) {
  node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

// What is typed in a form survives the re-render an event causes: fields are keyed, and the
// focused one gets its focus and cursor back.
const drafts = new Map();

/** An input, select or textarea whose value is kept under `key` until `forget(key)`. */
export function field(tag, key, attrs = {}, ...children) {
  const node = el(tag, { ...attrs, "data-key": key }, ...children);
  if (drafts.has(key)) node.value = drafts.get(key);
  const keep = () => drafts.set(key, node.value);
  node.addEventListener("input", keep);
  node.addEventListener("change", keep);
  return node;
}

export function draft(key, fallback = "") {
  return drafts.has(key) ? drafts.get(key) : fallback;
}

export function forget(...keys) {
  for (const key of keys) drafts.delete(key);
}

/** Run `render`, then give the focus back to the keyed field that had it. */
export function keepFocus(render) {
  const active = document.activeElement;
  const key = active && active.dataset ? active.dataset.key : undefined;
  let range = null;
  try {
    if (key && typeof active.selectionStart === "number") range = [active.selectionStart, active.selectionEnd];
  } catch {
    range = null;  // inputs such as number and date have no selection
  }
  render();
  if (!key) return;
  const again = document.querySelector(`[data-key="${CSS.escape(key)}"]`);
  if (!again || again === active) return;
  again.focus();
  if (range) {
    try {
      again.setSelectionRange(...range);
    } catch {
      // not a text field
    }
  }
}

// ---- Time: stored as UTC ns, shown in the site's zone whatever the zone of the screen.

let zone = undefined;
const formats = new Map();

export function setZone(timezone) {
  zone = timezone || undefined;
  formats.clear();
}

function partsOf(ms) {
  const key = zone || "";
  if (!formats.has(key)) {
    formats.set(key, new Intl.DateTimeFormat("en-CA", {
      timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit",
    }));
  }
  const out = {};
  for (const part of formats.get(key).formatToParts(new Date(ms))) out[part.type] = part.value;
  return out;
}

/** "2026-11-28 08:00:05" (full), "11-28 08:00:05" (short) or "08:00" (clock) in the site zone. */
export function when(ns, style = "full") {
  if (ns === null || ns === undefined) return "";
  const p = partsOf(ns / 1e6);
  if (style === "clock") return `${p.hour}:${p.minute}`;
  if (style === "short") return `${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
}

/** The site's calendar date ("2026-11-28") `days` days from now. */
export function siteDate(days = 0) {
  const p = partsOf(Date.now() + days * 86_400_000);
  return `${p.year}-${p.month}-${p.day}`;
}

/** A `datetime-local` value ("2026-11-28T18:00"), read as site time, as ISO 8601 with the site's offset. */
export function siteIso(local) {
  if (!local) return null;
  const guess = Date.parse(`${local}:00Z`);
  const p = partsOf(guess);
  const asUtc = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second);
  const offsetMin = Math.round((asUtc - guess) / 60_000);
  const sign = offsetMin < 0 ? "-" : "+";
  const abs = Math.abs(offsetMin);
  const hh = String(Math.floor(abs / 60)).padStart(2, "0");
  const mm = String(abs % 60).padStart(2, "0");
  return `${local}:00${sign}${hh}:${mm}`;
}

/** A duration in seconds in the desk's language: "42 秒", "5 分钟", "3 小时 10 分钟", "2 天 4 小时"
 * (or "42 s", "5 min", "3 h 10 min", "2 d 4 h" in English). */
export function duration(seconds) {
  const [sec, min, hour, day] = lang() === "en" ? ["s", "min", "h", "d"] : ["秒", "分钟", "小时", "天"];
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} ${sec}`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} ${min}`;
  const h = Math.floor(m / 60);
  if (h < 48) return m % 60 ? `${h} ${hour} ${m % 60} ${min}` : `${h} ${hour}`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d} ${day} ${h % 24} ${hour}` : `${d} ${day}`;
}

const relative = new Map();

/** How long ago, in the desk's language as it says it: "11 秒前", "3 分钟前", "2 hours ago" (from
 * Intl.RelativeTimeFormat; a Latin unit glued to 前 is English to a Chinese reader). Chinese takes
 * the short form with the number set apart, as the trade writes it. */
export function ago(seconds, language) {
  const tag = language === "en" ? "en" : "zh-CN";
  if (!relative.has(tag)) {
    relative.set(tag, new Intl.RelativeTimeFormat(tag, { numeric: "always", style: tag === "en" ? "long" : "short" }));
  }
  const s = Math.max(0, Math.round(seconds));
  const [value, unit] = s < 60 ? [s, "second"] : s < 3600 ? [Math.floor(s / 60), "minute"]
    : s < 172_800 ? [Math.floor(s / 3600), "hour"] : [Math.floor(s / 86_400), "day"];
  const parts = relative.get(tag).formatToParts(-value, unit);
  if (tag === "en") return parts.map((p) => p.value).join("");
  return parts.map((p) => (p.type === "integer" ? ` ${p.value} ` : p.value)).join("").replace(/\s+/g, " ").trim();
}
