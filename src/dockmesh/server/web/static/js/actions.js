// Container actions (start, stop, restart, remove) on any element carrying data-host and data-container.
import { api, confirmDialog, notice } from "./app.js";

const PENDING = { start: "starting…", stop: "stopping…", restart: "restarting…", remove: "removing…" };

function actionPath(host, container, action) {
  const base = `/api/v1/hosts/${encodeURIComponent(host)}/containers/${encodeURIComponent(container)}`;
  return action === "remove" ? base : `${base}/${action}`;
}

// Calls `done(action, holder)` after the engine has acted, so the page can refresh what it shows.
export function wireContainerActions(root, done) {
  root.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button || !root.contains(button)) return;
    const holder = button.closest("[data-container]");
    if (!holder) return;
    const { host, container } = holder.dataset;
    const action = button.dataset.action;
    if (action === "remove") {
      const ok = await confirmDialog(
        `Remove container ${container}? It is stopped if running and deleted with its anonymous volumes.`,
        "Remove",
      );
      if (!ok) return;
    }
    holder.setAttribute("aria-busy", "true");
    for (const b of holder.querySelectorAll("button[data-action]")) b.disabled = true;
    const stateCell = holder.querySelector(".state");
    if (stateCell) stateCell.textContent = PENDING[action];
    try {
      await api(action === "remove" ? "DELETE" : "POST", actionPath(host, container, action));
      notice(`${container}: ${action} done`, "ok");
    } catch (err) {
      notice(`${container}: ${action} failed — ${err.message}`);
    } finally {
      holder.removeAttribute("aria-busy");
      await done(action, holder);
    }
  });
}
