// The duty desk: live alarms from the event stream, acknowledge in one click, live device values.
// No build step and no third-party code. The token is kept in sessionStorage and sent only in the
// Authorization header, never in a URL.
"use strict";

const TEXT = {
  zh: {
    title: "值班台", offline: "离线", live: "在线", reconnecting: "重连中…", token: "访问令牌", login: "登录",
    logout: "退出", alarms: "报警", priority: "优先级", state: "状态", alarm: "报警", device: "设备",
    time: "时间", devices: "设备", noAlarms: "当前无报警", ack: "确认", badToken: "令牌无效",
    emergency: "紧急", high: "高", medium: "中", low: "低",
    unacknowledged: "未确认", acknowledged: "已确认", rtn_unacknowledged: "已恢复未确认", normal: "已关闭",
    good: "", stale: "过期", no_comm: "通讯中断", bad: "数值无效", no_data: "无数据", other: "English", yes: "是", no: "否",
  },
  en: {
    title: "Duty desk", offline: "Offline", live: "Live", reconnecting: "Reconnecting…", token: "Access token",
    login: "Log in", logout: "Log out", alarms: "Alarms", priority: "Priority", state: "State", alarm: "Alarm",
    device: "Device", time: "Time", devices: "Devices", noAlarms: "No alarms", ack: "Acknowledge",
    badToken: "Invalid token", emergency: "Emergency", high: "High", medium: "Medium", low: "Low",
    unacknowledged: "Unacknowledged", acknowledged: "Acknowledged", rtn_unacknowledged: "Cleared, unacknowledged",
    normal: "Closed", good: "", stale: "stale", no_comm: "no communication", bad: "bad value",
    no_data: "no data", other: "中文", yes: "yes", no: "no",
  },
};
const PRIORITY_ORDER = { emergency: 0, high: 1, medium: 2, low: 3 };

const state = {
  lang: localStorage.getItem("desk.lang") || "zh",
  token: sessionStorage.getItem("desk.token"),
  alarms: new Map(),
  devices: [],
  stream: null,
};

const $ = (sel) => document.querySelector(sel);
const t = (key) => TEXT[state.lang][key] ?? key;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child ?? "");
  return node;
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options, headers: { ...(options.headers || {}), Authorization: `Bearer ${state.token}` },
  });
  if (response.status === 401) { logout(t("badToken")); throw new Error("unauthorized"); }
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

function applyLanguage() {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  $("#lang").textContent = t("other");
  setLink(state.linkState || "offline");
  renderAlarms();
  renderDevices();
}

function setLink(kind) {
  state.linkState = kind;
  const link = $("#link");
  link.textContent = t(kind);
  link.className = `link ${kind === "live" ? "live" : "offline"}`;
}

// Times are shown in the site's time zone, whatever the zone of the screen showing them.
function localTime(ns) {
  if (!ns) return "";
  const options = state.timezone ? { timeZone: state.timezone } : {};
  return new Date(ns / 1e6).toLocaleString(state.lang === "zh" ? "zh-CN" : "en-GB", options);
}

function renderAlarms() {
  const body = $("#alarms tbody");
  body.replaceChildren();
  const alarms = [...state.alarms.values()].filter((a) => a.state !== "normal");
  alarms.sort((a, b) => (a.acknowledged - b.acknowledged) || (PRIORITY_ORDER[a.priority] - PRIORITY_ORDER[b.priority])
    || (b.changed_at - a.changed_at));
  for (const a of alarms) {
    const ack = a.acknowledged ? "" : el("button", { class: "ack", type: "button", onclick: () => acknowledge(a.id) }, t("ack"));
    body.append(el("tr", { class: `priority-${a.priority} state-${a.state}`, "data-alarm": a.id },
      el("td", {}, el("span", { class: `badge ${a.priority}` }, t(a.priority))),
      el("td", { class: "state" }, t(a.state)),
      el("td", {}, a.title[state.lang] || a.title.en, el("div", { class: "quiet" }, a.message[state.lang] || a.message.en)),
      el("td", {}, a.device),
      el("td", {}, localTime(a.raised_at)),
      el("td", {}, ack)));
  }
  $("#alarm-count").textContent = alarms.length ? `(${alarms.length})` : "";
  $("#no-alarms").hidden = alarms.length > 0;
}

