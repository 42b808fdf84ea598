// The service's own health on the desk. /readyz is read every few seconds and whenever the event
// stream connects again; while any part is not up, a banner names it in the desk's words and says
// what it means for the duty officer ("alarms are shown but not yet recorded"). The server's own
// detail, in English, is the item's tooltip. /readyz needs no token and tells no secret.
import { lang, t } from "./i18n.js";
import { $, ago, el } from "./util.js";

const POLL_MS = 5000;
const SHOWN = 5;  // items listed before "and n more"
// Kinds the desk has words for (health_<kind>_<state> in i18n.js); others get a general line.
const KINDS = new Set(["ops_store", "outcomes", "telemetry_store", "spool", "broker", "modbus_bus", "event_loop"]);

let troubled = [];  // the parts /readyz named not up, as it gave them
let readAt = 0;  // when they were read (ages count on from there)
let timer = null;

/** Poll /readyz from now on (at login). */
export function startHealth() {
  if (timer !== null) return;
  timer = setInterval(checkHealth, POLL_MS);
  checkHealth();
}

/** Stop polling and take the banner down (at logout). */
export function stopHealth() {
  clearInterval(timer);
  timer = null;
  troubled = [];
  renderHealth();
}

/** Read /readyz now. A 503 carries the same body; a server out of reach takes the banner down,
 * since the offline banner says so and what this one said can no longer be known. */
export async function checkHealth() {
  try {
    const response = await fetch("/readyz", { cache: "no-store" });
    const body = await response.json();
    troubled = body.parts.filter((part) => part.state !== "up");
  } catch {
    troubled = [];
  }
  readAt = Date.now();
  renderHealth();
}

export function renderHealth() {
  const banner = $("#health-banner");
  const shown = troubled.filter((part) => !saidByOpsStore(part));
  banner.hidden = shown.length === 0;
  document.body.dataset.health = shown.length ? "degraded" : "ok";
  if (!shown.length) {
    banner.replaceChildren();
    return;
  }
  const items = shown.slice(0, SHOWN).map((part) => el("li", {
    "data-kind": part.kind, "data-state": part.state, title: part.detail || null,
  }, describe(part), age(part)));
  if (shown.length > SHOWN) items.push(el("li", {}, t("andMore", { n: shown.length - SHOWN })));
  banner.replaceChildren(el("strong", {}, t("healthBanner")), el("ul", {}, items));
}

/** Outcomes waiting because the ops store is down say what the ops store's line already says. */
function saidByOpsStore(part) {
  return part.kind === "outcomes" && part.state === "degraded"
    && troubled.some((other) => other.kind === "ops_store" && other.state === "down");
}

function describe(part) {
  if (KINDS.has(part.kind)) {
    const where = part.name.replace(/^modbus /, "");  // the bus's address: "总线 10.0.0.5:502 无应答"
    return t(`health_${part.kind}_${part.state}`, { where });
  }
  return t(`health_other_${part.state}`, { name: part.name });
}

function age(part) {
  if (part.last_success_age_s === null) return null;
  const seconds = part.last_success_age_s + (Date.now() - readAt) / 1000;
  return el("span", { class: "age" }, t("healthLastSuccess", { d: ago(seconds, lang()) }));
}
