"""Pull progress summed over layers."""

from __future__ import annotations

from dockmesh.docker.images import PullTally


def test_bytes_are_summed_over_layers_and_complete_layers_count_fully() -> None:
    tally = PullTally()
    tally.add({"status": "Pulling from dm/app", "id": "1"})
    tally.add({"status": "Downloading", "id": "a", "current": 100, "total": 1000})
    tally.add({"status": "Downloading", "id": "b", "current": 50, "total": 500})
    assert (tally.current, tally.total) == (150, 1500)
    tally.add({"status": "Downloading", "id": "a", "current": 600, "total": 1000})
    tally.add({"status": "Download complete", "id": "b"})
    assert (tally.current, tally.total) == (1100, 1500)
    # Extraction reports bytes too: it must not move the download's count.
    tally.add({"status": "Extracting", "id": "b", "current": 10, "total": 500})
    tally.add({"status": "Pull complete", "id": "a"})
    assert (tally.current, tally.total) == (1500, 1500)


def test_a_layer_already_there_adds_nothing_and_bad_rows_are_ignored() -> None:
    tally = PullTally()
    tally.add({"status": "Already exists", "id": "x"})
    tally.add({"status": "Downloading", "current": 5, "total": 10})  # no layer id
    tally.add({"status": "Downloading", "id": "y", "current": 50, "total": 10})  # over the total
    assert (tally.current, tally.total) == (10, 10)


def test_the_layer_count_is_bounded() -> None:
    tally = PullTally()
    for i in range(5000):
        tally.add({"status": "Downloading", "id": f"l{i}", "current": 1, "total": 1})
    assert tally.total == 1024
