// Fan-out lists: row actions refresh the list fragment at once.
import { refresh } from "./app.js";
import { wireContainerActions } from "./actions.js";
import "./objects.js"; // volumes, networks, images: create, remove, pull, prune

const body = document.getElementById("list-body");
if (body && body.dataset.resource === "containers") {
  wireContainerActions(body, () => refresh("list"));
}
