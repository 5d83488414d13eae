// Fan-out lists: row actions refresh the list fragment at once.
import { refresh } from "./app.js";
import { wireContainerActions } from "./actions.js";
import "./objects.js"; // volumes, networks, images: create, remove, pull, prune

const body = document.getElementById("list-body");
if (body && body.dataset.resource === "containers") {
  wireContainerActions(body, () => refresh("list"));
}

// Live: the server says which hosts' rows changed (from their engines' events); the list re-renders
// at once instead of at the next 5 s refresh. A burst of notices becomes one refresh.
// Stacks share this page shape but stay on the live fan-out (docs/inventory.md): no stream for them.
const LIVE = ["containers", "images", "volumes", "networks"];
if (body && window.EventSource && LIVE.includes(body.dataset.resource)) {
  const params = new URLSearchParams(location.search);
  params.set("resource", body.dataset.resource);
  const events = new EventSource(`/lists/events?${params}`);
  let pending = null;
  // The first event says the stream is open: from here on no change is missed (tests wait for it).
  events.addEventListener("hosts", () => {
    body.dataset.live = "1";
  });
  events.addEventListener("changed", (event) => {
    const { hosts } = JSON.parse(event.data);
    if (!hosts.length || pending) return;
    pending = setTimeout(() => {
      pending = null;
      refresh("list");
    }, 50);
  });
  window.addEventListener("pagehide", () => events.close());
}
