"""The inventory's row contract and digest: what the server accepts from an agent, and how it compares."""

from __future__ import annotations

from typing import Any

import pytest

from dockmesh.proto.inventory import MAX_STR, MAX_TAGS, BadRow, check_row, digest, fit_row


def container(**over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": "0123456789ab",
        "name": "web",
        "image": "local/busybox:1",
        "state": "running",
        "status": "Up 3 seconds",
        "stack": None,
        "service": None,
        "created": 1700000000,
    }
    row.update(over)
    return row


def test_each_kind_accepts_its_row_shape() -> None:
    assert check_row("containers", container()) == container()
    assert check_row("images", {"id": "abc", "tags": ["a:1"], "size": 5, "created": 1})
    assert check_row(
        "volumes", {"name": "v", "driver": "local", "stack": "s", "created": None, "mountpoint": "/x"}
    )
    assert check_row(
        "networks",
        {"id": "n1", "name": "none", "driver": "null", "scope": "local", "stack": None, "internal": False},
    )


@pytest.mark.parametrize(
    ("row", "words"),
    [
        (container(extra=1), "exactly the fields"),
        ({k: v for k, v in container().items() if k != "image"}, "exactly the fields"),
        (container(created="yesterday"), "'created'"),
        (container(created=True), "'created'"),
        (container(created=-1), "'created'"),
        (container(name=5), "'name'"),
        (container(stack=["x"]), "'stack'"),
        (container(status="x" * (MAX_STR + 1)), "'status'"),
        (container(id=""), "empty 'id'"),
        ("not a row", "exactly the fields"),
    ],
)
def test_rows_outside_the_contract_are_refused_by_name(row: Any, words: str) -> None:
    with pytest.raises(BadRow) as refused:
        check_row("containers", row)
    assert words in str(refused.value)
    assert "x" * 50 not in str(refused.value)  # the peer's value is never echoed


def test_unknown_kind_and_bad_tags_are_refused() -> None:
    with pytest.raises(BadRow):
        check_row("stacks", {"name": "s"})
    with pytest.raises(BadRow):
        check_row("images", {"id": "a", "tags": [1], "size": 0, "created": 0})
    with pytest.raises(BadRow):
        check_row("images", {"id": "a", "tags": ["t"] * (MAX_TAGS + 1), "size": 0, "created": 0})


def test_digest_ignores_order_and_sees_any_change() -> None:
    a, b = container(id="a1", name="a"), container(id="b1", name="b")
    assert digest([a, b]) == digest([b, a])
    assert digest([a, b]) != digest([a, container(id="b1", name="b", state="exited")])
    assert digest([a]) != digest([a, b])
    assert digest([]) == digest([])


def test_fit_row_cuts_what_would_break_the_bounds() -> None:
    fitted = fit_row("containers", container(status="y" * (MAX_STR * 2)))
    check_row("containers", fitted)
    assert len(fitted["status"]) == MAX_STR
    tags = fit_row("images", {"id": "a", "tags": ["t"] * (MAX_TAGS + 5), "size": 0, "created": 0})
    assert len(tags["tags"]) == MAX_TAGS
