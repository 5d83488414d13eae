"""The audit filters, parsed once for the API and the page: bounded, times as epoch seconds or ISO 8601."""

from __future__ import annotations

import pytest

from dockmesh.server.services.audit import DEFAULT_PAGE, parse_query
from dockmesh.server.services.errors import Invalid


def test_filters_parse_with_defaults() -> None:
    q = parse_query(
        {"actor": "admin", "action": "container.", "since": "2026-01-01T00:00:00Z", "until": "1800000000"}
    )
    assert (q.where.actor, q.where.action, q.where.host, q.where.outcome) == (
        "admin",
        "container.",
        None,
        None,
    )
    assert (q.where.since, q.where.until) == (1767225600.0, 1800000000.0)
    assert (q.cursor, q.limit) == (None, DEFAULT_PAGE)


def test_a_naive_time_is_utc_and_blank_filters_are_absent() -> None:
    q = parse_query({"since": "2026-01-01T00:00", "host": "  ", "cursor": "42", "limit": "500"})
    assert q.where.since == 1767225600.0
    assert q.where.host is None
    assert (q.cursor, q.limit) == (42, 500)


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"limit": "501"}, "invalid_limit"),
        ({"limit": "0"}, "invalid_limit"),
        ({"limit": "٣"}, "invalid_limit"),  # a digit to str.isdigit, not to us
        ({"cursor": "-1"}, "invalid_cursor"),
        ({"cursor": "1e3"}, "invalid_cursor"),
        ({"since": "yesterday"}, "invalid_since"),
        ({"until": "nan"}, "invalid_until"),
        ({"actor": "a" * 257}, "invalid_actor"),
    ],
)
def test_bad_filters_are_400_with_a_code(query: dict[str, str], code: str) -> None:
    with pytest.raises(Invalid) as caught:
        parse_query(query)
    assert (caught.value.status, caught.value.code) == (400, code)
