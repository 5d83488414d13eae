"""Query-string numbers: strict ASCII digits inside bounds, else a 400 naming the parameter."""

from __future__ import annotations

import pytest

from dockmesh.server.errors import ApiError
from dockmesh.server.fanout import DEFAULT_DEADLINE, MAX_DEADLINE, parse_deadline
from dockmesh.server.query import bounded_int, bounded_seconds


@pytest.mark.parametrize(("raw", "value"), [("0", 0), ("7", 7), ("999", 999), ("007", 7)])
def test_bounded_int_accepts_ascii_digits_in_range(raw: str, value: int) -> None:
    assert bounded_int(raw, "tail", 0, 999) == value


@pytest.mark.parametrize("raw", [None, ""])
def test_bounded_int_absent_is_the_default(raw: str | None) -> None:
    assert bounded_int(raw, "tail", 0, 9) is None
    assert bounded_int(raw, "tail", 0, 9, default=5) == 5


@pytest.mark.parametrize(
    "raw",
    ["²", "\u0661", "\uff11", "-1", "+1", " 1", "1 ", "1.0", "1e3", "1_0", "0x10", "1000", "9" * 40, "abc"],
)
def test_bounded_int_refuses_anything_else(raw: str) -> None:
    with pytest.raises(ApiError) as info:
        bounded_int(raw, "tail", 0, 999)
    assert (info.value.status, info.value.code) == (400, "invalid_tail")
    assert "'tail'" in info.value.message


def test_bounded_int_lower_bound() -> None:
    with pytest.raises(ApiError) as info:
        bounded_int("0", "cols", 1, 999)
    assert info.value.code == "invalid_cols"


@pytest.mark.parametrize(("raw", "value"), [("1", 1.0), ("0.5", 0.5), ("30", 30.0), ("2.25", 2.25)])
def test_bounded_seconds_accepts(raw: str, value: float) -> None:
    assert bounded_seconds(raw, "timeout", 0.0, 30.0, 3.0) == value


@pytest.mark.parametrize(
    "raw", ["0", "0.0", "31", "nan", "inf", "-1", "1_0", " 1", "1.", ".5", "1e1", "²", "\u0661"]
)
def test_bounded_seconds_refuses(raw: str) -> None:
    with pytest.raises(ApiError) as info:
        bounded_seconds(raw, "timeout", 0.0, 30.0, 3.0)
    assert (info.value.status, info.value.code) == (400, "invalid_timeout")


def test_parse_deadline_uses_the_same_rules() -> None:
    assert parse_deadline(None) == DEFAULT_DEADLINE
    assert parse_deadline(str(int(MAX_DEADLINE))) == MAX_DEADLINE
    for raw in ("\u0661", "1_0", "nan"):
        with pytest.raises(ApiError):
            parse_deadline(raw)
