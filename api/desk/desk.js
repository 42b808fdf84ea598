// The duty desk: log in with a token, then live alarms, tasks, devices and reports, kept current by
// the server's event stream. No build step and no third-party code. The token is kept in
// sessionStorage and sent only in the Authorization header, never in a URL.
import {
  loadAlarms, loadClosed, loadFlood, loadPlans, onOpenAlarm, renderAlarms, renderBanners, unackedEmergencies,
  upsertAlarm, upsertPlan,
} from "./alarms.js";
import { api, session, tokenProblem } from "./api.js";
import { closeDetail, detailTouched, loadDetail, openDetail, renderDetail } from "./detail.js";
import { closeTrend, deviceStatus, loadDevices, renderDevices } from "./devices.js";
import { checkHealth, renderHealth, startHealth, stopHealth } from "./health.js";
import { lang, pick, setLang, t, useWords } from "./i18n.js";
import { loadDesks, loadEstates, renderEstates, renderSwitch } from "./estates.js";
import { loadLetters, renderLetters } from "./letters.js";
import { downloadReport, languageChanged, prepareReports, printReport, renderReports, showReport } from "./reports.js";
import { EmergencyAlert } from "./sound.js";
import { can, changed, onChange, state } from "./state.js";
import { EventStream } from "./stream.js";
import { loadTasks, renderTasks, upsertTask } from "./tasks.js";
import { $, ago, keepFocus, setZone } from "./util.js";

const SLOW_LOGIN_MS = 5000;  // a first answer slower than this is said to be slow, not failed
const DEVICE_POLL_MS = 2000;  // device values are read, not streamed: only while the board is shown
const TABS = ["alarms", "tasks", "devices", "reports", "letters", "estates"];

const alert = new EmergencyAlert();
const loadErrors = new Map();
let devicePoll = null;
let ticker = null;

const stream = new EventStream("/api/v1/stream", {
  token: () => session.token,
  opened: async (resumed) => {
    state.link.state = "live";
    changed();
    checkHealth();  // what went wrong while the desk was away shows at once
    if (!resumed) await reloadAll();  // nothing to replay from: read everything afresh
  },
  event: (kind, data) => {
    if (kind === "alarm" || kind === "escalation") {
      upsertAlarm(data);
      detailTouched(data.id);
    } else if (kind === "task") upsertTask(data);
    else if (kind === "plan") upsertPlan(data);
    else if (kind === "device") deviceStatus(data);
    else if (kind === "flood") {
      state.flood = data;
      changed();
    } else if (kind === "reset") reloadAll();
  },
  down: () => {
    state.link.state = "offline";
    changed();
  },
  heard: () => {
    state.link.heardAt = Date.now();
    renderHeard();
  },
  unauthorized: () => logout(t("badToken")),
});

/** Read everything again: at login, after a gap the server cannot replay, and on `reset`. */
async function reloadAll() {
  const loads = { alarms: loadAlarms, flood: loadFlood, plans: loadPlans, tasks: loadTasks, devices: loadDevices };
  await Promise.all(Object.entries(loads).map(async ([name, load]) => {
    try {
      await load();
      loadErrors.delete(name);
    } catch (err) {
      if (err.status !== 401) loadErrors.set(name, err.message);
    }
  }));
  if (state.detail) await loadDetail();
  changed();
}

// ---- Rendering

function applyStatic() {
  document.documentElement.lang = lang() === "zh" ? "zh-CN" : "en";
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  $("#lang").textContent = t("otherLanguage");
  $("#lang").lang = lang() === "zh" ? "en" : "zh-CN";
}

function renderHeard() {
  const heard = $("#heard");
  heard.textContent = state.link.heardAt ? t("heard", { d: ago((Date.now() - state.link.heardAt) / 1000, lang()) }) : "";
  const banner = $("#offline-banner");
  banner.hidden = state.link.state !== "offline";
  if (!banner.hidden) {
    banner.textContent = state.link.heardAt
      ? t("offlineBanner", { d: ago((Date.now() - state.link.heardAt) / 1000, lang()) })
      : t("offlineNever");
  }
}

function renderLink() {
  const link = $("#link");
  const kind = state.link.state;
  link.textContent = t(kind);
  link.className = `link ${kind}`;
  renderHeard();
}

function renderWho() {
  const who = $("#who");
  who.hidden = !state.me;
  if (state.me) {
    const where = state.me.buildings ? ` · ${state.me.buildings.join(", ")}` : "";
    who.textContent = `${state.me.name} · ${t(`role_${state.me.role}`)}${where}`;
  }
  document.body.dataset.role = state.me ? state.me.role : "";
  $("#site").textContent = state.site ? pick(state.site.title) || state.site.id : "";
}

function renderTabs() {
  for (const button of document.querySelectorAll("#tabs button")) {
    const active = button.dataset.tab === state.tab;
    button.setAttribute("aria-selected", String(active));
  }
  $('#tabs button[data-tab="letters"]').hidden = !can("engineer");  // the API gives dead letters to engineers
  // The company view is for users of whole estates: the API refuses it to those limited to buildings.
  $('#tabs button[data-tab="estates"]').hidden = !state.me || state.me.buildings !== null;
  for (const tab of TABS) $(`#tab-${tab}`).hidden = tab !== state.tab;
  const banner = $("#load-banner");
  banner.hidden = loadErrors.size === 0;
  banner.textContent = [...loadErrors.entries()].map(([name, message]) => t("loadFailed", { what: t(name), message })).join(" · ");
}

