// Volumes, networks and images: create, remove, pull (progress from the NDJSON stream), prune with a preview.
import { ApiError, api, confirmDialog, csrfToken, goToLogin, notice, refresh } from "./app.js";

const tools = document.getElementById("object-tools");
const body = document.getElementById("list-body");
const q = encodeURIComponent;

function hostPath(host) {
  return `/api/v1/hosts/${q(host)}`;
}

function mib(n) {
  return `${(n / 1048576).toFixed(1)} MiB`;
}

function busy(form, on) {
  for (const b of form.querySelectorAll("button")) b.disabled = on;
  form.setAttribute("aria-busy", String(on));
}

// Row removal (the tables are inside the refreshed fragment: one delegated listener).
function wireRemove() {
  body.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-remove]");
    if (!button) return;
    const row = button.closest("tr[data-kind]");
    const { host, ref, kind } = row.dataset;
    const label = row.dataset.label || ref;
    const noun = kind.slice(0, -1);
    if (!(await confirmDialog(`Remove ${noun} ${label}?`, "Remove"))) return;
    button.disabled = true;
    try {
      await api("DELETE", `${hostPath(host)}/${kind}/${kind === "images" ? ref.split("/").map(q).join("/") : q(ref)}`);
      notice(`${noun} ${label} removed`, "ok");
    } catch (err) {
      notice(`${noun} ${label}: ${err.message}`);
      button.disabled = false;
    }
    await refresh("list");
  });
}

function wireCreate(form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const kind = form.dataset.kind;
    const data = new FormData(form);
    const payload = { name: String(data.get("name") || "").trim() };
    if (kind === "networks") payload.internal = data.get("internal") === "on";
    busy(form, true);
    try {
      const row = await api("POST", `${hostPath(data.get("host"))}/${kind}`, payload);
      notice(`${kind.slice(0, -1)} ${row.name} created on ${row.host.name}`, "ok");
      form.reset();
    } catch (err) {
      notice(`create failed — ${err.message}`);
    } finally {
      busy(form, false);
    }
    await refresh("list");
  });
}

// Reads an NDJSON response line by line as it arrives.
async function* ndjson(res) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, cut).trim();
      buffer = buffer.slice(cut + 1);
      if (line) yield JSON.parse(line);
    }
  }
  if (buffer.trim()) yield JSON.parse(buffer);
}

function wirePull(form) {
  const box = document.getElementById("pull-progress");
  const bar = box.querySelector("progress");
  const status = document.getElementById("pull-status");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const image = String(new FormData(form).get("image") || "").trim();
    busy(form, true);
    box.hidden = false;
    bar.value = 0;
    status.textContent = `pulling ${image}…`;
    const perHost = new Map();
    try {
      const res = await fetch(`/api/v1/images/pull?host=${q(tools.dataset.selector)}`, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
        body: JSON.stringify({ image }),
      });
      if (res.status === 401) return goToLogin();
      if (!res.ok) {
        const err = (await res.json().catch(() => ({}))).error || {};
        throw new ApiError(res.status, err.code, err.message || res.statusText);
      }
      for await (const line of ndjson(res)) {
        if (line.type === "progress") {
          perHost.set(line.host.id, [line.pulled || 0, line.size || 0]);
          let done = 0;
          let total = 0;
          for (const [d, t] of perHost.values()) {
            done += d;
            total += t;
          }
          bar.value = total ? Math.round((100 * done) / total) : 0;
          status.textContent = `pulling ${image}: ${mib(done)} of ${mib(total)} on ${perHost.size} host(s)`;
        } else if (line.type === "result") {
          bar.value = 100;
          const failed = line.hosts.filter((h) => h.status !== "ok");
          status.textContent =
            `${image}: pulled on ${line.items.length} host(s)` +
            (failed.length ? `; failed on ${failed.map((h) => `${h.name} (${h.error})`).join(", ")}` : "");
          notice(status.textContent, failed.length ? "error" : "ok");
        }
      }
    } catch (err) {
      status.textContent = `pull failed — ${err.message}`;
      notice(status.textContent);
    } finally {
      busy(form, false);
    }
    await refresh("list");
  });
}

function wirePrune(form) {
  const kind = tools.dataset.resource;
  const panel = document.getElementById("prune-result");
  const title = document.getElementById("prune-title");
  const rows = document.querySelector("#prune-table tbody");
  const summary = document.getElementById("prune-summary");
  const confirmButton = document.getElementById("prune-confirm");
  let request = null;

  function show(result, dryRun) {
    rows.replaceChildren();
    let count = 0;
    for (const r of result.results) {
      for (const item of r.items) {
        count += 1;
        const tr = document.createElement("tr");
        const name = kind === "volumes" ? item.name : (item.tags.length ? item.tags.join(", ") : item.id);
        for (const text of [r.host.name, name, mib(item.size)]) {
          const td = document.createElement("td");
          td.textContent = text;
          tr.append(td);
        }
        rows.append(tr);
      }
    }
    const failed = result.hosts.filter((h) => h.status !== "ok").map((h) => `${h.name}: ${h.status}`);
    const kept = result.results.flatMap((r) => r.failed.map((f) => `${r.host.name}: ${f.error}`));
    title.textContent = dryRun ? `Prune preview: ${count} ${kind} would be removed` : `Pruned ${count} ${kind}`;
    summary.textContent =
      `${dryRun ? "Would free" : "Freed"} ${mib(result.reclaimed)}.` +
      (failed.length ? ` Not asked: ${failed.join("; ")}.` : "") +
      (kept.length ? ` Kept: ${kept.join("; ")}.` : "");
    confirmButton.hidden = !dryRun || count === 0;
    panel.hidden = false;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    request = { dry_run: true };
    if (kind === "images") request.mode = data.get("dangling") === "on" ? "dangling" : "unused";
    busy(form, true);
    try {
      show(await api("POST", `/api/v1/${kind}/prune?host=${q(tools.dataset.selector)}`, request), true);
    } catch (err) {
      notice(`prune preview failed — ${err.message}`);
    } finally {
      busy(form, false);
    }
  });

  confirmButton.addEventListener("click", async () => {
    if (!request) return;
    confirmButton.disabled = true;
    try {
      const path = `/api/v1/${kind}/prune?host=${q(tools.dataset.selector)}`;
      show(await api("POST", path, { ...request, dry_run: false }), false);
      notice(`prune of ${kind} done`, "ok");
    } catch (err) {
      notice(`prune failed — ${err.message}`);
    } finally {
      confirmButton.disabled = false;
    }
    await refresh("list");
  });
  document.getElementById("prune-cancel").addEventListener("click", () => {
    panel.hidden = true;
  });
}

if (tools && body) {
  wireRemove();
  const create = document.getElementById("create-form");
  if (create) wireCreate(create);
  const pull = document.getElementById("pull-form");
  if (pull) wirePull(pull);
  const prune = document.getElementById("prune-form");
  if (prune) wirePrune(prune);
}
