"""The fleet lists: for each resource, the agent method that lists it, its sort key and its row fields;
and the lists themselves, answered from the hosts' pushed inventory (docs/inventory.md) where it is
current, asking the other hosts live. The API and the web fleet pages both call `listing`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from dockmesh.proto.inventory import KINDS
from dockmesh.server.context import ServerContext
from dockmesh.server.errors import ApiError
from dockmesh.server.fanout import FanOut, Gather, HostOutcome, row_key
from dockmesh.server.services import access
from dockmesh.server.services.access import Caller

RESOURCES = {
    "containers": ("containers.list", "name", "id, name, image, state, status, stack"),
    "images": ("images.list", "tags", "id, tags, size"),
    "volumes": ("volumes.list", "name", "name, driver, stack"),
    "networks": ("networks.list", "name", "id, name, driver, stack"),
    "stacks": ("stacks.list", "name", "name, services, running, total"),
}
STALE_MODES = ("include", "exclude")
# Changes a watcher may have queued before it coalesces them; past it, one "everything changed" stands in.
MAX_QUEUED = 1000
WATCH_BATCH = 0.1  # a burst of changes becomes one notice
WATCH_IDLE = 25.0  # a notice (possibly empty) at least this often: a gone reader is noticed, scope re-read


@dataclass(frozen=True)
class ListQuery:
    """A list request's options: `?host=`, `?stale=include|exclude`, `?fresh=1`, `?timeout=` (seconds)."""

    selector: str = "all"
    stale: str = "include"
    fresh: bool = False
    deadline: float = 3.0

    @classmethod
    def parse(cls, query: Any, deadline: float) -> ListQuery:
        stale = query.get("stale", "include") or "include"
        if stale not in STALE_MODES:
            raise ApiError(400, "invalid_stale", "stale must be include or exclude")
        fresh = query.get("fresh", "0") or "0"
        if fresh not in ("0", "1", "true", "false"):
            raise ApiError(400, "invalid_fresh", "fresh must be 1 or 0")
        selector = query.get("host", "all").strip() or "all"
        return cls(selector, stale, fresh in ("1", "true"), deadline)


async def listing(c: ServerContext, caller: Caller, resource: str, q: ListQuery) -> FanOut:
    """Rows of every selected host in scope, with an outcome for each (`age_s`, `stale`).

    A host whose inventory of this kind is current answers from memory; an online host without one
    (just connected, an older agent, a dropped copy) and every host under `fresh` is asked live; an
    offline host shows its last-known rows marked stale, unless `stale=exclude`.
    """
    method, sort_key, _fields = RESOURCES[resource]
    hosts = await c.directory.select(q.selector, caller, access.CONTAINERS_VIEW)
    if q.fresh or resource not in KINDS:
        return await Gather(hosts, method, {}, q.deadline, sort_key).wait()
    inventory = c.gateway.inventory
    views = [inventory.view(h.id, resource, online=h.online) for h in hosts]
    ask = [h for h, v in zip(hosts, views, strict=True) if v.rows is None and h.online]
    asked: dict[str, tuple[HostOutcome, list[dict[str, Any]]]] = {}
    if ask:
        gathered = await Gather(ask, method, {}, q.deadline, sort_key).wait()
        for host, outcome, rows in zip(ask, gathered.outcomes, gathered.rows, strict=True):
            asked[host.id] = (outcome, rows)
    outcomes: list[HostOutcome] = []
    rows_by_host: list[list[dict[str, Any]]] = []
    for host, view in zip(hosts, views, strict=True):
        if host.id in asked:
            outcome, rows = asked[host.id]
        elif view.rows is None:  # online in the directory, closed by the time it was asked
            outcome, rows = HostOutcome(host.id, host.name, "offline", "the link closed", 0.0, None, True), []
        else:
            summary = host.summary()
            rows = sorted(
                ({**row, "host": summary} for row in view.rows), key=lambda r: row_key(r.get(sort_key))
            )
            if view.stale:
                error = f"host {host.name!r} is offline"
                outcome = HostOutcome(host.id, host.name, "offline", error, 0.0, view.age_s, True)
                for row in rows:
                    row["stale"] = True
                if q.stale == "exclude":
                    rows = []
            else:
                outcome = HostOutcome(host.id, host.name, "ok", None, 0.0, view.age_s, False)
        outcomes.append(outcome)
        rows_by_host.append(rows)
    return FanOut(outcomes, rows_by_host)


async def watch(
    c: ServerContext, caller: Caller, resource: str, selector: str, *, lifetime: float = 600.0
) -> AsyncGenerator[list[str], None]:
    """The ids of selected, in-scope hosts whose `resource` rows changed, in batches, for `lifetime` s.

    The first batch is every host the watcher may see. Scope is read again at every batch, so a
    retag or a role change applies within `WATCH_IDLE`; a host out of scope is never named.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str] = asyncio.Queue(MAX_QUEUED)
    flooded = False

    def changed(host_id: str, kind: str) -> None:
        nonlocal flooded
        if kind != resource:
            return
        try:
            queue.put_nowait(host_id)
        except asyncio.QueueFull:
            flooded = True

    stopping = False

    def closing() -> None:
        nonlocal stopping
        stopping = True
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait("")  # wakes the wait below

    inventory = c.gateway.inventory
    inventory.on_change.append(changed)
    inventory.on_close.append(closing)
    end = loop.time() + lifetime
    try:
        visible = {h.id for h in await c.directory.select(selector, caller, access.CONTAINERS_VIEW)}
        yield sorted(visible)
        while (left := end - loop.time()) > 0:
            batch: set[str] = set()
            with contextlib.suppress(TimeoutError):
                batch.add(await asyncio.wait_for(queue.get(), min(WATCH_IDLE, left)))
                await asyncio.sleep(WATCH_BATCH)
            while not queue.empty():
                batch.add(queue.get_nowait())
            if stopping:
                return
            visible = {h.id for h in await c.directory.select(selector, caller, access.CONTAINERS_VIEW)}
            if flooded:
                batch, flooded = set(visible), False
            yield sorted(batch & visible)
    finally:
        inventory.on_change.remove(changed)
        inventory.on_close.remove(closing)