function render() {
  alert.update(unackedEmergencies());
  const count = unackedEmergencies().length;
  alert.setTitle(t("pageTitle"), t("emergencyTitle", { n: count }));
  keepFocus(() => {
    renderWho();
    renderSwitch();
    renderTabs();
    renderLink();
    renderBanners(alert);
    renderHealth();
    renderAlarms();
    renderTasks();
    if (state.tab === "devices" || $("#trend").open) renderDevices();
    renderReports();
    renderLetters();
    renderEstates();
    renderDetail();
  });
}

// ---- Navigation

function showTab(tab) {
  state.tab = TABS.includes(tab) ? tab : "alarms";
  sessionStorage.setItem("desk.tab", state.tab);
  clearInterval(devicePoll);
  devicePoll = null;
  if (state.tab === "devices") {
    loadDevices().catch(() => {});
    devicePoll = setInterval(() => {
      if (state.link.state === "live") loadDevices().catch(() => {});
    }, DEVICE_POLL_MS);
  }
  if (state.tab === "reports") prepareReports();
  if (state.tab === "letters") loadLetters();
  if (state.tab === "estates") loadEstates();
  changed();
}

async function start() {
  $("#login-status").textContent = t("checkingToken");
  const slow = setTimeout(() => { $("#login-status").textContent = t("slowServer"); }, SLOW_LOGIN_MS);
  try {
    state.me = await api("/me");
  } catch (err) {
    if (err.status !== 401) showLogin(err.message);
    return;
  } finally {
    clearTimeout(slow);
    $("#login-status").textContent = "";
  }
  $("#login").hidden = true;
  $("#desk").hidden = false;
  $("#logout").hidden = false;
  try {  // the words for ids, before anything that shows one
    useWords(await api("/words"));
  } catch (err) {
    loadErrors.set("words", err.message);
  }
  try {
    state.site = await api("/site");
    setZone(state.site.timezone);
  } catch (err) {
    loadErrors.set("site", err.message);
  }
  loadDesks();  // the header's estate switch, when the user may reach other estates
  state.link.state = "connecting";
  showTab(sessionStorage.getItem("desk.tab") || "alarms");
  stream.start();
  startHealth();
  let ticks = 0;
  ticker = setInterval(() => {
    renderHeard();
    ticks += 1;
    if (ticks % 15 === 0) changed();  // countdowns and overdue marks move on
  }, 1000);
}

function showLogin(message = "") {
  $("#desk").hidden = true;
  $("#logout").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = message;
}

function logout(message = "") {
  session.token = null;
  sessionStorage.removeItem("desk.token");
  stream.stop();
  stopHealth();
  clearInterval(devicePoll);
  clearInterval(ticker);
  state.me = null;
  state.link = { state: "offline", heardAt: 0 };
  state.alarms = new Map();
  state.tasks = new Map();
  state.plans = new Map();
  state.detail = null;
  alert.update([]);
  showLogin(message);
  changed();
}

// ---- Wiring

onChange(render);
session.onUnauthorized = () => logout(t("badToken"));
onOpenAlarm(openDetail);

document.addEventListener("pointerdown", () => alert.unlock());  // browsers allow sound after a gesture
document.addEventListener("keydown", (event) => {
  alert.unlock();
  if (event.key === "Escape" && state.detail && !$("#trend").open) closeDetail();
});
$("#login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const problem = tokenProblem($("#token").value.trim());
  if (problem) {
    $("#login-error").textContent = problem;
    return;
  }
  session.token = $("#token").value.trim();
  sessionStorage.setItem("desk.token", session.token);
  $("#login-error").textContent = "";
  start();
});
$("#logout").addEventListener("click", () => logout());
$("#lang").addEventListener("click", () => {
  setLang(lang() === "zh" ? "en" : "zh");
  applyStatic();
  languageChanged();
  changed();
});
for (const button of document.querySelectorAll("#tabs button")) {
  button.addEventListener("click", () => showTab(button.dataset.tab));
}
for (const button of document.querySelectorAll("#alarm-views button")) {
  button.addEventListener("click", () => {
    state.alarmView = button.dataset.view;
    if (state.alarmView === "closed") loadClosed().catch((err) => loadErrors.set("alarms", err.message));
    changed();
  });
}
for (const button of document.querySelectorAll("#task-columns button")) {
  button.addEventListener("click", () => {
    state.taskColumn = button.dataset.column;
    changed();
  });
}
$("#new-task-button").addEventListener("click", () => {
  state.newTask = true;
  changed();
});
$("#only-overdue").addEventListener("change", (event) => {
  state.onlyOverdue = event.target.checked;
  changed();
});
$("#device-building").addEventListener("change", (event) => {
  state.deviceBuilding = event.target.value;
  changed();
});
$("#device-system").addEventListener("change", (event) => {
  state.deviceSystem = event.target.value;
  changed();
});
$("#trend").addEventListener("close", closeTrend);
$("#report-form").addEventListener("submit", (event) => {
  event.preventDefault();
  showReport();
});
$("#report-kind").addEventListener("change", () => renderReports());
$("#report-print").addEventListener("click", printReport);
$("#report-xlsx").addEventListener("click", () => downloadReport("xlsx"));
$("#letters-refresh").addEventListener("click", () => loadLetters());
$("#letters-more").addEventListener("click", () => loadLetters(true));
$("#estates-refresh").addEventListener("click", () => loadEstates());
$("#report-csv").addEventListener("click", () => downloadReport("csv"));
$("#report-md").addEventListener("click", () => downloadReport("md"));

// A login link may carry the token in the fragment (never sent to the server); take it and drop it.
const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
if (fromLink) {
  session.token = fromLink;
  sessionStorage.setItem("desk.token", fromLink);
  history.replaceState(null, "", location.pathname);
}
applyStatic();
if (session.token) start();
else showLogin();
render();
