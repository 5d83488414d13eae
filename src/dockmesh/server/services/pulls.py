"""Image pulls on one host or over a selection: progress lines as they come, then one result line."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from dockmesh.link import LinkClosed, RemoteError, Stream
from dockmesh.link.packets import PacketError, PacketStream, decode_json
from dockmesh.proto.methods import Objects
from dockmesh.server.context import ServerContext
from dockmesh.server.directory import HostRef
from dockmesh.server.errors import ApiError
from dockmesh.server.fanout import HostOutcome
from dockmesh.server.services.objects import audit, byte_count, reach, remote_error, select_hosts
from dockmesh.store.users import UserRecord

# The first packet of a pull: long enough for the registry's auth round trip and manifest.
PULL_FIRST = 30.0
# How many progress lines from the hosts of a selection may wait for the HTTP client.
PULL_QUEUE = 256


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
            line[key] = byte_count(value) if value is not None else None
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
            raise remote_error(exc, self.host) from None
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
                    err = remote_error(exc, self.host)
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


def pull_params(image: str, auth: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The `images.pull` params: the image and, if one matched the host, its registry credential."""
    params: dict[str, Any] = {"image": image}
    if auth:
        params["auth"] = next(iter(auth.values()))
    return params


async def start_pull(c: ServerContext, user: UserRecord, host_id: str, image: str) -> Pull:
    host, link = await reach(c, user, host_id)
    params = pull_params(image, await c.registries.for_images(host, [image]))
    try:
        stream = link.open_stream(Objects.IMAGES_PULL, params)
    except LinkClosed:
        raise ApiError(503, "host_offline", f"host {host.name!r} is offline") from None
    pull = Pull(host, stream)
    await pull.start()
    await audit(c, user, "image.pull", f"{host.id}/{image}", host=host.id)
    return pull


async def pull_many(
    c: ServerContext, user: UserRecord, selector: str, image: str
) -> AsyncGenerator[dict[str, Any], None]:
    """Pull on every selected host at once: their progress lines, then one `result` line with
    `items` (each host's image id) and `hosts` (every selected host's outcome)."""
    hosts = await select_hosts(c, user, selector)
    # Picked per host: a selection sends each host its own credential, or none.
    credentials_for = await c.registries.chooser([image])
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
            params = pull_params(image, credentials_for(host))
        except ApiError as exc:
            settle(host, "error", exc.message)
            return
        try:
            pull = Pull(host, host.link.open_stream(Objects.IMAGES_PULL, params))
        except LinkClosed:
            settle(host, "offline", f"host {host.name!r} is offline")
            return
        async with contextlib.aclosing(pull.lines()) as lines:
            async for line in lines:
                if line["type"] == "result":
                    items.append(line)
                    settle(host, "ok", None)
                    await audit(c, user, "image.pull", f"{host.id}/{image}", host=host.id)
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
