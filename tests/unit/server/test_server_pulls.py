"""A host's pull packets are re-made from their known fields only: the peer controls every byte."""

from __future__ import annotations

from dockmesh.server.directory import HostRef
from dockmesh.server.services.pulls import progress_line

HOST = HostRef("h1", "edge", (), None)


def test_progress_keeps_known_fields_with_their_types() -> None:
    line = progress_line(
        {"type": "progress", "id": "abc", "status": "Downloading", "current": 5, "total": 10, "pulled": 5,
         "size": 10, "extra": "x" * 1000},
        HOST,
    )  # fmt: skip
    assert line == {
        "type": "progress",
        "host": {"id": "h1", "name": "edge"},
        "id": "abc",
        "status": "Downloading",
        "current": 5,
        "total": 10,
        "pulled": 5,
        "size": 10,
    }


def test_hostile_values_are_dropped_or_cut() -> None:
    line = progress_line(
        {"type": "progress", "id": ["x"], "status": "s" * 5000, "current": -1, "total": True, "pulled": "9"},
        HOST,
    )
    assert line is not None
    assert line["id"] is None
    assert len(line["status"]) == 200
    assert (line["current"], line["total"], line["pulled"], line["size"]) == (0, 0, 0, None)


def test_results_and_unknown_packets() -> None:
    result = progress_line({"type": "result", "image": "a:1", "id": "sha256:" + "f" * 200}, HOST)
    assert result is not None
    assert result["image"] == "a:1"
    assert len(result["id"]) == 100
    assert progress_line({"type": "result", "image": 3}, HOST) == {
        "type": "result", "host": {"id": "h1", "name": "edge"}, "image": None, "id": None,
    }  # fmt: skip
    assert progress_line({"type": "nonsense"}, HOST) is None
