"""Volumes, networks and images on one host or over a host selection: what the API and the pages call.

Every function takes the caller (for the audit row now, for RBAC scope in issue 11: `_reach` and
`_select` are the one place that check goes) and raises `ApiError` (status, code, message), which the
API renders as JSON and the pages as HTML.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from dockmesh.link import Link, LinkClosed, RemoteError, RequestTimeout, Stream
from dockmesh.link.packets import PacketError, PacketStream, decode_json
from dockmesh.proto.methods import Objects
from dockmesh.server.context import ServerContext
from dockmesh.server.directory import HostRef
from dockmesh.server.errors import ApiError, from_remote
from dockmesh.server.fanout import HostOutcome
from dockmesh.store.users import UserRecord

ACTION_TIMEOUT = 60.0
# A prune asks the engine for disk usage (it walks volume data) and removes objects one by one.
PRUNE_TIMEOUT = 300.0
# The first packet of a pull: long enough for the registry's auth round trip and manifest.
PULL_FIRST = 30.0
# How many progress lines from the hosts of a selection may wait for the HTTP client.
PULL_QUEUE = 256
PRUNE_KINDS = {"images": Objects.IMAGES_PRUNE, "volumes": Objects.VOLUMES_PRUNE}


async def _reach(c: ServerContext, user: UserRecord, host_id: str) -> tuple[HostRef, Link]:
    """The one host a host-addressed call names, if this caller may act on it."""
    return await c.directory.require(host_id)


async def _select(c: ServerContext, user: UserRecord, selector: str) -> list[HostRef]:
    return await c.directory.select(selector)


def _remote(exc: RemoteError, host: HostRef) -> ApiError:
    if exc.code == "unauthorized":
        # The registry refused the engine, not this caller: a 401 would send the browser to log in.
        return ApiError(
            403,
            "registry_unauthorized",
            f"{host.name}: the registry refused the pull ({exc.message}); it needs credentials",
        )
    return from_remote(exc.code, exc.message, host.name)


async def _ask(
    c: ServerContext, user: UserRecord, host_id: str, method: str, params: dict[str, Any]
) -> tuple[HostRef, Any]:
    host, link = await _reach(c, user, host_id)
    try:
        return host, await link.request(method, params, timeout=ACTION_TIMEOUT)
    except RemoteError as exc:
        raise _remote(exc, host) from None
    except RequestTimeout:
        raise ApiError(
            504, "host_timeout", f"host {host.name!r} did not answer within {ACTION_TIMEOUT:g}s"
        ) from None
    except LinkClosed:
        raise ApiError(503, "host_offline", f"host {host.name!r} went offline during the request") from None


async def _audit(
    c: ServerContext, user: UserRecord, action: str, target: str, detail: dict[str, Any] | None = None
) -> None:
    await c.audit.add(c.clock(), user.username, action, target, detail)


async def create_volume(
    c: ServerContext, user: UserRecord, host_id: str, name: str, driver: str = "local"
) -> dict[str, Any]:
    host, row = await _ask(c, user, host_id, Objects.VOLUMES_CREATE, {"name": name, "driver": driver})
    await _audit(c, user, "volume.create", f"{host.id}/{name}", {"driver": driver})
    return {**row, "host": host.summary()} if isinstance(row, dict) else {"name": name}


async def remove_volume(c: ServerContext, user: UserRecord, host_id: str, name: str) -> None:
    host, _ = await _ask(c, user, host_id, Objects.VOLUMES_REMOVE, {"name": name})
    await _audit(c, user, "volume.remove", f"{host.id}/{name}")


async def create_network(
    c: ServerContext,
    user: UserRecord,
    host_id: str,
    name: str,
    driver: str = "bridge",
    internal: bool = False,
) -> dict[str, Any]:
    params = {"name": name, "driver": driver, "internal": internal}
    host, row = await _ask(c, user, host_id, Objects.NETWORKS_CREATE, params)
    await _audit(c, user, "network.create", f"{host.id}/{name}", {"driver": driver, "internal": internal})
    return {**row, "host": host.summary()} if isinstance(row, dict) else {"name": name}


async def remove_network(c: ServerContext, user: UserRecord, host_id: str, ref: str) -> None:
    host, _ = await _ask(c, user, host_id, Objects.NETWORKS_REMOVE, {"id": ref})
    await _audit(c, user, "network.remove", f"{host.id}/{ref}")


async def remove_image(
    c: ServerContext, user: UserRecord, host_id: str, ref: str, force: bool = False
) -> None:
    host, _ = await _ask(c, user, host_id, Objects.IMAGES_REMOVE, {"id": ref, "force": force})
    await _audit(c, user, "image.remove", f"{host.id}/{ref}", {"force": force})


# --- prune -------------------------------------------------------------------------------------


def _rows(value: Any) -> list[dict[str, Any]]:
    return [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []


def _bytes(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


async def prune(
    c: ServerContext,
    user: UserRecord,
    kind: str,
    selector: str,
    *,
    dry_run: bool,
    mode: str = "unused",
    timeout: float = PRUNE_TIMEOUT,
) -> dict[str, Any]:
    """Per host what a prune of `kind` removes (dry run) or removed, and every selected host's outcome."""
    method = PRUNE_KINDS[kind]
    params: dict[str, Any] = {"dry_run": dry_run}
    if kind == "images":
        params["mode"] = mode
    hosts = await _select(c, user, selector)
    started = time.perf_counter()

    async def one(host: HostRef) -> tuple[HostOutcome, dict[str, Any] | None]:
        def outcome(status: str, error: str | None) -> HostOutcome:
            ms = round((time.perf_counter() - started) * 1000, 1)
            return HostOutcome(host.id, host.name, status, error, ms)

        if host.link is None or host.link.closed:
            return outcome("offline", f"host {host.name!r} is offline"), None
        try:
            answer = await host.link.request(method, params, timeout=timeout)
        except RemoteError as exc:
            return outcome("error", exc.message), None
        except RequestTimeout:
            return outcome("timeout", f"no answer within {timeout:g}s"), None
        except LinkClosed:
            return outcome("offline", "the link closed during the request"), None
        answer = answer if isinstance(answer, dict) else {}
        result = {
            "host": host.summary(),
            "items": _rows(answer.get("items")),
            "reclaimed": _bytes(answer.get("reclaimed")),
            "failed": _rows(answer.get("failed")),
        }
        return outcome("ok", None), result

    done = await asyncio.gather(*(one(h) for h in hosts))
    results = [r for _o, r in done if r is not None]
    if not dry_run:
        for r in results:
            await _audit(
                c,
                user,
                f"{kind[:-1]}.prune",
                r["host"]["id"],
                {"removed": len(r["items"]), "failed": len(r["failed"]), "reclaimed": r["reclaimed"]},
            )
    return {
        "dry_run": dry_run,
        **({"mode": mode} if kind == "images" else {}),
        "results": results,
        "reclaimed": sum(r["reclaimed"] for r in results),
        "hosts": [o.to_dict() for o, _r in done],
    }


