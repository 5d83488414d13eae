"""The server's copy of every host's containers, images, volumes and networks (docs/inventory.md).

Fed by the events each host pushes over its link (a snapshot per kind, then deltas, then digests); read by
the list endpoints without a round trip. Pure: no asyncio, no sockets; the clock and the way back to the
host (`send`) are injected. A host that breaks the contract loses only its own copy: it is dropped, the
host's lists fall back to asking it live, and it is asked (at most every `RESYNC_EVERY` s) to start again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dockmesh.proto.inventory import CHUNK_ROWS, KEYS, KINDS, MAX_ROWS, BadRow, Names, check_row, digest

log = logging.getLogger(__name__)

Send = Callable[[str, dict[str, Any]], None]
RESYNC_EVERY = 5.0
# The agent sends a digest every 30 s even when nothing changes; three missed ones mean its feed is stuck.
QUIET_AFTER = 95.0

__all__ = ["HostInventory", "Inventory", "View"]


@dataclass
class HostInventory:
    """One host's rows by kind and key; `current` kinds are complete on the live link."""

    rows: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: {k: {} for k in KINDS})
    complete: set[str] = field(default_factory=set)  # rows once held a whole snapshot (maybe stale now)
    current: set[str] = field(default_factory=set)  # … and are kept current on the live link
    pending: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # snapshots arriving
    gen: int | None = None
    send: Send | None = None  # None while offline
    offline_at: float | None = None
    received_at: float | None = None
    resync_at: float | None = None
    rows_total: int = 0  # what `pending` holds, against the per-host bound


@dataclass(frozen=True)
class View:
    """What a list can show for one host and kind: rows (None: ask the host live), age and staleness."""

    rows: list[dict[str, Any]] | None
    age_s: float | None
    stale: bool


