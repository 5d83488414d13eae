"""One host's containers: inspect, actions, and opening the live streams (logs, stats, exec).

Every function takes the caller and reaches the host through the directory, the one place that checks
scope (404 out of scope, 403 without the permission); host failures become `ApiError`s that name the
host. Actions and every logs, stats or exec session opened leave an audit row. The API serves these
(JSON, streamed text, WebSockets); the container page reads through `reach` and `call`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from dockmesh.link import Link, LinkClosed, RemoteError, RequestTimeout, Stream
from dockmesh.server.context import ServerContext
from dockmesh.server.directory import HostRef
from dockmesh.server.errors import ApiError, from_remote
from dockmesh.server.services import access
from dockmesh.server.services.access import Caller

INSPECT_TIMEOUT = 10.0
ACTION_TIMEOUT = 60.0
ACTIONS = ("start", "stop", "restart", "kill", "remove")
# How long a logs stream may take to show its first bytes before the response starts anyway.
FIRST_BYTES_WAIT = 2.0


async def reach(c: ServerContext, caller: Caller, host_id: str, permission: str) -> tuple[HostRef, Link]:
    """The addressed host if the caller holds `permission` there (404 out of scope, 403 without it)."""
    return await c.directory.require(host_id, caller, permission)


async def call(host: HostRef, link: Link, method: str, params: dict[str, Any], timeout: float) -> Any:
    """One request to a reached host; its error, silence or departure as an `ApiError` naming it."""
    try:
        return await link.request(method, params, timeout=timeout)
    except RemoteError as exc:
        raise from_remote(exc.code, exc.message, host.name) from None
    except RequestTimeout:
        raise ApiError(
            504, "host_timeout", f"host {host.name!r} did not answer within {timeout:g}s"
        ) from None
    except LinkClosed:
        raise ApiError(503, "host_offline", f"host {host.name!r} went offline during the request") from None


async def inspect(c: ServerContext, caller: Caller, host_id: str, container: str) -> Any:
    """The engine's full object for one container."""
    host, link = await reach(c, caller, host_id, access.CONTAINERS_VIEW)
    return await call(host, link, "containers.inspect", {"id": container}, INSPECT_TIMEOUT)


async def action(c: ServerContext, caller: Caller, host_id: str, container: str, name: str) -> None:
    """Start, stop, restart, kill or remove a container; audited whether or not the host did it."""
    if name not in ACTIONS:
        raise ApiError(400, "invalid_action", f"action must be one of {', '.join(ACTIONS)}")
    target = f"{host_id}/{container}"
    try:
        host, link = await reach(c, caller, host_id, access.CONTAINERS_MANAGE)
        await call(host, link, "containers.action", {"id": container, "action": name}, ACTION_TIMEOUT)
    except ApiError as exc:
        # Refused or failed on the host: still an attempt to change it, recorded with why.
        await c.audit.add(
            c.clock(),
            caller.username,
            f"container.{name}",
            target,
            {"error": exc.code},
            host=host_id,
            outcome="failed",
        )
        raise
    await c.audit.add(c.clock(), caller.username, f"container.{name}", target, host=host_id)


async def _open(
    c: ServerContext, caller: Caller, host_id: str, kind: str, params: dict[str, Any], permission: str
) -> tuple[str, Stream]:
    host, link = await reach(c, caller, host_id, permission)
    try:
        return host.name, link.open_stream(kind, params)
    except LinkClosed:
        raise ApiError(503, "host_offline", f"host {host.name!r} is offline") from None


async def _session(
    c: ServerContext,
    caller: Caller,
    host_id: str,
    container: str,
    kind: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """A row for each logs, stats or exec session opened: who watched or ran what, where."""
    target = f"{host_id}/{container}"
    await c.audit.add(c.clock(), caller.username, f"container.{kind}", target, detail, host=host_id)


async def open_logs(
    c: ServerContext,
    caller: Caller,
    host_id: str,
    container: str,
    *,
    follow: bool,
    tail: int | None,
    timestamps: bool,
) -> tuple[str, Stream, bytes | None]:
    """The host's name, the logs stream and its first read (b"" if none came soon, None if it ended).

    It waits briefly for the first bytes so that a missing container is a clean 404, not a broken
    stream; the session is audited only once the stream is known to be good.
    """
    params = {"id": container, "follow": follow, "tail": tail, "timestamps": timestamps}
    host_name, stream = await _open(c, caller, host_id, "logs", params, access.CONTAINERS_VIEW)
    try:
        first = await asyncio.wait_for(stream.read(), FIRST_BYTES_WAIT)
    except TimeoutError:
        first = b""
    except RemoteError as exc:
        raise from_remote(exc.code, exc.message, host_name) from None
    await _session(c, caller, host_id, container, "logs", {"follow": follow, "tail": tail})
    return host_name, stream, first


async def open_stats(c: ServerContext, caller: Caller, host_id: str, container: str) -> tuple[str, Stream]:
    """The host's name and the stats stream (one JSON sample per packet)."""
    opened = await _open(c, caller, host_id, "stats", {"id": container}, access.CONTAINERS_VIEW)
    await _session(c, caller, host_id, container, "stats")
    return opened


async def open_exec(
    c: ServerContext, caller: Caller, host_id: str, container: str, params: dict[str, Any]
) -> tuple[str, Stream]:
    """The host's name and the exec stream; `params` holds cmd, tty and optionally cols and rows."""
    cmd = params["cmd"]
    host_name, stream = await _open(
        c, caller, host_id, "exec", {"id": container, **params}, access.CONTAINERS_EXEC
    )
    # The program, not its arguments: `sh -c 'mysql -p…'` must not put a password in the log.
    detail = {"program": cmd[0][:256], "args": len(cmd) - 1, "tty": params["tty"]}
    await _session(c, caller, host_id, container, "exec", detail)
    return host_name, stream
