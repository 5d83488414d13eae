// New agent / rotated token: watch the agent until it is online, without reloading the page.
import { api } from "./app.js";

const box = document.getElementById("enrol");
const status = document.getElementById("enrol-status");
const hint = document.getElementById("enrol-hint");

function show(state) {
  const badge = document.createElement("span");
  badge.className = "badge badge-" + state;
  badge.textContent = state.charAt(0).toUpperCase() + state.slice(1);
  status.replaceChildren(badge);
}

async function poll() {
  try {
    const agent = await api("GET", "/api/v1/agents/" + encodeURIComponent(box.dataset.agentId));
    show(agent.status);
    if (agent.status === "online") {
      hint.textContent = `connected from ${agent.hostname || "the host"} — `;
      const link = document.createElement("a");
      link.href = "/hosts/" + encodeURIComponent(agent.id);
      link.textContent = "open the host";
      hint.append(link);
      return;
    }
    hint.textContent = agent.status === "revoked" ? "revoked" : "waiting for the host to connect…";
  } catch {
    // keep polling
  }
  setTimeout(poll, 1000);
}

if (box) poll();
