"""The host checks every field of a migration's requests before anything reaches its engine."""

from __future__ import annotations

import pytest

from dockmesh.agent import transfer
from dockmesh.link import RemoteError


@pytest.mark.parametrize("name", ["../etc", "a/b", "", "-x", "x" * 600, 5, None, "a..b"])
def test_volume_names_follow_docker_s_rule(name: object) -> None:
    with pytest.raises(RemoteError) as caught:
        transfer._name({"name": name})
    assert caught.value.code == "bad_request"


def test_a_good_volume_name_passes() -> None:
    assert transfer._name({"name": "shop_data.v1"}) == "shop_data.v1"


@pytest.mark.parametrize("value", ["A" * 32, "a" * 31, "a" * 33, "g" * 32, 32, None])
def test_migration_ids_are_32_hex_digits(value: object) -> None:
    with pytest.raises(RemoteError):
        transfer._migration({"migration": value})


def test_labels_are_bounded() -> None:
    assert transfer._labels({"com.docker.compose.project": "shop"}) == {"com.docker.compose.project": "shop"}
    for bad in ({f"k{i}": "v" for i in range(17)}, {"k": "v" * 257}, {"bad key": "v"}, {"k": 1}, ["k"]):
        with pytest.raises(RemoteError):
            transfer._labels(bad)


def test_lists_of_strings_are_bounded() -> None:
    assert transfer._strings({"images": ["a", "b"]}, "images", 2) == ["a", "b"]
    for bad in (["a", "b", "c"], "a", [1], None):
        with pytest.raises(RemoteError):
            transfer._strings({"images": bad}, "images", 2)