# --- pull --------------------------------------------------------------------------------------


def progress_line(message: dict[str, Any], host: HostRef) -> dict[str, Any] | None:
    """A host's pull packet, re-made from its known fields only (the peer controls every byte)."""
    kind = message.get("type")
    if kind == "progress":
        line: dict[str, Any] = {"type": "progress", "host": host.summary()}
        for key in ("id", "status"):
            value = message.get(key)
            line[key] = value[:200] if isinstance(value, str) else None
        for key in ("current", "total", "pulled", "size"):
            value = message.get(key)
            line[key] = _bytes(value) if value is not None else None
        return line
    if kind == "result":
        image_id = message.get("id")
        return {
            "type": "result",
            "host": host.summary(),
            "image": message.get("image") if isinstance(message.get("image"), str) else None,
            "id": image_id[:100] if isinstance(image_id, str) else None,
        }
    return None


@dataclass
class Pull:
    """One host's pull: started (its first packet read, so a refusal is a plain API error), then followed."""

    host: HostRef
    stream: Stream
    first: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self._packets = PacketStream(self.stream)

    async def _next(self) -> dict[str, Any] | None:
        while True:
            packet = await self._packets.recv()
            if packet is None:
                return None
            line = progress_line(decode_json(packet[1]), self.host)
            if line is not None:
                return line

    async def start(self, wait: float = PULL_FIRST) -> None:
        """Read the first line; raise the host's refusal (bad reference, registry auth) as an ApiError."""
        try:
            self.first = await asyncio.wait_for(self._next(), wait)
        except TimeoutError:
            self.first = None  # a slow registry: the lines follow
        except RemoteError as exc:
            self.stream.cancel()
            raise _remote(exc, self.host) from None
        except (LinkClosed, PacketError) as exc:
            self.stream.cancel()
            raise ApiError(503, "host_offline", f"{self.host.name}: the pull stream broke ({exc})") from None

    def _error(self, code: str, message: str) -> dict[str, Any]:
        return {"type": "error", "host": self.host.summary(), "code": code, "message": message}

    async def lines(self) -> AsyncGenerator[dict[str, Any], None]:
        """Progress lines, then one `result` or one `error` line; the host stops pulling if this stops."""
        try:
            if self.first is not None:
                yield self.first
                if self.first["type"] == "result":
                    return
            while True:
                try:
                    line = await self._next()
                except RemoteError as exc:
                    err = _remote(exc, self.host)
                    yield self._error(err.code, err.message)
                    return
                except (LinkClosed, PacketError) as exc:
                    yield self._error("host_offline", f"{self.host.name}: the pull stream broke ({exc})")
                    return
                if line is None:
                    yield self._error("engine_error", f"{self.host.name}: the pull ended without a result")
                    return
                yield line
                if line["type"] == "result":
                    return
        finally:
            self.stream.cancel()