class Inventory:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._hosts: dict[str, HostInventory] = {}
        # Called with (host id, kind) after each change, for the pages that update in place.
        self.on_change: list[Callable[[str, str], None]] = []
        self.on_close: list[Callable[[], None]] = []  # the server is stopping: watchers end

    # --- link lifecycle ------------------------------------------------------------------------
    def online(self, host_id: str, send: Send) -> None:
        """A new link: the last rows stay (shown stale) until the new snapshot of their kind completes."""
        inv = self._hosts.setdefault(host_id, HostInventory())
        inv.send = send
        inv.current.clear()
        inv.pending.clear()
        inv.rows_total = 0
        inv.gen = None
        inv.resync_at = None

    def offline(self, host_id: str) -> None:
        inv = self._hosts.get(host_id)
        if inv is None or inv.send is None:
            return
        inv.send = None
        inv.current.clear()
        inv.pending.clear()
        inv.offline_at = self._clock()
        for kind in KINDS:  # its rows turn stale: the pages showing them refresh
            self._changed(host_id, kind)

    def close(self) -> None:
        for hook in list(self.on_close):
            hook()

    def forget(self, host_id: str) -> None:
        """A revoked or deleted host: nothing of it is kept."""
        self._hosts.pop(host_id, None)

    # --- reading -------------------------------------------------------------------------------
    def view(self, host_id: str, kind: str, *, online: bool) -> View:
        inv = self._hosts.get(host_id)
        if online:
            # A host whose feed went quiet for several digest periods (a stuck publisher) is asked live:
            # rows that may have stopped following the engine are never shown as current.
            quiet = inv is None or inv.received_at is None or self._clock() - inv.received_at > QUIET_AFTER
            if inv is not None and kind in inv.current and inv.send is not None and not quiet:
                return View(list(inv.rows[kind].values()), 0.0, False)
            return View(None, 0.0, False)
        if inv is None or kind not in inv.complete:
            return View([], None, True)
        since = inv.offline_at if inv.offline_at is not None else inv.received_at
        age = round(max(0.0, self._clock() - since), 1) if since is not None else None
        return View(list(inv.rows[kind].values()), age, True)

    def digests(self, host_id: str) -> dict[str, str]:
        inv = self._hosts.get(host_id)
        if inv is None:
            return {}
        return {kind: digest(inv.rows[kind].values()) for kind in sorted(inv.current)}

    # --- the host's events ---------------------------------------------------------------------
    def receive(self, host_id: str, name: str, body: dict[str, Any]) -> None:
        """Apply one inventory event from `host_id`'s live link; a violation drops its copy."""
        inv = self._hosts.get(host_id)
        if inv is None or inv.send is None:
            return  # not announced online (e.g. before hello): ignored, the snapshot follows hello
        inv.received_at = self._clock()
        try:
            if name == Names.SNAPSHOT:
                self._snapshot(host_id, inv, body)
            elif name == Names.DELTA:
                self._delta(host_id, inv, body)
            elif name == Names.DIGEST:
                self._digest(host_id, inv, body)
        except BadRow as exc:
            self._violation(host_id, inv, str(exc))

    def _kind(self, body: dict[str, Any]) -> str:
        kind = body.get("kind")
        if kind not in KINDS:
            raise BadRow("'kind' must be one of " + ", ".join(KINDS))
        return str(kind)

    def _rows(self, kind: str, value: Any, name: str) -> list[dict[str, Any]]:
        if not isinstance(value, list) or len(value) > CHUNK_ROWS:
            raise BadRow(f"{name!r} must be a list of at most {CHUNK_ROWS} rows")
        return [check_row(kind, row) for row in value]

    def _snapshot(self, host_id: str, inv: HostInventory, body: dict[str, Any]) -> None:
        kind = self._kind(body)
        gen = body.get("gen")
        if not isinstance(gen, int) or isinstance(gen, bool):
            raise BadRow("'gen' must be an integer")
        rows = self._rows(kind, body.get("rows"), "rows")
        done = body.get("done")
        if not isinstance(done, bool):
            raise BadRow("'done' must be a boolean")
        part = inv.pending.setdefault(kind, {})
        key = KEYS[kind]
        for row in rows:
            part[row[key]] = row
        if len(part) > MAX_ROWS:
            raise BadRow(f"more than {MAX_ROWS} {kind} in one snapshot")
        if not done:
            return
        inv.rows[kind] = inv.pending.pop(kind)
        inv.gen = gen
        inv.complete.add(kind)
        inv.current.add(kind)
        inv.offline_at = None
        self._changed(host_id, kind)

    def _delta(self, host_id: str, inv: HostInventory, body: dict[str, Any]) -> None:
        kind = self._kind(body)
        if kind not in inv.current:
            return  # a delta racing a dropped copy: the resync's snapshot supersedes it
        upsert = self._rows(kind, body.get("upsert", []), "upsert")
        remove = body.get("remove", [])
        if (
            not isinstance(remove, list)
            or len(remove) > CHUNK_ROWS
            or not all(isinstance(k, str) for k in remove)
        ):
            raise BadRow(f"'remove' must be a list of at most {CHUNK_ROWS} keys")
        rows = inv.rows[kind]
        key = KEYS[kind]
        for k in remove:
            rows.pop(k, None)
        for row in upsert:
            rows[row[key]] = row
        if len(rows) > MAX_ROWS:
            raise BadRow(f"more than {MAX_ROWS} {kind}")
        self._changed(host_id, kind)

    def _digest(self, host_id: str, inv: HostInventory, body: dict[str, Any]) -> None:
        kinds = body.get("kinds")
        if not isinstance(kinds, dict):
            raise BadRow("'kinds' must map kinds to digests")
        # A kind the host has sent but we do not hold current (a dropped copy whose resync was held
        # back by the rate limit) counts as drifted too: this is how a dropped copy heals.
        drifted = [
            kind
            for kind in KINDS
            if isinstance(kinds.get(kind), str)
            and kind not in inv.pending
            and (kind not in inv.current or kinds[kind] != digest(inv.rows[kind].values()))
        ]
        if drifted:
            log.info("inventory of host %s drifted (%s): asking for a resync", host_id, ", ".join(drifted))
            for kind in drifted:
                inv.current.discard(kind)
            self._resync(inv, drifted)

    def _violation(self, host_id: str, inv: HostInventory, reason: str) -> None:
        if inv.current or inv.pending:
            log.warning("host %s broke the inventory contract (%s): its copy is dropped", host_id, reason)
        inv.rows = {k: {} for k in KINDS}
        inv.complete.clear()
        inv.current.clear()
        inv.pending.clear()
        self._resync(inv, list(KINDS))
        for kind in KINDS:
            self._changed(host_id, kind)

    def _resync(self, inv: HostInventory, kinds: list[str]) -> None:
        now = self._clock()
        # Bounded: a host that keeps breaking the contract is asked once per RESYNC_EVERY, not per message.
        if inv.send is None or (inv.resync_at is not None and now - inv.resync_at < RESYNC_EVERY):
            return
        inv.resync_at = now
        inv.send(Names.RESYNC, {"kinds": kinds})

    def _changed(self, host_id: str, kind: str) -> None:
        for hook in self.on_change:
            hook(host_id, kind)
