"""The agent's inventory feed without an engine: which events mark what, what a change sends, how much.

The engine listings are replaced by plain functions over an in-memory table (pure logic; the real
engine path is tests/integration/test_inventory.py)."""

from __future__ import annotations

import json
from typing import Any, cast

import aiodocker
import pytest

from dockmesh.agent import inventory as feed_module
from dockmesh.agent.inventory import CHUNK_BYTES, Publisher
from dockmesh.docker.errors import DockerFailure
from dockmesh.proto.inventory import CHUNK_ROWS, Names, check_row, digest


def row(cid: str, state: str = "running", status: str = "Up") -> dict[str, Any]:
    return {
        "id": cid,
        "name": f"c-{cid}",
        "image": "local/busybox:1",
        "state": state,
        "status": status,
        "stack": None,
        "service": None,
        "created": 1,
    }


class Engine:
    """What the fake listings answer: containers by id; volumes by name."""

    def __init__(self) -> None:
        self.containers: dict[str, dict[str, Any]] = {}
        self.volumes: dict[str, dict[str, Any]] = {}
        self.asked_ids: list[list[str]] = []


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Engine:
    eng = Engine()

    async def list_containers(_docker: Any, *, all: bool = True, ids: Any = None) -> list[dict[str, Any]]:
        if ids is None:
            return list(eng.containers.values())
        eng.asked_ids.append(list(ids))
        return [r for k, r in eng.containers.items() if any(i.startswith(k) for i in ids)]

    async def list_volumes(_docker: Any) -> list[dict[str, Any]]:
        return list(eng.volumes.values())

    async def nothing(_docker: Any) -> list[dict[str, Any]]:
        return []

    monkeypatch.setattr(feed_module.containers, "list_containers", list_containers)
    monkeypatch.setattr(feed_module.volumes, "list_volumes", list_volumes)
    monkeypatch.setattr(feed_module.images, "list_images", nothing)
    monkeypatch.setattr(feed_module.networks, "list_networks", nothing)
    return eng


@pytest.fixture
def sent() -> list[tuple[str, dict[str, Any]]]:
    return []


@pytest.fixture
def feed(sent: list[tuple[str, dict[str, Any]]]) -> Publisher:
    return Publisher(cast(aiodocker.Docker, None), lambda n, b: sent.append((n, b)), clock=lambda: 5000.0)


def event(kind: str, action: str, ident: str, when: int = 5_001_000_000_000) -> dict[str, Any]:
    return {"Type": kind, "Action": action, "Actor": {"ID": ident}, "timeNano": when}


async def test_first_flush_sends_a_snapshot_of_every_kind(
    feed: Publisher, engine: Engine, sent: list[tuple[str, dict[str, Any]]]
) -> None:
    engine.containers = {"a": row("a"), "b": row("b")}
    await feed._flush()
    snapshots = {b["kind"]: b for n, b in sent if n == Names.SNAPSHOT}
    assert set(snapshots) == {"containers", "images", "volumes", "networks"}
    assert sorted(r["id"] for r in snapshots["containers"]["rows"]) == ["a", "b"]
    assert all(b["done"] for b in snapshots.values())
    for r in snapshots["containers"]["rows"]:
        check_row("containers", r)  # what the server will accept


async def test_a_container_event_sends_only_that_container(
    feed: Publisher, engine: Engine, sent: list[tuple[str, dict[str, Any]]]
) -> None:
    a, b = "a" * 12, "b" * 12  # rows carry short ids; events the full 64
    engine.containers = {a: row(a), b: row(b)}
    await feed._flush()
    sent.clear()
    engine.containers[b] = row(b, "exited")
    feed._note(event("container", "die", "b" * 64))
    await feed._flush()
    assert engine.asked_ids == [["b" * 64]]
    assert sent == [
        (Names.DELTA, {"kind": "containers", "gen": feed._gen, "upsert": [row(b, "exited")], "remove": []})
    ]
    sent.clear()
    del engine.containers[a]
    feed._note(event("container", "destroy", "a" * 64))
    await feed._flush()
    assert sent == [(Names.DELTA, {"kind": "containers", "gen": feed._gen, "upsert": [], "remove": [a]})]


