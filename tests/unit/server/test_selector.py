"""The host selector grammar: precedence, canonical text, matching, and refusals with their position."""

from __future__ import annotations

import pytest

from dockmesh.server.selector import MAX_DEPTH, MAX_LENGTH, Everything, SelectorError, parse

HOSTS = {
    "a": ("id-a", "alpha", {"prod", "eu-west"}),
    "b": ("id-b", "beta", {"prod", "staging"}),
    "c": ("id-c", "gamma", {"dev"}),
}


def chosen(text: str) -> set[str]:
    sel = parse(text)
    return {k for k, (i, n, t) in HOSTS.items() if sel.matches(i, n, t)}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {"a", "b", "c"}),
        ("all", {"a", "b", "c"}),
        ("prod", {"a", "b"}),
        ("tag:prod", {"a", "b"}),
        ("prod and not staging", {"a"}),
        ("dev or prod and staging", {"b", "c"}),  # and binds tighter than or
        ("(dev or prod) and not eu-west", {"b", "c"}),
        ("not not dev", {"c"}),
        ("name:gamma or id:id-a", {"a", "c"}),
        ("missing", set()),
    ],
)
def test_selects(text: str, expected: set[str]) -> None:
    assert chosen(text) == expected


def test_canonical_text_round_trips() -> None:
    for text in ["prod and not staging", "(dev or prod) and not eu-west", "name:x or id:y", "not (a and b)"]:
        sel = parse(text)
        assert parse(sel.text) == sel
    assert parse("  prod   AND_x ".lower().replace("and_x", "and dev")).text == "prod and dev"
    assert parse("") is Everything


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("prod and", 8),
        ("(prod", 5),
        ("prod)", 4),
        ("Prod", 0),
        ("foo:bar", 0),
        ("prod staging", 5),
        ("and prod", 0),
        ("name:../x", 0),
    ],
)
def test_refusals_say_where(text: str, position: int) -> None:
    with pytest.raises(SelectorError) as info:
        parse(text)
    assert info.value.position == position


def test_hostile_input_is_bounded() -> None:
    with pytest.raises(SelectorError, match="longer"):
        parse("a or " * (MAX_LENGTH // 5 + 1))
    with pytest.raises(SelectorError, match="deeper"):
        parse("(" * (MAX_DEPTH + 2) + "a" + ")" * (MAX_DEPTH + 2))
    with pytest.raises(SelectorError, match="deeper"):
        parse("not " * (MAX_DEPTH + 2) + "a")
