"""One host's containers: inspect, actions, and the live streams (logs, stats, exec)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from dockmesh.link import LinkClosed, RemoteError, Stream
from dockmesh.link.packets import Kind, PacketStream, decode_json
from dockmesh.server.api.auth import check_origin, current_user
from dockmesh.server.context import ServerContext, ctx
from dockmesh.server.errors import ApiError
from dockmesh.server.query import bounded_int
from dockmesh.server.routes import RouteTable
from dockmesh.server.services import containers
from dockmesh.store.users import UserRecord

log = logging.getLogger(__name__)
routes = RouteTable("containers")

BASE = "/api/v1/hosts/{host}/containers/{container}"
MAX_TAIL = 1_000_000  # lines; more is a download, not a view, and the engine would read it all first


def _target(request: web.Request) -> tuple[ServerContext, UserRecord, str, str]:
    """What every route here addresses: the context, the caller, the host and the container."""
    return ctx(request), current_user(request), request.match_info["host"], request.match_info["container"]


@routes.route("GET", BASE, summary="Inspect one container (the engine's full object)")
async def inspect(request: web.Request) -> web.Response:
    return web.json_response(await containers.inspect(*_target(request)))


def _action_handler(action: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        await containers.action(*_target(request), action)
        return web.json_response({"ok": True, "action": action})

    handler.__name__ = f"container_{action}"
    return handler


for _action_name in ("start", "stop", "restart", "kill"):
    routes.route("POST", f"{BASE}/{_action_name}", summary=f"{_action_name.capitalize()} a container")(
        _action_handler(_action_name)
    )
routes.route("DELETE", BASE, summary="Remove a container (forced, with its anonymous volumes)")(
    _action_handler("remove")
)


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


@routes.route(
    "GET",
    f"{BASE}/logs",
    summary="The container's logs as streamed text (follow survives restarts)",
    query=("follow", "tail", "timestamps"),
)
async def logs(request: web.Request) -> web.StreamResponse:
    follow = _flag(request, "follow")
    tail = bounded_int(request.query.get("tail"), "tail", 0, MAX_TAIL)
    timestamps = _flag(request, "timestamps")
    _host_name, stream, first = await containers.open_logs(
        *_target(request), follow=follow, tail=tail, timestamps=timestamps
    )
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/plain; charset=utf-8",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    try:
        chunk: bytes | None = first
        while chunk is not None:
            if chunk:
                await response.write(chunk)
            chunk = await stream.read()
    except RemoteError as exc:
        await response.write(f"\n[dockmesh] log stream ended: {exc.message}\n".encode())
    finally:
        # The viewer left (or the stream ended): tell the host to stop reading the engine.
        stream.cancel()
    await response.write_eof()
    return response


# Terminal input: one WebSocket message may be this large (a big paste); larger ones close the
# socket with 1009 and a reason. Each message is relayed in packets of EXEC_INPUT_CHUNK, well
# under the link's packet limit (1 MiB), so a paste of any allowed size reaches the process.
EXEC_MAX_MESSAGE = 4 << 20
EXEC_INPUT_CHUNK = 64 * 1024


class StreamSocket(web.WebSocketResponse):
    """aiohttp closes an oversized message with a bare 1009; this one says why, so the user knows."""

    def __init__(self, *, max_msg_size: int = EXEC_MAX_MESSAGE, **kwargs: Any) -> None:
        super().__init__(max_msg_size=max_msg_size, **kwargs)
        self.max_message = max_msg_size

    async def close(self, *, code: int = 1000, message: bytes = b"", drain: bool = True) -> bool:
        if code == WSCloseCode.MESSAGE_TOO_BIG and not message:
            limit = self.max_message
            size = f"{limit >> 20} MiB" if limit >= 1 << 20 else f"{limit} bytes"
            message = f"message over {size}; send it in smaller pieces".encode()
        return await super().close(code=code, message=message, drain=drain)


def _close_reason(text: str) -> bytes:
    """A WebSocket close reason: at most 123 bytes of valid UTF-8."""
    return text.encode()[:123].decode(errors="ignore").encode()


async def _pump_closes(ws: web.WebSocketResponse, on_message: Any) -> None:
    async for msg in ws:
        if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
            await on_message(msg)


async def relay(
    ws: web.WebSocketResponse,
    stream: Stream,
    packets: PacketStream,
    host_name: str,
    on_client: Callable[[Any], Awaitable[None]],
    on_packet: Callable[[Kind, bytes], Awaitable[None]],
) -> None:
    """Relay host packets to the WebSocket until either side ends; the host's work is cancelled on exit.

    Once the 101 has gone out no exception may leave here: aiohttp would log it and try to send a
    500 on an upgraded connection. A failure closes the WebSocket with 1011 and a short reason.
    """
    reader = asyncio.create_task(_pump_closes(ws, on_client))
    code, reason = WSCloseCode.OK, ""
    try:
        while True:
            packet_task = asyncio.ensure_future(packets.recv())
            await asyncio.wait({packet_task, reader}, return_when=asyncio.FIRST_COMPLETED)
            if not packet_task.done():
                packet_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await packet_task
                reader.result()  # an input failure is raised here; a client that left is not
                break  # the client went away: cancelling the stream stops the work on the host
            packet = packet_task.result()
            if packet is None:
                break
            await on_packet(*packet)
    except RemoteError as exc:
        message = f"{host_name}: {exc.message}"
        code, reason = WSCloseCode.INTERNAL_ERROR, message
        with contextlib.suppress(Exception):
            await ws.send_json({"type": "error", "code": exc.code, "message": message})
    except LinkClosed:
        code, reason = WSCloseCode.INTERNAL_ERROR, f"the link to host {host_name} closed"
    except ConnectionError:
        pass  # the client's connection is gone: there is nobody to tell
    except Exception as exc:
        log.exception("relay of a %s stream from %s failed", stream.kind, host_name)
        code, reason = WSCloseCode.INTERNAL_ERROR, f"internal error ({type(exc).__name__}); see the log"
    finally:
        stream.cancel()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
        with contextlib.suppress(Exception):
            await ws.close(code=code, message=_close_reason(reason))


@routes.route(
    "GET",
    f"{BASE}/stats",
    summary="Live container stats (WebSocket, one JSON message per sample)",
    websocket=True,
)
async def stats(request: web.Request) -> web.StreamResponse:
    check_origin(request)
    host_name, stream = await containers.open_stats(*_target(request))
    ws = StreamSocket(heartbeat=30.0)
    await ws.prepare(request)
    packets = PacketStream(stream)

    async def ignore(_msg: Any) -> None:
        return None

    async def forward(kind: Kind, payload: bytes) -> None:
        await ws.send_str(payload.decode())

    await relay(ws, stream, packets, host_name, ignore, forward)
    return ws


@routes.route(
    "GET",
    f"{BASE}/exec",
    summary="Interactive exec (WebSocket): binary = terminal bytes; text = JSON resize/eof; ends with exit",
    query=("cmd", "tty", "cols", "rows"),
    websocket=True,
)
async def exec_(request: web.Request) -> web.StreamResponse:
    check_origin(request)
    current_user(request)  # before any work: 401 for a missing login, not a later failure
    cmd = request.query.getall("cmd", ["sh"])
    if not cmd or any(not part or len(part) > 4096 for part in cmd):
        raise ApiError(400, "invalid_cmd", "'cmd' parts must be non-empty strings")
    params: dict[str, Any] = {
        "cmd": cmd,
        "tty": request.query.get("tty", "1") not in ("0", "false", "no"),
    }
    for key in ("cols", "rows"):
        size = bounded_int(request.query.get(key), key, 1, 999)
        if size is not None:
            params[key] = size
    host_name, stream = await containers.open_exec(*_target(request), params)
    ws = StreamSocket(heartbeat=30.0, max_msg_size=EXEC_MAX_MESSAGE)
    await ws.prepare(request)
    packets = PacketStream(stream)

    async def to_host(msg: Any) -> None:
        if msg.type == WSMsgType.BINARY:
            data = memoryview(msg.data)
            for start in range(0, len(data), EXEC_INPUT_CHUNK):
                await packets.send(Kind.DATA, bytes(data[start : start + EXEC_INPUT_CHUNK]))
            return
        try:
            control = json.loads(msg.data)
        except ValueError:
            return
        if isinstance(control, dict) and control.get("type") in ("resize", "eof"):
            await packets.send_json(control)

    async def forward(kind: Kind, payload: bytes) -> None:
        if kind is Kind.DATA:
            await ws.send_bytes(payload)
        else:
            await ws.send_json(decode_json(payload))

    await relay(ws, stream, packets, host_name, to_host, forward)
    return ws
