"""Keeps the server's copy of this host's containers, images, volumes and networks current.

The contract is docs/inventory.md.

On link up: subscribe to the engine's events (from a moment before now), then send a snapshot per kind;
every event after that marks its object (containers) or its kind dirty, and a short settle later the dirty
objects are listed again and only what changed is sent. Re-listing rather than applying the event's own
fields keeps the rows exactly what the fan-out list returns, and makes a replayed or duplicate event
harmless. Every `digest_every` s everything is listed again (repairing any missed event) and a digest per
kind lets the server ask for a resync when its copy differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiodocker

from dockmesh.docker import containers, images, networks, volumes
from dockmesh.docker._api import short_id
from dockmesh.docker.errors import DockerFailure
from dockmesh.docker.events import engine_events
from dockmesh.proto.inventory import CHUNK_ROWS, KEYS, KINDS, MAX_ROWS, Names, digest, fit_row
from dockmesh.proto.methods import Objects, Stacks, Volumes

log = logging.getLogger(__name__)

Send = Callable[[str, dict[str, Any]], None]
Lister = Callable[[], Awaitable[list[dict[str, Any]]]]

DIGEST_EVERY = 30.0
SETTLE = 0.05  # a burst (a stack coming up) becomes one delta per kind, not one per event
CHUNK_BYTES = 256 * 1024  # one event stays far under the link's 1 MiB frame
MAX_DIRTY = 1000  # more containers touched than this in one settle: list them all instead
RETRY = (1.0, 10.0)  # engine unreachable: first and longest wait before trying again
# Events that change no row (exec sessions, attach, copy): skipping them spares a listing per keystroke.
QUIET = ("exec_", "attach", "resize", "top", "archive-path", "extract-to-dir", "export", "commit", "copy")
ENGINE_TYPES = {"container": "containers", "image": "images", "volume": "volumes", "network": "networks"}

# What the server's own requests and streams change: answered only once the change is sent, so a list
# right after an action through dockmesh shows it (events and the answer share the link, in order).
_ALL = KINDS
CHANGES: dict[str, tuple[str, ...]] = {
    "containers.action": ("containers",),
    Objects.VOLUMES_CREATE: ("volumes",),
    Objects.VOLUMES_REMOVE: ("volumes",),
    Objects.VOLUMES_PRUNE: ("volumes",),
    Objects.NETWORKS_CREATE: ("networks",),
    Objects.NETWORKS_REMOVE: ("networks",),
    Objects.IMAGES_PULL: ("images",),
    Objects.IMAGES_REMOVE: ("images",),
    Objects.IMAGES_PRUNE: ("images",),
    Stacks.DEPLOY: _ALL,
    Stacks.CANCEL: _ALL,
    Stacks.DOWN: _ALL,
    Stacks.STOP: ("containers",),
    Stacks.START: ("containers",),
    Volumes.DISCARD: ("volumes", "containers"),
    Volumes.IMPORT: ("volumes", "containers"),
}
SYNC_WAIT = 2.0  # a hung engine must not hold the answer to the action itself

__all__ = ["CHANGES", "Publisher"]


class Publisher:
    """One link's inventory feed. `run()` until cancelled; `on_event` takes the server's resync requests."""

    def __init__(
        self,
        docker: aiodocker.Docker,
        send: Send,
        *,
        clock: Callable[[], float] = time.time,
        digest_every: float = DIGEST_EVERY,
        settle: float = SETTLE,
    ) -> None:
        self._docker = docker
        self._send = send
        self._clock = clock
        self._digest_every = digest_every
        self._settle = settle
        self._gen = int(clock() * 1000)  # differs across links and agent restarts
        self.mirror: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in KINDS}  # what the server has
        self._sent: set[str] = set()  # kinds whose snapshot went out on this link
        self._dirty_ids: set[str] = set()
        self._dirty_kinds: set[str] = set()
        self._resync: set[str] = set(KINDS)
        self._wake = asyncio.Event()
        self._since = clock() - 1.0  # events from a moment before the first listing: none falls between
        self._lock = asyncio.Lock()  # one listing-and-sending at a time: the mirror is theirs

    def on_event(self, name: str, body: dict[str, Any]) -> None:
        if name != Names.RESYNC:
            return
        kinds = body.get("kinds")
        wanted = [k for k in kinds if k in KINDS] if isinstance(kinds, list) else list(KINDS)
        self._resync.update(wanted)
        self._wake.set()

    async def after(self, method: str) -> None:
        """Once a request or stream that changes the engine is done: send what it changed now."""
        kinds = CHANGES.get(method)
        if not kinds:
            return
        self._dirty_kinds.update(kinds)
        try:
            await asyncio.wait_for(self._locked_flush(), SYNC_WAIT)
        except (DockerFailure, asyncio.TimeoutError):
            self._wake.set()  # the loop retries; the answer does not wait for it

    async def _locked_flush(self) -> None:
        async with self._lock:
            await self._flush()

    async def run(self) -> None:
        watcher = asyncio.ensure_future(self._watch())
        try:
            await self._loop()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_digest = loop.time() + self._digest_every
        wait = RETRY[0]
        while True:
            try:
                await self._locked_flush()
                if loop.time() >= next_digest:
                    self._dirty_kinds.update(KINDS)  # repair: whatever an event did not tell us
                    async with self._lock:
                        await self._flush()
                        self._send_digest()
                    next_digest = loop.time() + self._digest_every
                wait = RETRY[0]
            except DockerFailure as exc:
                log.warning("inventory: engine unavailable (%s); retrying in %gs", exc.message, wait)
                # Whatever failed is still marked (see _flush): listed again once the engine answers.
                await asyncio.sleep(wait)
                wait = min(wait * 2, RETRY[1])
                continue
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, next_digest - loop.time()))
            self._wake.clear()
            await asyncio.sleep(self._settle)

    # --- the engine's events -------------------------------------------------------------------
    async def _watch(self) -> None:
        """Follow the engine's events; when the stream ends or fails (engine restart), follow again
        from the last event seen, and list everything again for what happened meanwhile."""
        wait = RETRY[0]
        filters = {"type": list(ENGINE_TYPES)}
        while True:
            try:
                async for event in engine_events(self._docker, filters, since=self._since):
                    self._note(event)
                    wait = RETRY[0]
            except DockerFailure as exc:
                log.info("inventory: engine events interrupted (%s)", exc.message)
            self._dirty_kinds.update(KINDS)
            self._wake.set()
            await asyncio.sleep(wait)
            wait = min(wait * 2, RETRY[1])

    def _note(self, event: dict[str, Any]) -> None:
        when = event.get("timeNano")
        if isinstance(when, int) and not isinstance(when, bool):
            self._since = max(self._since, when / 1e9)
        kind = ENGINE_TYPES.get(str(event.get("Type", "")))
        action = str(event.get("Action", ""))
        if kind is None or action.startswith(QUIET):
            return
        actor = event.get("Actor")
        ident = actor.get("ID") if isinstance(actor, dict) else None
        if kind == "containers" and isinstance(ident, str) and len(self._dirty_ids) < MAX_DIRTY:
            self._dirty_ids.add(ident)
        else:
            self._dirty_kinds.add(kind)
        self._wake.set()

    # --- listing and sending -------------------------------------------------------------------
    def _lister(self, kind: str) -> Lister:
        docker = self._docker
        if kind == "containers":
            return lambda: containers.list_containers(docker, all=True)
        if kind == "images":
            return lambda: images.list_images(docker)
        if kind == "volumes":
            return lambda: volumes.list_volumes(docker)
        return lambda: networks.list_networks(docker)

    async def _listed(self, kind: str) -> dict[str, dict[str, Any]]:
        key = KEYS[kind]
        rows = [fit_row(kind, r) for r in await self._lister(kind)()]
        if len(rows) > MAX_ROWS:
            log.warning("inventory: %d %s, only the first %d are sent", len(rows), kind, MAX_ROWS)
        return {row[key]: row for row in rows[:MAX_ROWS] if row[key]}

    async def _flush(self) -> None:
        """Send what the server asked for again, then what events touched.

        What is taken off the dirty sets is taken before its listing (an event during the listing marks
        it again) and put back if the listing fails or is cancelled (nothing is lost to an engine error).
        """
        for kind in [k for k in KINDS if k in self._resync]:
            self._resync.discard(kind)
            self._dirty_kinds.discard(kind)
            try:
                rows = await self._listed(kind)
            except BaseException:
                self._resync.add(kind)
                raise
            self.mirror[kind] = rows
            self._snapshot(kind, list(rows.values()))
            self._sent.add(kind)
        if "containers" in self._dirty_kinds:
            self._dirty_ids.clear()  # the whole kind is listed below
        if self._dirty_ids:
            ids = sorted(self._dirty_ids)
            self._dirty_ids.clear()
            try:
                listed = await containers.list_containers(self._docker, ids=ids)
            except BaseException:
                self._dirty_ids.update(ids)
                raise
            found = [fit_row("containers", r) for r in listed]
            fresh = {row["id"]: row for row in found if row["id"]}
            touched = {short_id(i) for i in ids} | set(fresh)
            self._apply("containers", {k: fresh.get(k) for k in touched})
        for kind in [k for k in KINDS if k in self._dirty_kinds]:
            self._dirty_kinds.discard(kind)
            try:
                rows = await self._listed(kind)
            except BaseException:
                self._dirty_kinds.add(kind)
                raise
            known = self.mirror[kind]
            self._apply(kind, {k: rows.get(k) for k in set(rows) | set(known)})

    def _apply(self, kind: str, changes: dict[str, dict[str, Any] | None]) -> None:
        """Send the rows that differ from the mirror (None: gone) and update the mirror."""
        known = self.mirror[kind]
        upsert: list[dict[str, Any]] = []
        remove: list[str] = []
        for key, row in sorted(changes.items()):
            if row is None:
                if known.pop(key, None) is not None:
                    remove.append(key)
            elif known.get(key) != row:
                if key not in known and len(known) >= MAX_ROWS:
                    continue
                known[key] = row
                upsert.append(row)
        if kind not in self._sent:
            return  # its snapshot has not gone out yet: it will carry these rows
        for i in range(0, len(remove), CHUNK_ROWS):
            part = remove[i : i + CHUNK_ROWS]
            self._send(Names.DELTA, {"kind": kind, "gen": self._gen, "upsert": [], "remove": part})
        for chunk in _chunks(upsert):
            self._send(Names.DELTA, {"kind": kind, "gen": self._gen, "upsert": chunk, "remove": []})

    def _snapshot(self, kind: str, rows: list[dict[str, Any]]) -> None:
        parts = list(_chunks(rows)) or [[]]
        for i, part in enumerate(parts):
            self._send(
                Names.SNAPSHOT, {"kind": kind, "gen": self._gen, "rows": part, "done": i == len(parts) - 1}
            )

    def _send_digest(self) -> None:
        kinds = {kind: digest(self.mirror[kind].values()) for kind in KINDS if kind in self._sent}
        self._send(Names.DIGEST, {"gen": self._gen, "kinds": kinds})


def _chunks(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Rows in events of at most CHUNK_ROWS rows and about CHUNK_BYTES bytes."""
    out: list[list[dict[str, Any]]] = []
    part: list[dict[str, Any]] = []
    size = 0
    for row in rows:
        n = len(json.dumps(row))
        if part and (len(part) >= CHUNK_ROWS or size + n > CHUNK_BYTES):
            out.append(part)
            part, size = [], 0
        part.append(row)
        size += n
    if part:
        out.append(part)
    return out
