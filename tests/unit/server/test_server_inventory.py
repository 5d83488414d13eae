"""The server's copy of a host's inventory: snapshots, deltas, digests, staleness, and hostile input."""

from __future__ import annotations

from typing import Any

import pytest

from dockmesh.proto.inventory import CHUNK_ROWS, MAX_ROWS, Names, digest
from dockmesh.server.inventory import QUIET_AFTER, RESYNC_EVERY, Inventory


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def row(cid: str, state: str = "running") -> dict[str, Any]:
    return {
        "id": cid,
        "name": f"c-{cid}",
        "image": "local/busybox:1",
        "state": state,
        "status": "Up",
        "stack": None,
        "service": None,
        "created": 1,
    }


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sent() -> list[tuple[str, dict[str, Any]]]:
    return []


@pytest.fixture
def inv(clock: Clock, sent: list[tuple[str, dict[str, Any]]]) -> Inventory:
    inventory = Inventory(clock)
    inventory.online("h1", lambda name, body: sent.append((name, body)))
    return inventory


def snapshot(inv: Inventory, rows: list[dict[str, Any]], kind: str = "containers") -> None:
    inv.receive("h1", Names.SNAPSHOT, {"kind": kind, "gen": 1, "rows": rows, "done": True})


def ids(inv: Inventory, online: bool = True) -> list[str] | None:
    rows = inv.view("h1", "containers", online=online).rows
    return None if rows is None else sorted(r["id"] for r in rows)


def test_a_host_is_asked_live_until_its_snapshot_completes(inv: Inventory) -> None:
    assert ids(inv) is None
    inv.receive("h1", Names.SNAPSHOT, {"kind": "containers", "gen": 1, "rows": [row("a")], "done": False})
    assert ids(inv) is None  # half a snapshot is not a list
    inv.receive("h1", Names.SNAPSHOT, {"kind": "containers", "gen": 1, "rows": [row("b")], "done": True})
    assert ids(inv) == ["a", "b"]
    view = inv.view("h1", "containers", online=True)
    assert (view.age_s, view.stale) == (0.0, False)
    assert inv.view("h1", "images", online=True).rows is None  # other kinds: not yet


def test_deltas_upsert_and_remove(inv: Inventory) -> None:
    snapshot(inv, [row("a"), row("b")])
    inv.receive(
        "h1",
        Names.DELTA,
        {"kind": "containers", "gen": 1, "upsert": [row("b", "exited"), row("c")], "remove": ["a"]},
    )
    assert ids(inv) == ["b", "c"]
    rows = {r["id"]: r for r in inv.view("h1", "containers", online=True).rows or []}
    assert rows["b"]["state"] == "exited"
    inv.receive("h1", Names.DELTA, {"kind": "containers", "gen": 1, "remove": ["zz"]})  # unknown key: no-op
    assert ids(inv) == ["b", "c"]


def test_offline_keeps_last_known_rows_stale_with_their_age(inv: Inventory, clock: Clock) -> None:
    snapshot(inv, [row("a")])
    inv.offline("h1")
    clock.now += 42
    view = inv.view("h1", "containers", online=False)
    assert [r["id"] for r in view.rows or []] == ["a"]
    assert (view.age_s, view.stale) == (42.0, True)
    never = inv.view("h1", "images", online=False)
    assert (never.rows, never.age_s, never.stale) == ([], None, True)
    unknown = inv.view("nobody", "containers", online=False)
    assert unknown.rows == []
    assert unknown.stale


def test_reconnect_shows_old_rows_only_once_the_new_snapshot_lands(inv: Inventory, clock: Clock) -> None:
    snapshot(inv, [row("a")])
    inv.offline("h1")
    inv.online("h1", lambda name, body: None)
    assert ids(inv) is None  # online again: asked live until the fresh snapshot
    assert ids(inv, online=False) == ["a"]
    snapshot(inv, [row("z")])
    assert ids(inv) == ["z"]


