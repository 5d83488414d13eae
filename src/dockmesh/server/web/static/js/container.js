// Container page: actions, live logs (follow, auto-reconnect), live stats chart, exec terminal.
import { api, refresh } from "./app.js";
import { wireContainerActions } from "./actions.js";
import { LineChart } from "./chart.js";

const page = document.getElementById("container-page");
const HOST = page.dataset.host;
const CONTAINER = page.dataset.container;
const BASE = `/api/v1/hosts/${encodeURIComponent(HOST)}/containers/${encodeURIComponent(CONTAINER)}`;
const MAX_LOG_LINES = 5000;

function setPill(el, text, kind) {
  el.textContent = text;
  el.className = "pill" + (kind ? " " + kind : "");
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Resolves once the host is online again (checked through the API, so no failing request is logged).
async function hostOnline() {
  try {
    const hosts = await api("GET", "/api/v1/hosts");
    const host = hosts.items.find((h) => h.id === HOST);
    return Boolean(host && host.status === "online");
  } catch {
    return false;
  }
}

function running() {
  const facts = document.getElementById("container-facts");
  return facts ? facts.dataset.running === "true" : false;
}

// --- actions ------------------------------------------------------------------------------------

wireContainerActions(page, async (action) => {
  if (action === "remove") {
    location.assign("/containers?host=" + encodeURIComponent(HOST));
    return;
  }
  await refresh("summary");
});

// --- logs ---------------------------------------------------------------------------------------

const logsEl = document.getElementById("logs");
const logsStatus = document.getElementById("logs-status");
const followBox = document.getElementById("logs-follow");
const tsBox = document.getElementById("logs-timestamps");
const TS = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d) (.*)$/s;

const logs = { controller: null, lastTs: "", generation: 0, lines: 0 };

// "2024-05-01T10:00:00.5Z" and "…00.500000000Z" must compare equal: pad the fraction.
function normTs(m) {
  return m[1] + "." + (m[2] || "").padEnd(9, "0") + m[3];
}

function appendLine(text) {
  const m = TS.exec(text);
  let body = text;
  let ts = "";
  if (m) {
    ts = normTs(m);
    if (ts <= logs.lastTs) return; // already shown before a reconnect
    logs.lastTs = ts;
    body = m[4];
  }
  const line = document.createElement("span");
  line.className = "line";
  if (ts) {
    const stamp = document.createElement("span");
    stamp.className = "ts";
    stamp.textContent = ts + " ";
    line.append(stamp);
  }
  line.append(document.createTextNode(body + "\n"));
  logsEl.append(line);
  logs.lines += 1;
  while (logs.lines > MAX_LOG_LINES && logsEl.firstChild) {
    logsEl.firstChild.remove();
    logs.lines -= 1;
  }
}

function atBottom() {
  return logsEl.scrollHeight - logsEl.scrollTop - logsEl.clientHeight < 40;
}

async function streamLogs(generation) {
  const controller = new AbortController();
  logs.controller = controller;
  const tail = logs.lastTs ? 1000 : 200;
  const res = await fetch(`${BASE}/logs?follow=1&timestamps=1&tail=${tail}`, {
    credentials: "same-origin",
    signal: controller.signal,
    cache: "no-store",
  });
  if (res.status === 404) return "gone";
  if (!res.ok || !res.body) return "error";
  setPill(logsStatus, "live", "ok");
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let partial = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done || generation !== logs.generation) break;
    const stick = atBottom();
    const parts = (partial + value).split("\n");
    partial = parts.pop();
    for (const part of parts) appendLine(part);
    if (stick) logsEl.scrollTop = logsEl.scrollHeight;
  }
  if (partial) appendLine(partial);
  return "ended";
}

async function followLogs() {
  const generation = ++logs.generation;
  let delay = 1000;
  while (generation === logs.generation) {
    let outcome;
    const started = Date.now();
    try {
      outcome = await streamLogs(generation);
    } catch {
      outcome = generation === logs.generation ? "error" : "stopped";
    }
    if (generation !== logs.generation) return;
    if (outcome === "gone") {
      setPill(logsStatus, "container not found", "bad");
      return;
    }
    if (Date.now() - started > 10000) delay = 1000; // a healthy stream resets the backoff
    setPill(logsStatus, "reconnecting…", "warn");
    await sleep(delay);
    delay = Math.min(delay * 2, 15000);
    // While the host is offline, wait for it rather than firing requests that must fail.
    while (generation === logs.generation && !(await hostOnline())) {
      setPill(logsStatus, "reconnecting… (host offline)", "warn");
      await sleep(delay);
      delay = Math.min(delay * 2, 15000);
    }
  }
}

function stopLogs(label) {
  logs.generation += 1;
  if (logs.controller) logs.controller.abort();
  setPill(logsStatus, label, "");
}

followBox.addEventListener("change", () => {
  if (followBox.checked) followLogs();
  else stopLogs("paused");
});
tsBox.addEventListener("change", () => logsEl.classList.toggle("show-ts", tsBox.checked));
document.getElementById("logs-clear").addEventListener("click", () => {
  logsEl.replaceChildren();
  logs.lines = 0;
});
addEventListener("pagehide", () => stopLogs("closed"));
followLogs();

// --- stats --------------------------------------------------------------------------------------

