"""Numbers from query strings: strict ASCII, bounded, a 400 with the JSON error otherwise.

`str.isdigit()` is true for '²' (which `int()` refuses: a 500) and for Arabic-Indic digits;
`float()` takes '1_0', 'nan' and ' 5 '. A regular expression over ASCII is the one definition here.
"""

from __future__ import annotations

import re

from dockmesh.server.errors import ApiError

_INT = re.compile(r"[0-9]{1,9}")
_DECIMAL = re.compile(r"[0-9]{1,9}(\.[0-9]{1,6})?")


def bounded_int(raw: str | None, name: str, low: int, high: int, default: int | None = None) -> int | None:
    """`raw` as an integer in [low, high]; absent (None or '') gives `default`."""
    if raw is None or raw == "":
        return default
    if not _INT.fullmatch(raw) or not low <= int(raw) <= high:
        raise ApiError(400, f"invalid_{name}", f"'{name}' must be a whole number from {low} to {high}")
    return int(raw)


def bounded_seconds(raw: str | None, name: str, low: float, high: float, default: float) -> float:
    """`raw` as seconds in (low, high]: digits with an optional fraction, nothing else."""
    if raw is None or raw == "":
        return default
    if not _DECIMAL.fullmatch(raw) or not low < float(raw) <= high:
        raise ApiError(
            400, f"invalid_{name}", f"'{name}' must be a number of seconds above {low:g}, at most {high:g}"
        )
    return float(raw)
