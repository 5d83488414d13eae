"""Compose's duration and byte-size notations, to the engine's nanoseconds and bytes."""

from __future__ import annotations

import re

__all__ = ["parse_bytes", "parse_duration"]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)")
_NS = {"h": 3600 * 10**9, "m": 60 * 10**9, "s": 10**9, "ms": 10**6, "us": 10**3, "µs": 10**3, "ns": 1}
_BYTES = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)b?", re.IGNORECASE)
_UNIT = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_duration(text: str) -> int | None:
    """Go duration syntax (``1m30s``, ``500ms``) as nanoseconds; None if it is not one."""
    text = text.strip()
    pos, total = 0, 0.0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None:
            return None
        total += float(match.group(1)) * _NS[match.group(2)]
        pos = match.end()
    return int(total) if text else None


def parse_bytes(value: str | int | float) -> int | None:
    """``512m``, ``1g``, ``1024`` (bytes) as an integer; None if it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value) if value >= 0 else None
    match = _BYTES.fullmatch(value.strip())
    if match is None:
        return None
    return int(float(match.group(1)) * _UNIT[match.group(2).lower()])
