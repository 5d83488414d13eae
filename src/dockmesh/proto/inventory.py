"""The live inventory's wire contract (docs/inventory.md): event names, kinds, row shapes, bounds, digest.

Pure and shared: the agent builds its messages with it, the server checks what arrives against it. A row
is exactly what the fan-out list of its kind returns (docker/*_row functions), so both paths agree.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

__all__ = [
    "CHUNK_ROWS",
    "KEYS",
    "KINDS",
    "MAX_ROWS",
    "MAX_STR",
    "BadRow",
    "Names",
    "check_row",
    "digest",
    "fit_row",
]


class Names:
    """EVENTs on channel 0: the first three go agent → server, `RESYNC` server → agent."""

    SNAPSHOT: Final = "inventory.snapshot"  # {"kind", "gen", "rows": [...], "done": bool}
    DELTA: Final = "inventory.delta"  # {"kind", "gen", "upsert": [...], "remove": [key, ...]}
    DIGEST: Final = "inventory.digest"  # {"gen", "kinds": {kind: hex}}
    RESYNC: Final = "inventory.resync"  # {"kinds": [kind, ...]}
    CAPABILITY: Final = "inventory"  # in hello's capabilities: this agent pushes its inventory


# The field that names a row within its kind (a container's id, a volume's name).
KEYS: Final[dict[str, str]] = {"containers": "id", "images": "id", "volumes": "name", "networks": "id"}
KINDS: Final = tuple(KEYS)

# Bounds a hostile or broken agent cannot pass (the server drops that host's inventory and asks again).
MAX_ROWS: Final = 20_000  # per kind and host: 10 times the largest hosts seen, about 5 MB at 250 B a row
CHUNK_ROWS: Final = 500  # rows per snapshot/delta event: ~150 KB, far under the 1 MiB frame
MAX_STR: Final = 1024  # any string field (names, images, status text)
MAX_TAGS: Final = 256

_STR: Final = "str"
_OPT: Final = "optional str"
_INT: Final = "int"
_BOOL: Final = "bool"
_TAGS: Final = "tags"

# Field → type, per kind: the rows' shape (docker/containers.py container_row, images.list_images, …).
SHAPES: Final[dict[str, dict[str, str]]] = {
    "containers": {
        "id": _STR,
        "name": _STR,
        "image": _STR,
        "state": _STR,
        "status": _STR,
        "stack": _OPT,
        "service": _OPT,
        "created": _INT,
    },
    "images": {"id": _STR, "tags": _TAGS, "size": _INT, "created": _INT},
    "volumes": {"name": _STR, "driver": _STR, "stack": _OPT, "created": _OPT, "mountpoint": _STR},
    "networks": {"id": _STR, "name": _STR, "driver": _STR, "scope": _STR, "stack": _OPT, "internal": _BOOL},
}


class BadRow(ValueError):
    """A row (or message) outside the contract; the text names what, never echoes the peer's value."""


def _field_ok(kind: str, value: Any) -> bool:
    if kind == _STR:
        return isinstance(value, str) and len(value) <= MAX_STR
    if kind == _OPT:
        return value is None or (isinstance(value, str) and len(value) <= MAX_STR)
    if kind == _INT:
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63
    if kind == _BOOL:
        return isinstance(value, bool)
    return (
        isinstance(value, list)
        and len(value) <= MAX_TAGS
        and all(isinstance(t, str) and len(t) <= MAX_STR for t in value)
    )


def check_row(kind: str, row: Any) -> dict[str, Any]:
    """The row with exactly its kind's fields, or BadRow: a missing, extra or mistyped field, an empty key."""
    shape = SHAPES.get(kind)
    if shape is None:
        raise BadRow("unknown kind")
    if not isinstance(row, dict) or row.keys() != shape.keys():
        raise BadRow(f"a {kind} row must have exactly the fields {', '.join(shape)}")
    for name, typ in shape.items():
        if not _field_ok(typ, row[name]):
            raise BadRow(f"{kind} field {name!r} must be {typ} (strings at most {MAX_STR} characters)")
    if not row[KEYS[kind]]:
        raise BadRow(f"{kind} row has an empty {KEYS[kind]!r}")
    return row


def digest(rows: Iterable[Mapping[str, Any]]) -> str:
    """SHA-256 (hex) of the rows in key order, canonical JSON: equal sets of rows, equal digests."""
    h = hashlib.sha256()
    encoded = sorted(json.dumps(row, sort_keys=True, separators=(",", ":")) for row in rows)
    for line in encoded:
        h.update(line.encode())
        h.update(b"\n")
    return h.hexdigest()


def fit_row(kind: str, row: dict[str, Any]) -> dict[str, Any]:
    """The agent's side of the bounds: over-long strings and tag lists cut, so one odd object cannot
    make the server drop the whole host's copy."""
    shape = SHAPES[kind]
    fitted: dict[str, Any] = {}
    for name, typ in shape.items():
        value = row.get(name)
        if isinstance(value, str):
            value = value[:MAX_STR]
        elif typ == _TAGS and isinstance(value, list):
            value = [str(t)[:MAX_STR] for t in value[:MAX_TAGS]]
        fitted[name] = value
    return fitted