function renderDevices() {
  const box = $("#devices");
  box.replaceChildren();
  for (const d of state.devices) {
    const rows = [];
    for (const [name, p] of Object.entries(d.points)) {
      const label = (p.label && (p.label[state.lang] || p.label.en)) || name;
      let value = p.value === null || p.value === undefined ? "—" : p.value;
      if (typeof value === "number" && !Number.isInteger(value)) value = value.toFixed(3);
      if (typeof value === "boolean") value = t(value ? "yes" : "no");
      const shown = `${value}${p.unit ? " " + p.unit : ""}${t(p.quality) ? " · " + t(p.quality) : ""}`;
      rows.push(el("dt", {}, label), el("dd", { class: `q-${p.quality}`, title: `${p.age_s ?? "—"} s` }, shown));
    }
    const where = [d.location.building, d.location.floor, d.location.room].filter(Boolean).join(" · ");
    box.append(el("div", { class: "device", "data-device": d.id },
      el("h3", {}, d.name || d.id), el("div", { class: "quiet" }, `${d.id} · ${where}`), el("dl", {}, ...rows)));
  }
}

async function acknowledge(id) {
  const alarm = await api(`/api/v1/alarms/${id}/ack`, { method: "POST" });
  state.alarms.set(alarm.id, alarm);
  renderAlarms();
}

async function loadAlarms() {
  const list = await api("/api/v1/alarms");
  state.alarms = new Map(list.map((a) => [a.id, a]));
  renderAlarms();
}

async function loadDevices() {
  state.devices = await api("/api/v1/devices");
  renderDevices();
}

// Server-sent events read through fetch, so the token travels in a header and not in the URL.
async function follow() {
  let delay = 1000;
  while (state.token) {
    const controller = new AbortController();
    state.stream = controller;
    try {
      const response = await fetch("/api/v1/stream", {
        headers: { Authorization: `Bearer ${state.token}`, Accept: "text/event-stream" }, signal: controller.signal,
      });
      if (response.status === 401) { logout(t("badToken")); return; }
      if (!response.ok) throw new Error(`stream: ${response.status}`);
      await loadAlarms();  // anything that happened while we were away
      setLink("live");
      delay = 1000;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          handleEvent(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (err) {
      if (!state.token) return;
    }
    setLink("reconnecting");
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 15000);
  }
}

function handleEvent(block) {
  let kind = "message", data = "";
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) kind = line.slice(6).trim();
    else if (line.startsWith("data:")) data += line.slice(5).trim();
  }
  if (!data) return;
  const payload = JSON.parse(data);
  if (kind === "alarm") { state.alarms.set(payload.id, payload); renderAlarms(); }
  if (kind === "device") loadDevices().catch(() => {});
}

async function loadSite() {
  const site = await api("/api/v1/site");
  state.timezone = site.timezone;
  $("#site").textContent = site.name || site.id;
  renderAlarms();
}

function start() {
  $("#login").hidden = true;
  $("#desk").hidden = false;
  $("#logout").hidden = false;
  loadSite().catch(() => {});
  loadDevices().catch(() => {});
  follow();
  state.deviceTimer = setInterval(() => loadDevices().catch(() => {}), 2000);
}

function logout(message = "") {
  state.token = null;
  sessionStorage.removeItem("desk.token");
  if (state.stream) state.stream.abort();
  clearInterval(state.deviceTimer);
  setLink("offline");
  $("#desk").hidden = true;
  $("#logout").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = message;
}

$("#login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = $("#token").value.trim();
  sessionStorage.setItem("desk.token", state.token);
  start();
});
$("#logout").addEventListener("click", () => logout());
$("#lang").addEventListener("click", () => {
  state.lang = state.lang === "zh" ? "en" : "zh";
  localStorage.setItem("desk.lang", state.lang);
  applyLanguage();
});

// A login link may carry the token in the fragment (never sent to the server); take it and drop it.
const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
if (fromLink) {
  state.token = fromLink;
  sessionStorage.setItem("desk.token", fromLink);
  history.replaceState(null, "", location.pathname);
}
applyLanguage();
if (state.token) start(); else logout();
