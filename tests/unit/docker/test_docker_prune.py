"""Which images and volumes a prune removes, computed from the engine's lists (pure logic)."""

from __future__ import annotations

import pytest

from dockmesh.docker.errors import DockerFailure
from dockmesh.docker.prune import image_candidates, volume_candidates

BASE = "sha256:" + "b" * 64
CHILD = "sha256:" + "c" * 64
USED = "sha256:" + "d" * 64
SPARE = "sha256:" + "e" * 64
LOOSE = "sha256:" + "f" * 64

IMAGES = [
    {"Id": BASE, "ParentId": "", "RepoTags": ["<none>:<none>"], "Size": 10},  # a parent: goes with its child
    {"Id": CHILD, "ParentId": BASE, "RepoTags": ["app:1", "app:latest"], "Size": 30},
    {"Id": USED, "ParentId": "", "RepoTags": ["busybox:1"], "Size": 5},
    {"Id": SPARE, "ParentId": "", "RepoTags": ["spare:1"], "Size": 7},
    {"Id": LOOSE, "ParentId": "", "RepoTags": None, "Size": 3},
]
CONTAINERS = [
    {"ImageID": USED, "Mounts": [{"Type": "volume", "Name": "db"}, {"Type": "bind", "Source": "/srv"}]},
    {"ImageID": USED, "Mounts": [{"Type": "volume", "Name": "cache"}]},
]


def test_unused_images_are_the_top_level_ones_no_container_uses() -> None:
    chosen = image_candidates(IMAGES, CONTAINERS, mode="unused")
    assert [c.ref for c in chosen] == [CHILD, SPARE, LOOSE]  # by first tag, untagged last
    assert chosen[0].row == {"id": "c" * 12, "tags": ["app:1", "app:latest"], "size": 30}
    assert chosen[0].tags == ("app:1", "app:latest")
    assert chosen[2].row["tags"] == []


def test_dangling_images_are_only_the_untagged_unused_ones() -> None:
    assert [c.ref for c in image_candidates(IMAGES, CONTAINERS, mode="dangling")] == [LOOSE]


def test_a_stopped_container_keeps_its_image() -> None:
    stopped = [{"ImageID": SPARE, "State": "exited"}]
    assert SPARE not in [c.ref for c in image_candidates(IMAGES, stopped)]


def test_unique_sizes_count_for_reclaimed_bytes() -> None:
    chosen = image_candidates(IMAGES, CONTAINERS, unique_sizes={CHILD: 20})
    assert {c.ref: c.size for c in chosen} == {CHILD: 20, SPARE: 7, LOOSE: 3}
    assert chosen[0].row["size"] == 30  # the row shows the image's own size


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(DockerFailure) as caught:
        image_candidates(IMAGES, CONTAINERS, mode="all")
    assert caught.value.status == 400


def test_hostile_sizes_do_not_go_negative() -> None:
    chosen = image_candidates([{"Id": SPARE, "Size": -5}, {"Id": LOOSE, "Size": True}], [])
    assert [c.row["size"] for c in chosen] == [0, 0]


def test_unused_volumes_are_those_no_container_mounts() -> None:
    volumes = [
        {"Name": "db", "Driver": "local"},
        {"Name": "old", "Driver": "local"},
        {"Name": "cache", "Driver": "local"},
        {"Name": "anon0123", "Driver": "local"},
        {"Name": "/srv", "Driver": "local"},
    ]
    chosen = volume_candidates(volumes, CONTAINERS, sizes={"old": 4096})
    assert [c.ref for c in chosen] == ["/srv", "anon0123", "old"]  # a bind's path is not a volume in use
    assert chosen[2].row == {"name": "old", "driver": "local", "size": 4096}
    assert chosen[1].size == 0


def test_nothing_to_prune() -> None:
    assert image_candidates([], []) == []
    assert volume_candidates([], [{"Mounts": None}]) == []
