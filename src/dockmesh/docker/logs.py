"""Container logs: one stream (:func:`stream_logs`) and a follower across restarts (:func:`follow_logs`).

For non-TTY containers the engine multiplexes stdout/stderr into frames with an 8-byte
header; those headers are stripped here.  TTY containers' logs are one raw stream.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiodocker
import aiohttp

from dockmesh.docker._api import iter_frames, iter_raw, object_ref, open_stream
from dockmesh.docker.errors import DockerFailure, bad_request, docker_errors

__all__ = ["MAX_LINE", "REMOVED_LINE", "STOPPED_LINE", "LineSplitter", "follow_logs", "stream_logs"]

REMOVED_LINE = b"[dockmesh] container removed\n"
STOPPED_LINE = b"[dockmesh] container stopped; waiting for it to start again\n"
#: How often :func:`follow_logs` looks whether a stopped container runs again.
POLL_SECONDS = 0.5
#: Longest line :func:`follow_logs` delivers from a TTY container; longer ones are split.
MAX_LINE = 64 * 1024

_NS = 1_000_000_000
_TS_RE = re.compile(rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")


def _check_tail(tail: int | None) -> str:
    if tail is None:
        return "all"
    if isinstance(tail, bool) or not isinstance(tail, int) or tail < 0:
        raise bad_request(f"invalid tail {tail!r}")
    return str(tail)


def _ns_param(ns: int) -> str:
    """A ``since`` value the engine parses exactly: ``seconds.nanoseconds``."""
    return f"{ns // _NS}.{ns % _NS:09d}"


def parse_timestamp(text: bytes | str) -> int | None:
    """Nanoseconds since the epoch of an RFC 3339 (nano) timestamp, None if not one."""
    raw = text.encode() if isinstance(text, str) else text
    m = _TS_RE.fullmatch(raw)
    if m is None:
        return None
    zone = "+00:00" if m[3] == b"Z" else m[3].decode()
    try:
        seconds = int(datetime.fromisoformat(m[1].decode() + zone).timestamp())
    except ValueError:
        return None
    if seconds < 0:  # Go's zero time "0001-01-01T00:00:00Z": never happened
        return None
    return seconds * _NS + int((m[2] or b"").decode().ljust(9, "0"))


@asynccontextmanager
async def _open_logs(
    docker: aiodocker.Docker,
    ref: str,
    *,
    follow: bool,
    tail: str,
    since: str | None,
    timestamps: bool,
    stdout: bool = True,
    stderr: bool = True,
) -> AsyncIterator[aiohttp.ClientResponse]:
    params: dict[str, Any] = {
        "follow": bool(follow),
        "stdout": bool(stdout),
        "stderr": bool(stderr),
        "timestamps": bool(timestamps),
        "tail": tail,
    }
    if since is not None:
        params["since"] = since
    async with open_stream(docker, f"containers/{ref}/logs", params=params) as resp:
        yield resp


async def _chunks(resp: aiohttp.ClientResponse, tty: bool) -> AsyncIterator[tuple[int, bytes]]:
    if tty:
        async for chunk in iter_raw(resp):
            yield 1, chunk
    else:
        async for frame in iter_frames(resp):
            yield frame


async def stream_logs(
    docker: aiodocker.Docker,
    ref: str,
    *,
    follow: bool,
    tail: int | None = None,
    since: float | None = None,
    timestamps: bool = False,
    stdout: bool = True,
    stderr: bool = True,
) -> AsyncIterator[bytes]:
    """The container's log output as bytes, in order, without multiplexing headers.

    With ``follow`` the stream stays open until the container stops (or the caller
    closes the iterator).  ``since`` is a UNIX timestamp (fractions allowed),
    ``tail`` a number of lines from the end (None: all).
    """
    object_ref(ref)
    tail_param = _check_tail(tail)
    if not stdout and not stderr:
        raise bad_request("request at least one of stdout and stderr")
    since_param = f"{float(since):.9f}" if since is not None else None
    with docker_errors():
        info = await docker._query_json(f"containers/{ref}/json")
        tty = bool((info.get("Config") or {}).get("Tty"))
        async with _open_logs(
            docker,
            ref,
            follow=follow,
            tail=tail_param,
            since=since_param,
            timestamps=timestamps,
            stdout=stdout,
            stderr=stderr,
        ) as resp:
            async for _stream, data in _chunks(resp, tty):
                yield data


class _Cursor:
    """What :func:`follow_logs` has delivered, so a resumed stream repeats nothing.

    The engine's ``since`` is inclusive and stdout/stderr messages may carry slightly
    out-of-order timestamps, so a resumed stream drops messages older than the newest
    delivered one and those at exactly that time that were already delivered.
    """

    def __init__(self) -> None:
        self.newest: int | None = None
        self.at_newest: set[tuple[int, bytes]] = set()
        self.floor: int | None = None  # nothing delivered yet: nothing older is wanted
        self._resume_newest: int | None = None
        self._resume_seen: frozenset[tuple[int, bytes]] = frozenset()

    def since(self) -> str | None:
        point = self.newest if self.newest is not None else self.floor
        return _ns_param(point) if point is not None else None

    def begin_stream(self, resumed: bool) -> None:
        self._resume_newest = self.newest if resumed else None
        self._resume_seen = frozenset(self.at_newest) if resumed else frozenset()

    def raise_floor(self, ns: int | None) -> None:
        if ns is not None and (self.floor is None or ns > self.floor):
            self.floor = ns

    def accept(self, ts: int, stream: int, payload: bytes) -> bool:
        key = (stream, payload)
        if self._resume_newest is not None and (
            ts < self._resume_newest or (ts == self._resume_newest and key in self._resume_seen)
        ):
            return False
        if self.newest is None or ts > self.newest:
            self.newest = ts
            self.at_newest = {key}
        elif ts == self.newest:
            self.at_newest.add(key)
        return True


def _split_timestamp(message: bytes) -> tuple[int | None, bytes, bytes]:
    """``b"<RFC3339Nano> payload"`` -> (ns, timestamp text, payload)."""
    head, sep, payload = message.partition(b" ")
    ts = parse_timestamp(head) if sep else None
    if ts is None:
        return None, b"", message
    return ts, head, payload


async def _messages(resp: aiohttp.ClientResponse, tty: bool) -> AsyncIterator[tuple[int, bytes]]:
    """Timestamped log messages: one per frame (non-TTY) or per line (TTY)."""
    if not tty:
        async for frame in iter_frames(resp):
            yield frame
        return
    lines = LineSplitter()
    async for chunk in iter_raw(resp):
        for line in lines.feed(chunk):
            yield 1, line
    rest = lines.flush()
    if rest:
        yield 1, rest


class LineSplitter:
    """Cuts a byte stream into lines of at most MAX_LINE bytes (newline included).

    A TTY's progress output redraws one line with ``\r`` and never ends it: buffering until the
    newline held it all in memory, and re-splitting the whole buffer on every chunk made following
    it quadratic in CPU. Only new bytes are scanned here, and a line that reaches the cap goes out
    as it is, the rest following as the next line (the engine itself splits log entries at 16 KiB).
    """

    def __init__(self, max_line: int | None = None) -> None:
        self.max_line = max_line or MAX_LINE
        self._partial = bytearray()

    def feed(self, chunk: bytes) -> list[bytes]:
        out: list[bytes] = []
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                break
            self._partial += chunk[start : end + 1]
            start = end + 1
            out.extend(self._cut(final=True))
        self._partial += chunk[start:]
        out.extend(self._cut(final=False))
        return out

    def flush(self) -> bytes:
        rest = bytes(self._partial)
        self._partial.clear()
        return rest

    def _cut(self, final: bool) -> list[bytes]:
        """Full-size pieces of the partial line; all of it when the line is complete."""
        out: list[bytes] = []
        size = len(self._partial)
        cut = 0
        while size - cut >= self.max_line:
            out.append(bytes(self._partial[cut : cut + self.max_line]))
            cut += self.max_line
        if final and cut < size:
            out.append(bytes(self._partial[cut:]))
            cut = size
        if cut:
            del self._partial[:cut]
        return out


def _running(state: dict[str, Any]) -> bool:
    return bool(state.get("Running")) and not state.get("Restarting")


def _date_header_ns(resp: aiohttp.ClientResponse) -> int | None:
    value = resp.headers.get("Date")
    if not value:
        return None
    try:
        return int(parsedate_to_datetime(value).timestamp()) * _NS
    except (TypeError, ValueError):
        return None


async def _inspect_or_none(docker: aiodocker.Docker, ref: str) -> dict[str, Any] | None:
    """Inspect JSON, or None when the container no longer exists."""
    try:
        with docker_errors():
            data: dict[str, Any] = await docker._query_json(f"containers/{ref}/json")
    except DockerFailure as failure:
        if failure.status == 404:
            return None
        raise
    return data


async def follow_logs(
    docker: aiodocker.Docker, ref: str, *, tail: int | None = None, timestamps: bool = False
) -> AsyncIterator[bytes]:
    """Follow a container's logs across stops and restarts.

    Yields log bytes (timestamps stripped unless ``timestamps``).  When the engine ends
    the stream: if the container is gone, yields :data:`REMOVED_LINE` and stops; if it
    is stopped, yields :data:`STOPPED_LINE` once, polls every 0.5 s until it runs again
    and resumes from the last delivered timestamp, so nothing is repeated or lost.
    A container missing from the start raises DockerFailure 404.
    """
    object_ref(ref)
    tail_param = _check_tail(tail)
    with docker_errors():
        info = await docker._query_json(f"containers/{ref}/json")
    cid = str(info["Id"])  # follow this container, not a later one with the same name
    tty = bool((info.get("Config") or {}).get("Tty"))
    cursor = _Cursor()
    first = True
    while True:
        started_before = (info.get("State") or {}).get("StartedAt")
        cursor.begin_stream(resumed=not first)
        with docker_errors():
            async with _open_logs(
                docker,
                cid,
                follow=True,
                tail=tail_param if first else "all",
                since=None if first else cursor.since(),
                timestamps=True,
            ) as resp:
                if first:
                    cursor.raise_floor(_date_header_ns(resp))
                async for stream, message in _messages(resp, tty):
                    ts, _ts_text, payload = _split_timestamp(message)
                    if ts is not None and not cursor.accept(ts, stream, payload):
                        continue
                    if timestamps or ts is None:
                        yield message
                    else:
                        yield payload
        first = False
        latest = await _inspect_or_none(docker, cid)
        if latest is None:
            yield REMOVED_LINE
            return
        info = latest
        state = info.get("State") or {}
        if _running(state):
            if state.get("StartedAt") == started_before:
                await asyncio.sleep(POLL_SECONDS)  # the stream ended for another reason: no busy loop
            continue
        yield STOPPED_LINE
        while not _running(state):
            cursor.raise_floor(parse_timestamp(str(state.get("FinishedAt") or "")))
            await asyncio.sleep(POLL_SECONDS)
            latest = await _inspect_or_none(docker, cid)
            if latest is None:
                yield REMOVED_LINE
                return
            info = latest
            state = info.get("State") or {}
