"""The fan-out lists: for each resource, the agent method that lists it, its sort key and its row fields;
the API streams them and the web fleet pages render them."""

from __future__ import annotations

RESOURCES = {
    "containers": ("containers.list", "name", "id, name, image, state, status, stack"),
    "images": ("images.list", "tags", "id, tags, size"),
    "volumes": ("volumes.list", "name", "name, driver, stack"),
    "networks": ("networks.list", "name", "id, name, driver, stack"),
    "stacks": ("stacks.list", "name", "name, services, running, total"),
}
