// Deploy progress: follows the deploy's NDJSON events (the ones so far, then live ones, then the result).
// The deploy is a server task: leaving the page only stops following; coming back replays what is kept.
import { api, confirmDialog, notice } from "./app.js";

const page = document.getElementById("deploy-page");
const ID = page.dataset.deploy;
const stateEl = document.getElementById("deploy-state");
const liveEl = document.getElementById("deploy-live");
const errorEl = document.getElementById("deploy-error");
const eventsEl = document.getElementById("deploy-events");
const tbody = document.querySelector("#deploy-services tbody");
const cancelButton = document.getElementById("cancel-deploy");
const FINAL = new Set(["done", "failed", "cancelled"]);
const MAX_EVENTS = 500;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function setLive(text, kind) {
  liveEl.textContent = text;
  liveEl.className = "pill" + (kind ? " " + kind : "");
}

function setState(state) {
  stateEl.textContent = state;
  stateEl.className = "badge badge-" + state;
  page.dataset.state = state;
  cancelButton.hidden = FINAL.has(state);
}

function size(n) {
  if (typeof n !== "number" || !isFinite(n) || n < 0) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
}

function row(service) {
  let tr = tbody.querySelector(`tr[data-service="${CSS.escape(service)}"]`);
  if (!tr) {
    tr = document.createElement("tr");
    tr.dataset.service = service;
    for (const cls of ["name", "phase", "status", "bytes", "detail muted"]) {
      const td = document.createElement("td");
      td.className = cls;
      tr.append(td);
    }
    tr.querySelector(".name").textContent = service;
    tbody.append(tr);
  }
  return tr;
}

function addEvent(text) {
  const li = document.createElement("li");
  li.textContent = text;
  eventsEl.append(li);
  while (eventsEl.children.length > MAX_EVENTS) eventsEl.firstElementChild.remove();
}

function progress(ev) {
  const words = [ev.phase, ev.status, ev.message].filter(Boolean).join(" ");
  addEvent((ev.service ? ev.service + ": " : "") + words);
  if (!ev.service) return;
  const tr = row(ev.service);
  tr.querySelector(".phase").textContent = ev.phase || "";
  tr.querySelector(".status").textContent = ev.status || "";
  tr.querySelector(".detail").textContent = ev.message || "";
  if (ev.phase === "pull" && typeof ev.current === "number") {
    const cell = tr.querySelector(".bytes");
    let bar = cell.querySelector("progress");
    if (!bar) {
      bar = document.createElement("progress");
      const label = document.createElement("span");
      label.className = "small muted";
      cell.replaceChildren(bar, label);
    }
    if (ev.total) {
      bar.max = ev.total;
      bar.value = Math.min(ev.current, ev.total);
    }
    cell.querySelector("span").textContent = ev.total ? `${size(ev.current)} / ${size(ev.total)}` : size(ev.current);
  }
}

function result(ev) {
  setState(ev.state);
  errorEl.textContent = ev.error || "";
  errorEl.hidden = !ev.error;
  for (const s of ev.services || []) {
    const tr = row(s.name);
    tr.querySelector(".status").textContent = s.state + (s.health ? ` (${s.health})` : "");
    if (s.container_id) tr.querySelector(".detail").textContent = String(s.container_id).slice(0, 12);
  }
  addEvent(`deploy ${ev.state}` + (ev.error ? `: ${ev.error}` : ""));
}

function apply(ev) {
  if (ev.type === "state") {
    setState(ev.state);
    if (ev.message) addEvent(ev.message);
  } else if (ev.type === "progress") {
    progress(ev);
  } else if (ev.type === "gap") {
    addEvent(`(${ev.missed} earlier events are no longer kept)`);
  } else if (ev.type === "result") {
    result(ev);
    return true;
  }
  return false;
}

// One pass over the event stream; true once the result arrived.
async function followOnce() {
  const res = await fetch(`/api/v1/deploys/${encodeURIComponent(ID)}/events`, {
    credentials: "same-origin",
    cache: "no-store",
  });
  if (res.status === 401) {
    location.reload();
    return true;
  }
  if (!res.ok || !res.body) return false;
  eventsEl.replaceChildren(); // the server replays what it keeps: start the list afresh
  setLive("live", "ok");
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let partial = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    const parts = (partial + value).split("\n");
    partial = parts.pop();
    for (const part of parts) {
      if (part && apply(JSON.parse(part))) return true;
    }
  }
  return false;
}

async function follow() {
  let delay = 1000;
  for (;;) {
    let finished = false;
    try {
      finished = await followOnce();
    } catch {
      finished = false; // the server went away: try again below
    }
    if (finished) {
      setLive("ended");
      return;
    }
    setLive("reconnecting…", "warn");
    await sleep(delay);
    delay = Math.min(delay * 2, 10000);
  }
}

cancelButton.addEventListener("click", async () => {
  if (!(await confirmDialog("Cancel this deploy? The host rolls the stack back to how it was.", "Cancel deploy"))) return;
  cancelButton.disabled = true;
  try {
    await api("POST", `/api/v1/deploys/${encodeURIComponent(ID)}/cancel`);
    notice("Cancelling: the host rolls back", "ok");
  } catch (err) {
    notice(`Cancel failed — ${err.message}`);
  } finally {
    cancelButton.disabled = false;
  }
});

follow();
