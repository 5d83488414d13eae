"""Request bodies checked against the route's JSON Schema: a 400 naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from dockmesh.server.api.objects import IMAGE_PRUNE_BODY, NETWORK_BODY, PULL_BODY, VOLUME_BODY
from dockmesh.server.bodies import check
from dockmesh.server.errors import ApiError


def code(body: dict[str, Any], schema: dict[str, Any]) -> str:
    with pytest.raises(ApiError) as caught:
        check(body, schema)
    assert caught.value.status == 400
    return caught.value.code


def test_good_bodies_pass_unchanged() -> None:
    assert check({"name": "db", "driver": "local"}, VOLUME_BODY) == {"name": "db", "driver": "local"}
    assert check({"name": "net", "internal": True}, NETWORK_BODY) == {"name": "net", "internal": True}
    assert check({"image": "reg:5000/a/b:1"}, PULL_BODY) == {"image": "reg:5000/a/b:1"}
    assert check({"dry_run": False, "mode": "dangling"}, IMAGE_PRUNE_BODY)["mode"] == "dangling"


def test_each_problem_names_its_field() -> None:
    assert code({}, VOLUME_BODY) == "invalid_name"
    assert code({"name": "../x"}, VOLUME_BODY) == "invalid_name"
    assert code({"name": "a"}, VOLUME_BODY) == "invalid_name"
    assert code({"name": "db", "driver": "a b"}, VOLUME_BODY) == "invalid_driver"
    assert code({"name": "db", "internal": "yes"}, NETWORK_BODY) == "invalid_internal"
    assert code({"name": "db", "other": 1}, VOLUME_BODY) == "invalid_body"
    assert code({"image": "a b"}, PULL_BODY) == "invalid_image"
    assert code({"dry_run": "no"}, IMAGE_PRUNE_BODY) == "invalid_dry_run"
    assert code({"dry_run": True, "mode": "every"}, IMAGE_PRUNE_BODY) == "invalid_mode"


def test_the_message_says_the_rule() -> None:
    with pytest.raises(ApiError) as caught:
        check({"name": "-x"}, VOLUME_BODY)
    assert "letters, digits" in caught.value.message