const statsStatus = document.getElementById("stats-status");
const cpuText = document.getElementById("stats-cpu");
const memText = document.getElementById("stats-mem");
const chart = new LineChart(document.getElementById("stats-chart"), [
  { key: "cpu_percent", className: "cpu", max: (v) => Math.max(100, ...v) },
  { key: "mem_used", className: "mem", max: (v) => Math.max(...v, 1) * 1.2 },
]);

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function wsUrl(path) {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
}

let statsDelay = 1000;
let statsWs = null;
let statsTimer = null;

function scheduleStats(ms) {
  clearTimeout(statsTimer);
  statsTimer = setTimeout(connectStats, ms);
}

function backoffStats() {
  scheduleStats(statsDelay);
  statsDelay = Math.min(statsDelay * 2, 15000);
}

async function connectStats() {
  statsTimer = null;
  if (statsWs) return;
  if (!running()) {
    setPill(statsStatus, "not running", "");
    scheduleStats(3000);
    return;
  }
  if (!(await hostOnline())) {
    setPill(statsStatus, "host offline", "warn");
    backoffStats();
    return;
  }
  if (statsWs) return;
  const ws = new WebSocket(wsUrl(`${BASE}/stats`));
  statsWs = ws;
  ws.onmessage = (event) => {
    const sample = JSON.parse(event.data);
    if (sample.type === "error") {
      setPill(statsStatus, sample.message, "bad");
      return;
    }
    statsDelay = 1000;
    setPill(statsStatus, "live", "ok");
    chart.push(sample);
    cpuText.textContent = `${Number(sample.cpu_percent).toFixed(1)}%`;
    memText.textContent = bytes(Number(sample.mem_used));
  };
  ws.onclose = () => {
    statsWs = null;
    if (running()) {
      setPill(statsStatus, "reconnecting…", "warn");
      backoffStats();
    } else {
      setPill(statsStatus, "not running", "");
      scheduleStats(3000);
    }
  };
}

// The summary refreshes as a fragment: follow the container's state (stopped → no stats stream).
page.addEventListener("fragment:swapped", (event) => {
  if (event.detail.name !== "summary") return;
  if (!running() && statsWs) statsWs.close();
  else if (running() && !statsWs) scheduleStats(0);
});
connectStats();

// --- terminal -----------------------------------------------------------------------------------

const termEl = document.getElementById("terminal");
const termStatus = document.getElementById("term-status");
const openButton = document.getElementById("term-open");
const closeButton = document.getElementById("term-close");
const cmdInput = document.getElementById("term-cmd");
const encoder = new TextEncoder();
let session = null;
let lastTerm = null;

function openTerminal() {
  if (session) return;
  const term = new window.Terminal({
    cursorBlink: true,
    convertEol: false,
    fontSize: 13,
    fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace",
    theme: { background: "#0f172a" },
  });
  const fit = new window.FitAddon.FitAddon();
  term.loadAddon(fit);
  if (lastTerm) lastTerm.dispose();
  lastTerm = term;
  termEl.replaceChildren();
  termEl.classList.add("open");
  term.open(termEl);
  fit.fit();
  const params = new URLSearchParams({ tty: "1", cols: String(term.cols), rows: String(term.rows) });
  for (const part of (cmdInput.value.trim() || "sh").split(/\s+/)) params.append("cmd", part);
  const ws = new WebSocket(wsUrl(`${BASE}/exec?${params}`));
  ws.binaryType = "arraybuffer";
  session = { term, fit, ws, observer: null };

  const sendSize = () => {
    termEl.dataset.cols = String(term.cols);
    termEl.dataset.rows = String(term.rows);
    if (ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify({ type: "resize", cols: term.cols, rows: term.rows }));
    }
  };
  ws.onopen = () => {
    setPill(termStatus, "connected", "ok");
    sendSize();
    term.focus();
  };
  ws.onmessage = (event) => {
    if (typeof event.data === "string") {
      const msg = JSON.parse(event.data);
      if (msg.type === "exit") term.write(`\r\n[process exited with code ${msg.code}]\r\n`);
      else if (msg.type === "error") term.write(`\r\n[error: ${msg.message}]\r\n`);
      return;
    }
    term.write(new Uint8Array(event.data));
  };
  ws.onclose = () => {
    setPill(termStatus, "closed", "");
    endSession(false);
  };
  term.onData((data) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(data));
  });
  term.onResize(sendSize);
  // The terminal follows its box, and the box follows the window.
  const observer = new ResizeObserver(() => {
    if (session && session.term === term) fit.fit();
  });
  observer.observe(termEl);
  session.observer = observer;
  termEl.dataset.cols = String(term.cols);
  termEl.dataset.rows = String(term.rows);
  setPill(termStatus, "connecting…", "warn");
  cmdInput.disabled = true;
  openButton.hidden = true;
  closeButton.hidden = false;
}

function endSession(closeSocket) {
  if (!session) return;
  const { ws, observer } = session;
  if (observer) observer.disconnect();
  if (closeSocket && ws.readyState <= WebSocket.OPEN) ws.close();
  session = null; // the terminal stays on screen with its last output
  cmdInput.disabled = false;
  openButton.hidden = false;
  openButton.textContent = "Open again";
  closeButton.hidden = true;
}

openButton.addEventListener("click", openTerminal);
closeButton.addEventListener("click", () => endSession(true));