async def start_pull(c: ServerContext, user: UserRecord, host_id: str, image: str) -> Pull:
    host, link = await _reach(c, user, host_id)
    try:
        stream = link.open_stream(Objects.IMAGES_PULL, {"image": image})
    except LinkClosed:
        raise ApiError(503, "host_offline", f"host {host.name!r} is offline") from None
    pull = Pull(host, stream)
    await pull.start()
    await _audit(c, user, "image.pull", f"{host.id}/{image}")
    return pull


async def pull_many(
    c: ServerContext, user: UserRecord, selector: str, image: str
) -> AsyncGenerator[dict[str, Any], None]:
    """Pull on every selected host at once: their progress lines, then one `result` line with
    `items` (each host's image id) and `hosts` (every selected host's outcome)."""
    hosts = await _select(c, user, selector)
    started = time.perf_counter()
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(PULL_QUEUE)
    outcomes: dict[str, HostOutcome] = {}
    items: list[dict[str, Any]] = []

    def settle(host: HostRef, status: str, error: str | None) -> None:
        ms = round((time.perf_counter() - started) * 1000, 1)
        outcomes[host.id] = HostOutcome(host.id, host.name, status, error, ms)

    async def one(host: HostRef) -> None:
        if host.link is None or host.link.closed:
            settle(host, "offline", f"host {host.name!r} is offline")
            return
        try:
            pull = Pull(host, host.link.open_stream(Objects.IMAGES_PULL, {"image": image}))
        except LinkClosed:
            settle(host, "offline", f"host {host.name!r} is offline")
            return
        async with contextlib.aclosing(pull.lines()) as lines:
            async for line in lines:
                if line["type"] == "result":
                    items.append(line)
                    settle(host, "ok", None)
                    await _audit(c, user, "image.pull", f"{host.id}/{image}")
                elif line["type"] == "error":
                    settle(host, "error", line["message"])
                else:
                    await queue.put(line)

    async def run_all() -> None:
        try:
            await asyncio.gather(*(one(h) for h in hosts))
        finally:
            await queue.put(None)

    runner = asyncio.create_task(run_all())
    try:
        while (line := await queue.get()) is not None:
            yield line
        await runner
    finally:
        if not runner.done():
            runner.cancel()  # the client left: every host's stream is cancelled with it
            with contextlib.suppress(asyncio.CancelledError):
                await runner
    items.sort(key=lambda r: (r["host"]["name"], r["host"]["id"]))
    yield {
        "type": "result",
        "image": image,
        "items": items,
        "hosts": [outcomes[h.id].to_dict() for h in hosts if h.id in outcomes],
    }
