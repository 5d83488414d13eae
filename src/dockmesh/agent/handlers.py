"""What the server can ask of a host: requests and streams, answered from the local Docker engine.

The same handlers serve remote agents and the server's own engine (over an in-process link).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiodocker

from dockmesh.agent.batching import coalesce
from dockmesh.agent.deploys import Deploys
from dockmesh.agent.objects import ObjectHandlers
from dockmesh.agent.transfer import TransferHandlers
from dockmesh.docker import containers, images, networks, stacks, volumes
from dockmesh.docker.engine import EngineUnavailable, engine_info
from dockmesh.docker.errors import DockerFailure
from dockmesh.docker.exec import ExecSession
from dockmesh.docker.logs import follow_logs, stream_logs
from dockmesh.docker.stats import stream_stats
from dockmesh.link import RemoteError, Stream
from dockmesh.link.packets import Kind, PacketStream, decode_json
from dockmesh.proto import ErrorBody

log = logging.getLogger(__name__)

Request = Callable[[dict[str, Any]], Awaitable[Any]]
ACTIONS = ("start", "stop", "restart", "kill", "remove")


def _str(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise RemoteError("bad_request", f"'{name}' must be a non-empty string")
    return value


def _int(params: dict[str, Any], name: str, default: int | None = None) -> int | None:
    value = params.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RemoteError("bad_request", f"'{name}' must be an integer")
    return value


class Handlers:
    """Maps request methods and stream kinds to the docker adapter; Docker errors become RemoteErrors."""

    def __init__(self, docker: aiodocker.Docker, *, journal: Path | None = None) -> None:
        """``journal``: where finished deploy jobs are recorded (None: in memory, e.g. in tests)."""
        self._docker = docker
        self._deploys = Deploys(docker, journal)
        self._requests: dict[str, Request] = {
            "ping": self._ping,
            "engine.info": self._engine_info,
            "containers.list": self._containers_list,
            "containers.inspect": self._containers_inspect,
            "containers.action": self._containers_action,
            "images.list": self._images_list,
            "volumes.list": self._volumes_list,
            "networks.list": self._networks_list,
            "stacks.list": self._stacks_list,
        }
        self._streams: dict[str, Callable[[Stream], Awaitable[None]]] = {
            "logs": self._logs,
            "stats": self._stats,
            "exec": self._exec,
        }
        self._requests.update(self._deploys.requests())
        self._streams.update(self._deploys.streams())
        objects = ObjectHandlers(docker)
        self._requests.update(objects.requests)
        self._streams.update(objects.streams)
        transfer = TransferHandlers(docker)
        self._requests.update(transfer.requests)
        self._streams.update(transfer.streams)

    async def close(self) -> None:
        """Running deploys are cancelled (and rolled back): the host is going away."""
        await self._deploys.close()

    async def handle(self, method: str, params: dict[str, Any]) -> Any:
        handler = self._requests.get(method)
        if handler is None:
            raise RemoteError("unknown_method", f"this agent has no method {method!r}")
        try:
            return await handler(params)
        except DockerFailure as exc:
            raise RemoteError(exc.code, exc.message) from None

    async def stream(self, stream: Stream) -> None:
        handler = self._streams.get(stream.kind)
        if handler is None:
            raise RemoteError("unknown_stream", f"this agent has no stream {stream.kind!r}")
        try:
            await handler(stream)
        except DockerFailure as exc:
            raise RemoteError(exc.code, exc.message) from None

    # --- requests ------------------------------------------------------------------------------
    async def _ping(self, params: dict[str, Any]) -> Any:
        return {"pong": True}

    async def _engine_info(self, params: dict[str, Any]) -> Any:
        try:
            info = await engine_info(self._docker)
        except EngineUnavailable as exc:
            raise RemoteError("engine_unavailable", str(exc)) from None
        return {
            "version": info.version,
            "api_version": info.api_version,
            "containers_running": info.containers_running,
            "containers_total": info.containers_total,
        }

    async def _containers_list(self, params: dict[str, Any]) -> Any:
        return await containers.list_containers(self._docker, all=bool(params.get("all", True)))

    async def _containers_inspect(self, params: dict[str, Any]) -> Any:
        return await containers.inspect_container(self._docker, _str(params, "id"))

    async def _containers_action(self, params: dict[str, Any]) -> Any:
        action = _str(params, "action")
        if action not in ACTIONS:
            raise RemoteError("bad_request", f"unknown action {action!r}")
        await containers.container_action(
            self._docker, _str(params, "id"), action, timeout=_int(params, "timeout")
        )
        return {"ok": True}

    async def _images_list(self, params: dict[str, Any]) -> Any:
        return await images.list_images(self._docker)

    async def _volumes_list(self, params: dict[str, Any]) -> Any:
        return await volumes.list_volumes(self._docker)

    async def _networks_list(self, params: dict[str, Any]) -> Any:
        return await networks.list_networks(self._docker)

    async def _stacks_list(self, params: dict[str, Any]) -> Any:
        return await stacks.list_stacks(self._docker)

    # --- streams -------------------------------------------------------------------------------
    async def _logs(self, stream: Stream) -> None:
        p = stream.params
        ref = _str(p, "id")
        tail = _int(p, "tail")
        timestamps = bool(p.get("timestamps", False))
        source: AsyncIterator[bytes]
        if p.get("follow"):
            source = follow_logs(self._docker, ref, tail=tail, timestamps=timestamps)
        else:
            since = p.get("since")
            source = stream_logs(
                self._docker,
                ref,
                follow=False,
                tail=tail,
                since=float(since) if isinstance(since, (int, float)) else None,
                timestamps=timestamps,
            )
        # Back-pressure: write() waits for the reader's credit, so a slow viewer slows the engine read.
        async for chunk in coalesce(source):
            await stream.write(chunk)

    async def _stats(self, stream: Stream) -> None:
        packets = PacketStream(stream)
        async for sample in stream_stats(self._docker, _str(stream.params, "id")):
            await packets.send_json(sample)

    async def _exec(self, stream: Stream) -> None:
        p = stream.params
        cmd = p.get("cmd")
        if not isinstance(cmd, list) or not cmd or not all(isinstance(a, str) for a in cmd):
            raise RemoteError("bad_request", "'cmd' must be a non-empty list of strings")
        session = await ExecSession.start(
            self._docker,
            _str(p, "id"),
            cmd,
            tty=bool(p.get("tty", True)),
            cols=_int(p, "cols"),
            rows=_int(p, "rows"),
        )
        packets = PacketStream(stream)
        pump = asyncio.create_task(self._exec_input(packets, session))
        handler = asyncio.current_task()

        def input_failed(task: asyncio.Task[None]) -> None:
            # A dead input pump used to leave the terminal running without stdin, silently.
            if task.cancelled() or task.exception() is None:
                return
            log.warning("exec input in %r failed: %s", p.get("id"), task.exception())
            stream.close(ErrorBody("bad_input", f"terminal input failed: {task.exception()}"))
            if handler is not None:
                handler.cancel()  # the finally below terminates the process

        pump.add_done_callback(input_failed)
        try:
            while True:
                data = await session.read()
                if data is None:
                    break
                await packets.send(Kind.DATA, data)
            code = await session.exit_code()
            await packets.send_json({"type": "exit", "code": code})
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
            # Whatever ended the stream (exit, client gone, cancel), the process must not outlive it.
            try:
                await asyncio.shield(session.terminate())
            except DockerFailure as exc:
                log.warning("exec in %s may still be running: %s", p.get("id"), exc.message)

    async def _exec_input(self, packets: PacketStream, session: ExecSession) -> None:
        while True:
            packet = await packets.recv()
            if packet is None:
                await session.close_stdin()
                return
            kind, payload = packet
            if kind is Kind.DATA:
                await session.write(payload)
                continue
            message = decode_json(payload)
            if message.get("type") == "resize":
                cols, rows = message.get("cols"), message.get("rows")
                if isinstance(cols, int) and isinstance(rows, int) and 0 < cols < 1000 and 0 < rows < 1000:
                    await session.resize(cols, rows)
            elif message.get("type") == "eof":
                await session.close_stdin()
