// Migration progress: follows /api/v1/migrations/{id}/events (a snapshot on every change, the final one last).
// The migration is a server task: leaving the page only stops following.
const page = document.getElementById("migration-page");
const ID = page.dataset.migration;
const stateEl = document.getElementById("migration-state");
const liveEl = document.getElementById("migration-live");
const phaseEl = document.getElementById("migration-phase");
const bar = document.getElementById("migration-bar");
const bytesEl = document.getElementById("migration-bytes");
const reasonEl = document.getElementById("migration-reason");
const keptEl = document.getElementById("migration-kept");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function size(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
}

function apply(m) {
  stateEl.textContent = m.state;
  stateEl.className = "badge badge-" + m.state;
  page.dataset.state = m.state;
  phaseEl.textContent = m.phase;
  bar.max = Math.max(1, m.bytes_total);
  bar.value = Math.min(m.bytes_done, bar.max);
  bytesEl.textContent = `${size(m.bytes_done)} / ${size(m.bytes_total)}`;
  reasonEl.textContent = m.reason || "";
  reasonEl.hidden = !m.reason;
  keptEl.textContent = m.source_volumes + (m.keep_until ? ` until ${new Date(m.keep_until * 1000).toLocaleString()}` : "");
  return m.state !== "running";
}

async function followOnce() {
  const res = await fetch(`/api/v1/migrations/${encodeURIComponent(ID)}/events`, { credentials: "same-origin", cache: "no-store" });
  if (res.status === 401) {
    location.reload();
    return true;
  }
  if (!res.ok || !res.body) return false;
  liveEl.textContent = "live";
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
      finished = false;
    }
    if (finished) {
      liveEl.textContent = "ended";
      return;
    }
    liveEl.textContent = "reconnecting…";
    await sleep(delay);
    delay = Math.min(delay * 2, 10000);
  }
}

follow();