def test_events_from_an_offline_or_unknown_host_are_ignored(inv: Inventory) -> None:
    inv.receive("nobody", Names.SNAPSHOT, {"kind": "containers", "gen": 1, "rows": [row("a")], "done": True})
    assert inv.view("nobody", "containers", online=True).rows is None
    inv.offline("h1")
    snapshot(inv, [row("a")])
    assert inv.view("h1", "containers", online=False).rows == []


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "containers", "gen": 1, "upsert": [{**row("x"), "evil": 1}], "remove": []},
        {"kind": "containers", "gen": 1, "upsert": "nope", "remove": []},
        {"kind": "containers", "gen": 1, "upsert": [], "remove": [1]},
        {"kind": "containers", "gen": 1, "upsert": [row(str(i)) for i in range(CHUNK_ROWS + 1)]},
        {"kind": "secrets", "gen": 1, "upsert": []},
    ],
)
def test_a_malformed_delta_drops_the_copy_and_asks_a_resync(
    inv: Inventory, sent: list[tuple[str, dict[str, Any]]], body: dict[str, Any]
) -> None:
    snapshot(inv, [row("a")])
    inv.receive("h1", Names.DELTA, body)
    assert ids(inv) is None  # asked live from now on
    assert inv.view("h1", "containers", online=False).rows == []  # nothing of it kept
    assert sent == [(Names.RESYNC, {"kinds": ["containers", "images", "volumes", "networks"]})]


def test_resyncs_are_rate_limited_and_the_digest_heals(
    inv: Inventory, clock: Clock, sent: list[tuple[str, dict[str, Any]]]
) -> None:
    bad = {"kind": "containers", "gen": 1, "rows": [{"id": 1}], "done": True}
    for _ in range(10):
        inv.receive("h1", Names.SNAPSHOT, bad)
    assert len(sent) == 1  # one request, not one per bad message
    clock.now += RESYNC_EVERY + 1
    inv.receive("h1", Names.DIGEST, {"gen": 1, "kinds": {"containers": digest([row("a")])}})
    assert sent[-1] == (Names.RESYNC, {"kinds": ["containers"]})
    snapshot(inv, [row("a")])
    assert ids(inv) == ["a"]


def test_snapshot_over_the_row_bound_is_refused(inv: Inventory) -> None:
    parts = (MAX_ROWS // CHUNK_ROWS) + 1
    for p in range(parts):
        chunk = [row(f"{p}-{i}") for i in range(CHUNK_ROWS)]
        inv.receive(
            "h1", Names.SNAPSHOT, {"kind": "containers", "gen": 1, "rows": chunk, "done": p == parts - 1}
        )
    assert ids(inv) is None
    assert inv.view("h1", "containers", online=False).rows == []


def test_a_digest_mismatch_asks_a_resync_of_that_kind(
    inv: Inventory, clock: Clock, sent: list[tuple[str, dict[str, Any]]]
) -> None:
    snapshot(inv, [row("a")])
    snapshot(inv, [], kind="volumes")
    inv.receive(
        "h1",
        Names.DIGEST,
        {"gen": 1, "kinds": {"containers": digest([row("a")]), "volumes": digest([])}},
    )
    assert sent == []
    inv.receive("h1", Names.DIGEST, {"gen": 1, "kinds": {"containers": digest([row("b")])}})
    assert sent == [(Names.RESYNC, {"kinds": ["containers"]})]
    assert ids(inv) is None
    assert inv.view("h1", "volumes", online=True).rows == []  # the other kind stays current


def test_a_quiet_feed_stops_counting_as_current(inv: Inventory, clock: Clock) -> None:
    snapshot(inv, [row("a")])
    clock.now += QUIET_AFTER - 1
    assert ids(inv) == ["a"]
    clock.now += 2
    assert ids(inv) is None
    inv.receive("h1", Names.DIGEST, {"gen": 1, "kinds": {"containers": digest([row("a")])}})
    assert ids(inv) == ["a"]


def test_changes_are_announced(inv: Inventory) -> None:
    seen: list[tuple[str, str]] = []
    inv.on_change.append(lambda host, kind: seen.append((host, kind)))
    snapshot(inv, [row("a")])
    inv.receive("h1", Names.DELTA, {"kind": "containers", "gen": 1, "upsert": [row("b")], "remove": []})
    assert seen == [("h1", "containers"), ("h1", "containers")]
