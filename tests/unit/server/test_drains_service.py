"""Pure parts of the drain service: the request's checks, the destinations selector, the view's numbers."""

from __future__ import annotations

import pytest

from dockmesh.server.services.drainrun import Live, problems_text
from dockmesh.server.services.drains import DrainRequest, DrainService, shared_of
from dockmesh.server.services.drainview import drain_view
from dockmesh.server.services.errors import Invalid
from dockmesh.store.drains import DrainRecord, DrainStack


def test_request_checks_order_concurrency_and_destinations():
    assert DrainRequest("h", "dest", "deps", 3).checked().order == "deps"
    with pytest.raises(Invalid, match="order"):
        DrainRequest("h", "dest", "random").checked()
    with pytest.raises(Invalid, match="concurrency"):
        DrainRequest("h", "dest", "smallest", 0).checked()
    with pytest.raises(Invalid, match="destination"):
        DrainRequest("h", "  ").checked()


def test_destinations_list_becomes_one_selector():
    assert DrainService.selector_of("dest and not gpu") == "dest and not gpu"
    assert DrainService.selector_of(["name:b1", "eu"]) == "(name:b1) or (eu)"
    with pytest.raises(Invalid, match="destinations"):
        DrainService.selector_of("dest and (")
    with pytest.raises(Invalid, match="empty"):
        DrainService.selector_of(["dest", " "])


def test_shared_externals_from_compose():
    compose = """services:
  app:
    image: x
    networks: [front]
    volumes: [cache:/c, own:/o]
networks:
  front: {external: true, name: edge}
volumes:
  cache: {external: true}
  own: {}
"""
    assert shared_of("app", compose, "") == frozenset({"network:edge", "volume:cache"})
    assert shared_of("app", "not: [valid", "") == frozenset()


def test_problems_text_takes_first_code_and_all_messages():
    code, message = problems_text(
        [{"code": "port_collision", "message": "8080"}, {"code": "x", "message": "y"}]
    )
    assert (code, message) == ("port_collision", "8080; y")
    assert problems_text([]) == ("preflight_failed", "pre-flight failed")


def _drain(status: str = "running") -> DrainRecord:
    return DrainRecord("d", "s", "src", "dest", "smallest", 1, status, "alice", 0.0)


def test_view_counts_bytes_time_left_and_summary():
    rows = [
        DrainStack("d", "a", 0, 0, "done", "h1", "one", volume_bytes=100),
        DrainStack("d", "b", 1, 1, "migrating", "h1", "one", volume_bytes=200),
        DrainStack("d", "c", 2, 2, "queued", "h2", "two", volume_bytes=300),
        DrainStack("d", "x", 3, 3, "skipped", code="no_memory", message="too big", volume_bytes=999),
    ]
    live = Live(
        phases={"b": "copying"}, bytes_done={"b": 50}, bytes_total={"b": 200}, started=10.0, moved_here=150
    )
    view = drain_view(_drain(), rows, live, now=25.0)
    assert view["bytes_done"] == 150
    assert view["bytes_total"] == 600
    assert view["eta_s"] == 45.0  # 450 bytes left at 10 bytes/s
    assert view["current"] == ["b"]
    assert view["stacks"][1]["phase"] == "copying"
    assert view["queue"] == [{"stack": "c", "destination": {"id": "h2", "name": "two"}}]
    assert [s["stack"] for s in view["summary"]["skipped"]] == ["x"]
    assert view["summary"]["remaining"] == 2
    assert drain_view(_drain(), rows, Live(), now=25.0)["eta_s"] is None  # nothing measured yet
    assert drain_view(_drain("done"), rows, None, now=25.0)["eta_s"] == 0.0
