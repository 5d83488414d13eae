"""Request bodies checked against the route's JSON Schema: a 400 naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from dockmesh.server.api.objects import IMAGE_PRUNE_BODY, NETWORK_BODY, PULL_BODY, VOLUME_BODY
from dockmesh.server.api.stacks import HOST, SAVE
from dockmesh.server.bodies import check, validated
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


def test_the_nested_shape_says_invalid_field_with_the_key() -> None:
    """The stacks routes' shape: one code, the dotted key in `details`, the message led by the key."""
    assert validated({"host": "h1"}, HOST) == {"host": "h1"}
    with pytest.raises(ApiError) as caught:
        validated({"host": ""}, HOST)
    assert (caught.value.status, caught.value.code) == (400, "invalid_field")
    assert caught.value.details == {"key": "host"}
    assert caught.value.message.startswith("host: ")
    with pytest.raises(ApiError) as caught:
        validated({"compose": "x", "other": 1}, SAVE)
    assert (caught.value.code, caught.value.details) == ("invalid_field", {"key": "body"})


def test_the_two_shapes_word_the_same_first_error_differently() -> None:
    """One schema match behind both, two refusals: `check` names the field in the code."""
    with pytest.raises(ApiError) as flat:
        check({}, HOST)
    with pytest.raises(ApiError) as nested:
        validated({}, HOST)
    assert (flat.value.code, flat.value.details) == ("invalid_host", {})
    assert (nested.value.code, nested.value.details) == ("invalid_field", {"key": "body"})
    assert "'host' is a required property" in flat.value.message
    assert "'host' is a required property" in nested.value.message
