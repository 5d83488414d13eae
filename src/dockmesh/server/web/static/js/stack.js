// Stack page: the merged logs of the stack's services on the chosen host, followed live; the host cards
// refresh in place, keeping each card's "also remove volumes" choice.
const logsEl = document.getElementById("stack-logs");
const status = document.getElementById("logs-status");
const select = document.getElementById("logs-host");
const STACK = logsEl.dataset.stack;
const MAX_LINES = 5000;

const logs = { controller: null, generation: 0 };

function setPill(text, kind) {
  status.textContent = text;
  status.className = "pill" + (kind ? " " + kind : "");
}

function append(text) {
  const stick = logsEl.scrollHeight - logsEl.scrollTop - logsEl.clientHeight < 40;
  logsEl.append(document.createTextNode(text));
  while (logsEl.childNodes.length > MAX_LINES && logsEl.firstChild) logsEl.firstChild.remove();
  if (stick) logsEl.scrollTop = logsEl.scrollHeight;
}

async function follow() {
  const generation = ++logs.generation;
  if (logs.controller) logs.controller.abort();
  const controller = new AbortController();
  logs.controller = controller;
  logsEl.textContent = "";
  setPill("connecting…");
  const host = encodeURIComponent(select.value);
  const url = `/api/v1/stacks/${encodeURIComponent(STACK)}/logs?host=${host}&follow=1&tail=200`;
  try {
    const res = await fetch(url, { credentials: "same-origin", signal: controller.signal, cache: "no-store" });
    if (!res.ok || !res.body) {
      setPill(res.status === 404 ? "no containers" : "unavailable", "warn");
      return;
    }
    setPill("live", "ok");
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let partial = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done || generation !== logs.generation) break;
      const parts = (partial + value).split("\n");
      partial = parts.pop();
      for (const part of parts) append(part + "\n");
    }
    if (partial) append(partial + "\n");
    if (generation === logs.generation) setPill("ended");
  } catch (err) {
    if (err.name !== "AbortError" && generation === logs.generation) setPill("unavailable", "warn");
  }
}

if (select) {
  select.addEventListener("change", follow);
  follow();
}

// --- host cards: a refresh must not undo a ticked "also remove volumes" ----------------------------

const hostsSection = document.getElementById("stack-hosts");
const removeVolumes = new Set();
const hostOf = (el) => el.closest("[data-host-id]").dataset.hostId;

hostsSection.addEventListener("change", (event) => {
  const box = event.target.closest("input[name=volumes]");
  if (!box) return;
  if (box.checked) removeVolumes.add(hostOf(box));
  else removeVolumes.delete(hostOf(box));
});
hostsSection.addEventListener("fragment:swapped", () => {
  for (const box of hostsSection.querySelectorAll("input[name=volumes]")) box.checked = removeVolumes.has(hostOf(box));
});
