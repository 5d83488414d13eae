"""Ask many hosts at once; never let one slow or dead host hold the reply past its deadline."""

from __future__ import annotations

import asyncio
import functools
import time
from dataclasses import dataclass
from typing import Any

import orjson

from dockmesh.link import LinkClosed, RemoteError, RequestTimeout
from dockmesh.server.directory import HostRef

DEFAULT_DEADLINE = 3.0
MAX_DEADLINE = 30.0


@dataclass(frozen=True)
class HostOutcome:
    id: str
    name: str
    status: str  # ok · offline · timeout · error
    error: str | None
    ms: float

    def to_dict(self) -> dict[str, Any]:
        # Hand-written: dataclasses.asdict deep-copies and costs a tenth of a 1,000-host list.
        return {"id": self.id, "name": self.name, "status": self.status, "error": self.error, "ms": self.ms}


# The futures time themselves out at the deadline; this outer bound only guards against a lost timer.
GRACE = 0.25


@dataclass
class FanOut:
    """What a fan-out gathered: every host's outcome and rows, in host order."""

    outcomes: list[HostOutcome]
    # Each host's rows; empty when the fan-out encoded them on arrival into `chunks` instead.
    rows: list[list[dict[str, Any]]]
    # Each host's rows as JSON without the brackets (only when asked for, see `encode`).
    chunks: list[bytes]

    @property
    def items(self) -> list[dict[str, Any]]:
        return [row for host_rows in self.rows for row in host_rows]

    def to_dict(self) -> dict[str, Any]:
        return {"items": self.items, "hosts": [o.to_dict() for o in self.outcomes]}

    def to_json(self) -> bytes:
        """The API body. Splices the per-host chunks, so the last host's arrival costs one join."""
        chunks = self.chunks or [orjson.dumps(rows)[1:-1] for rows in self.rows]
        return b"".join(
            (
                b'{"items":[',
                b",".join(c for c in chunks if c),
                b'],"hosts":',
                orjson.dumps([o.to_dict() for o in self.outcomes]),
                b"}",
            )
        )


async def fan_out(
    hosts: list[HostRef],
    method: str,
    params: dict[str, Any],
    deadline: float,
    sort_key: str = "name",
    *,
    encode: bool = False,
) -> FanOut:
    """Rows from every host that answered, each with its host; an outcome for every selected host.

    `hosts` must be sorted by (name, id), as HostDirectory returns them: then sorting each host's
    rows as they arrive orders the whole list without a global sort. Each host's answer is checked,
    stamped and (with `encode`) encoded as it lands, so the reply is ready when the last one does.
    """
    started = time.perf_counter()
    outcomes: list[HostOutcome | None] = [None] * len(hosts)
    rows: list[list[dict[str, Any]]] = [[] for _ in hosts]
    chunks: list[bytes] = [b""] * len(hosts) if encode else []

    def settle(i: int, fut: asyncio.Future[Any]) -> None:
        if outcomes[i] is not None:
            return
        host = hosts[i]
        ms = round((time.perf_counter() - started) * 1000, 1)
        if fut.cancelled():
            outcomes[i] = HostOutcome(host.id, host.name, "timeout", "no answer in time", ms)
            return
        exc = fut.exception()
        if exc is None:
            result = fut.result()
            if isinstance(result, list):
                # Rows are freshly decoded and ours, so the host is added in place.
                mine = [row for row in result if isinstance(row, dict)]
                mine.sort(key=lambda r: _key(r.get(sort_key)))
                summary = host.summary()
                for row in mine:
                    row["host"] = summary
                if not encode:
                    rows[i] = mine
                elif mine:
                    # Encoded now, the rows can go: fewer live objects for the collector to walk.
                    chunks[i] = orjson.dumps(mine)[1:-1]
            outcomes[i] = HostOutcome(host.id, host.name, "ok", None, ms)
        elif isinstance(exc, RequestTimeout):
            outcomes[i] = HostOutcome(host.id, host.name, "timeout", f"no answer within {deadline:g}s", ms)
        elif isinstance(exc, LinkClosed):
            outcomes[i] = HostOutcome(host.id, host.name, "offline", "the link closed during the request", ms)
        elif isinstance(exc, RemoteError):
            outcomes[i] = HostOutcome(host.id, host.name, "error", exc.message, ms)
        else:
            outcomes[i] = HostOutcome(host.id, host.name, "error", str(exc), ms)

    asked: list[tuple[int, asyncio.Future[Any]]] = []
    for i, host in enumerate(hosts):
        link = host.link
        try:
            if link is None or link.closed:
                raise LinkClosed(None, "")
            fut = link.begin_request(method, params, deadline)
        except LinkClosed:
            outcomes[i] = HostOutcome(host.id, host.name, "offline", f"host {host.name!r} is offline", 0.0)
            continue
        fut.add_done_callback(functools.partial(settle, i))
        asked.append((i, fut))
    if asked:
        try:
            await asyncio.wait([fut for _i, fut in asked], timeout=deadline + GRACE)
        finally:
            for i, fut in asked:
                if not fut.done():
                    fut.cancel()  # tells the host to stop working on it
                settle(i, fut)
    return FanOut([o for o in outcomes if o is not None], rows, chunks)


def _key(value: Any) -> str:
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return "" if value is None else str(value)


def parse_deadline(raw: str | None) -> float:
    from dockmesh.server.errors import ApiError

    if raw is None or raw == "":
        return DEFAULT_DEADLINE
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, "invalid_timeout", "'timeout' must be a number of seconds") from None
    if not 0 < value <= MAX_DEADLINE:
        raise ApiError(400, "invalid_timeout", f"'timeout' must be between 0 and {MAX_DEADLINE:g} seconds")
    return value