async def test_duplicate_and_quiet_events_send_nothing(
    feed: Publisher, engine: Engine, sent: list[tuple[str, dict[str, Any]]]
) -> None:
    engine.containers = {"a": row("a")}
    await feed._flush()
    sent.clear()
    feed._note(event("container", "exec_start: sh", "a" + "0" * 63))
    assert not feed._dirty_ids
    feed._note(event("container", "start", "a" + "0" * 63))  # replayed: the row is unchanged
    await feed._flush()
    assert sent == []


async def test_a_volume_event_relists_the_kind_and_sends_the_difference(
    feed: Publisher, engine: Engine, sent: list[tuple[str, dict[str, Any]]]
) -> None:
    await feed._flush()
    sent.clear()
    vol = {"name": "data", "driver": "local", "stack": None, "created": None, "mountpoint": "/v/data"}
    engine.volumes["data"] = vol
    feed._note(event("volume", "create", "data"))
    await feed._flush()
    assert sent == [(Names.DELTA, {"kind": "volumes", "gen": feed._gen, "upsert": [vol], "remove": []})]


async def test_events_move_the_resubscription_point_forward(feed: Publisher) -> None:
    assert feed._since == 4999.0  # a second before the first listing
    feed._note(event("container", "start", "x", when=6_000_500_000_000))
    assert feed._since == pytest.approx(6000.5)
    feed._note(event("container", "start", "x", when=1))
    assert feed._since == pytest.approx(6000.5)


async def test_resync_sends_a_fresh_snapshot_and_the_digest_matches_it(
    feed: Publisher, engine: Engine, sent: list[tuple[str, dict[str, Any]]]
) -> None:
    engine.containers = {"a": row("a")}
    await feed._flush()
    sent.clear()
    feed.on_event(Names.RESYNC, {"kinds": ["containers", "bogus"]})
    feed.on_event("heartbeat", {})
    await feed._flush()
    assert [(n, b["kind"]) for n, b in sent] == [(Names.SNAPSHOT, "containers")]
    feed._send_digest()
    name, body = sent[-1]
    assert name == Names.DIGEST
    assert body["kinds"]["containers"] == digest([row("a")])


async def test_big_lists_go_in_chunks_under_the_bounds(
    feed: Publisher, engine: Engine, sent: list[tuple[str, dict[str, Any]]]
) -> None:
    engine.containers = {f"c{i:05}": row(f"c{i:05}", status="x" * 900) for i in range(1200)}
    await feed._flush()
    parts = [b for n, b in sent if n == Names.SNAPSHOT and b["kind"] == "containers"]
    assert len(parts) > 1
    assert [p["done"] for p in parts] == [False] * (len(parts) - 1) + [True]
    for p in parts:
        assert len(p["rows"]) <= CHUNK_ROWS
        assert len(json.dumps(p)) < CHUNK_BYTES + 2048
    assert sum(len(p["rows"]) for p in parts) == 1200


async def test_a_failed_listing_loses_nothing(
    feed: Publisher, engine: Engine, sent: list[tuple[str, dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    await feed._flush()
    sent.clear()
    working = feed_module.volumes.list_volumes

    async def down(_docker: Any) -> list[dict[str, Any]]:
        raise DockerFailure(503, "engine_unavailable", "no engine")

    monkeypatch.setattr(feed_module.volumes, "list_volumes", down)
    feed._note(event("volume", "create", "data"))
    with pytest.raises(DockerFailure):
        await feed._flush()
    assert "volumes" in feed._dirty_kinds  # still owed
    monkeypatch.setattr(feed_module.volumes, "list_volumes", working)
    vol = {"name": "data", "driver": "local", "stack": None, "created": None, "mountpoint": "/d"}
    engine.volumes["data"] = vol
    await feed._flush()
    assert [(n, b["kind"], [r["name"] for r in b["upsert"]]) for n, b in sent] == [
        (Names.DELTA, "volumes", ["data"])
    ]


async def test_a_mutating_request_is_in_the_inventory_before_its_answer(
    feed: Publisher, engine: Engine, sent: list[tuple[str, dict[str, Any]]]
) -> None:
    await feed._flush()
    sent.clear()
    engine.containers["c" * 12] = row("c" * 12)
    await feed.after("containers.list")  # reads change nothing
    assert sent == []
    await feed.after("containers.action")
    assert [(n, b["kind"]) for n, b in sent] == [(Names.DELTA, "containers")]
