"""Ask many hosts at once; never let one slow or dead host hold the reply past its deadline."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncGenerator
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
    # How old the host's rows are (0: live; None: none known) and whether they are its last-known
    # ones from before it went offline (docs/inventory.md).
    age_s: float | None = 0.0
    stale: bool = False

    def to_dict(self) -> dict[str, Any]:
        # Hand-written: dataclasses.asdict deep-copies and costs a tenth of a 1,000-host list.
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "error": self.error,
            "ms": self.ms,
            "age_s": self.age_s,
            "stale": self.stale,
        }


# The futures time themselves out at the deadline; this outer bound only guards against a lost timer.
GRACE = 0.25
# A streamed reply writes once this much is ready (or when the fan-out ends), not once per host.
STREAM_BATCH = 256 * 1024


@dataclass
class FanOut:
    """What a fan-out gathered: every host's outcome and rows, in host order."""

    outcomes: list[HostOutcome]
    rows: list[list[dict[str, Any]]]

    @property
    def items(self) -> list[dict[str, Any]]:
        return [row for host_rows in self.rows for row in host_rows]

    def to_dict(self) -> dict[str, Any]:
        return {"items": self.items, "hosts": [o.to_dict() for o in self.outcomes]}


class Gather:
    """One fan-out in flight: every request is sent when it is made.

    `hosts` must be sorted by (name, id), as HostDirectory returns them: then sorting each host's rows
    as they arrive orders the whole list without a global sort. Each host's answer is checked and
    stamped with its host as it lands; with `encode`, it is also encoded to JSON then and the rows are
    let go, so `stream()` can send every host whose turn has come while later ones are still out.
    """

    def __init__(
        self,
        hosts: list[HostRef],
        method: str,
        params: dict[str, Any],
        deadline: float,
        sort_key: str = "name",
        *,
        encode: bool = False,
    ) -> None:
        self._hosts = hosts
        self._deadline = deadline
        self._sort_key = sort_key
        self._encode = encode
        self._started = time.perf_counter()
        self.outcomes: list[HostOutcome | None] = [None] * len(hosts)
        self.rows: list[list[dict[str, Any]]] = [[] for _ in hosts]
        self.chunks: list[bytes] = [b""] * len(hosts)
        self._progress: asyncio.Future[None] | None = None
        self._asked: list[tuple[int, asyncio.Future[Any]]] = []
        for i, host in enumerate(hosts):
            fut = None
            if host.link is not None and not host.link.closed:
                with contextlib.suppress(LinkClosed):
                    fut = host.link.begin_request(method, params, deadline)
            if fut is None:
                self.outcomes[i] = HostOutcome(
                    host.id, host.name, "offline", f"host {host.name!r} is offline", 0.0, None, True
                )
                continue
            fut.add_done_callback(functools.partial(self._settle, i))
            self._asked.append((i, fut))

    def _settle(self, i: int, fut: asyncio.Future[Any]) -> None:
        if self.outcomes[i] is not None:
            return
        host = self._hosts[i]
        ms = round((time.perf_counter() - self._started) * 1000, 1)
        if fut.cancelled():
            self.outcomes[i] = HostOutcome(host.id, host.name, "timeout", "no answer in time", ms)
        elif (exc := fut.exception()) is None:
            result = fut.result()
            if isinstance(result, list):
                # Rows are freshly decoded and ours, so the host is added in place.
                mine = [row for row in result if isinstance(row, dict)]
                mine.sort(key=lambda r: row_key(r.get(self._sort_key)))
                summary = host.summary()
                for row in mine:
                    row["host"] = summary
                if not self._encode:
                    self.rows[i] = mine
                elif mine:
                    self.chunks[i] = orjson.dumps(mine)[1:-1]
            self.outcomes[i] = HostOutcome(host.id, host.name, "ok", None, ms)
        elif isinstance(exc, RequestTimeout):
            self.outcomes[i] = HostOutcome(
                host.id, host.name, "timeout", f"no answer within {self._deadline:g}s", ms
            )
        elif isinstance(exc, LinkClosed):
            self.outcomes[i] = HostOutcome(
                host.id, host.name, "offline", "the link closed during the request", ms, None, True
            )
        elif isinstance(exc, RemoteError):
            self.outcomes[i] = HostOutcome(host.id, host.name, "error", exc.message, ms)
        else:
            self.outcomes[i] = HostOutcome(host.id, host.name, "error", str(exc), ms)
        if self._progress is not None and not self._progress.done():
            self._progress.set_result(None)

    def _finish(self) -> None:
        """Give up on every host still out: it is told to cancel and reported `timeout`."""
        for i, fut in self._asked:
            if not fut.done():
                fut.cancel()
            self._settle(i, fut)

    async def wait(self) -> FanOut:
        """Every host's outcome, once all have answered or run out of time."""
        try:
            if self._asked:
                await asyncio.wait([fut for _i, fut in self._asked], timeout=self._deadline + GRACE)
        finally:
            self._finish()
        return FanOut([o for o in self.outcomes if o is not None], self.rows)

    async def stream(self) -> AsyncGenerator[bytes, None]:
        """The API body, `{"items": [...], "hosts": [...]}`, in pieces as hosts take their turn.

        A slow host early in the order holds back only the rows after it, and never past its deadline.
        Needs `encode`.
        """
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._deadline + GRACE
        turn = 0
        ready: list[bytes] = [b'{"items":[']
        size = 0
        first = True
        try:
            while True:
                while turn < len(self._hosts) and self.outcomes[turn] is not None:
                    chunk, self.chunks[turn] = self.chunks[turn], b""
                    if chunk:
                        ready.append(chunk if first else b"," + chunk)
                        size += len(chunk)
                        first = False
                    turn += 1
                if turn == len(self._hosts):
                    break
                if size >= STREAM_BATCH:
                    yield b"".join(ready)
                    ready, size = [], 0
                    continue  # hosts that answered while the reader was busy must not wait for the next
                remaining = give_up - loop.time()
                if remaining <= 0:
                    self._finish()
                    continue
                self._progress = loop.create_future()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._progress, remaining)
        finally:
            self._progress = None
            self._finish()
        hosts = [o.to_dict() for o in self.outcomes if o is not None]
        ready += [b'],"hosts":', orjson.dumps(hosts), b"}"]
        yield b"".join(ready)


async def fan_out(
    hosts: list[HostRef],
    method: str,
    params: dict[str, Any],
    deadline: float,
    sort_key: str = "name",
) -> FanOut:
    """Rows from every host that answered, each with its host; an outcome for every selected host."""
    return await Gather(hosts, method, params, deadline, sort_key).wait()


def row_key(value: Any) -> str:
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return "" if value is None else str(value)


def parse_deadline(raw: str | None) -> float:
    from dockmesh.server.query import bounded_seconds

    return bounded_seconds(raw, "timeout", 0.0, MAX_DEADLINE, DEFAULT_DEADLINE)
