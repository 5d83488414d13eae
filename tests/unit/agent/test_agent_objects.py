"""The agent's checks of volume, network and image params (the peer controls every field)."""

from __future__ import annotations

from typing import Any

import pytest

from dockmesh.agent import objects
from dockmesh.link import RemoteError


def refused(fn: Any, *args: Any) -> str:
    with pytest.raises(RemoteError) as caught:
        fn(*args)
    assert caught.value.code == "bad_request"
    return str(caught.value.message)


@pytest.mark.parametrize("name", ["db", "my_vol.1", "A-b", "x" * 255])
def test_docker_names_pass(name: str) -> None:
    assert objects.name({"name": name}) == name


@pytest.mark.parametrize(
    "name", ["a", "", "../x", "a/b", "-x", ".x", "a b", "x" * 256, 5, None, ["db"], "dé"]
)
def test_other_names_are_refused(name: Any) -> None:
    assert "name" in refused(objects.name, {"name": name})


def test_booleans_must_be_booleans() -> None:
    assert objects.flag({}, "force") is False
    assert objects.flag({"force": True}, "force") is True
    for value in ("false", 0, 1, None):
        assert "true or false" in refused(objects.flag, {"force": value}, "force")


def test_drivers() -> None:
    assert objects.driver({}, "local") == "local"
    assert objects.driver({"driver": "vieux/sshfs:latest"}, "local") == "vieux/sshfs:latest"
    for value in ("a b", "/x", 3, "x" * 200):
        refused(objects.driver, {"driver": value}, "local")


def test_labels_are_bounded_strings() -> None:
    assert objects.labels({}) == {}
    assert objects.labels({"labels": {"a": "b"}}) == {"a": "b"}
    refused(objects.labels, {"labels": ["a"]})
    refused(objects.labels, {"labels": {"a": 1}})
    refused(objects.labels, {"labels": {"": "x"}})
    refused(objects.labels, {"labels": {f"k{i}": "v" for i in range(65)}})
    refused(objects.labels, {"labels": {"a": "v" * 5000}})


def test_image_references_are_bounded() -> None:
    assert objects.image({"image": "127.0.0.1:5000/dm/app:1"}) == "127.0.0.1:5000/dm/app:1"
    assert objects.image({"id": "sha256:" + "a" * 64}, "id").startswith("sha256:")
    for value in ("", "a b", "../etc", "a//b", "x/", "a" * 513, None, 7):
        refused(objects.image, {"image": value})


def test_auth_and_prune_mode() -> None:
    assert objects.auth({}) is None
    assert objects.auth({"auth": {"username": "u", "password": "p"}}) == {"username": "u", "password": "p"}
    refused(objects.auth, {"auth": "u:p"})
    refused(objects.auth, {"auth": {"password": "p" * 9000}})
    assert objects.prune_mode({}) == "unused"
    assert objects.prune_mode({"mode": "dangling"}) == "dangling"
    refused(objects.prune_mode, {"mode": "all"})
