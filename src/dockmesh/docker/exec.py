"""Interactive exec sessions (``docker exec -i [-t]``) over the engine's hijacked connection."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from types import TracebackType
from typing import Any

import aiodocker
from aiodocker.execs import Exec
from aiodocker.stream import Stream

from dockmesh.docker._api import object_ref
from dockmesh.docker.errors import DockerFailure, bad_request, docker_errors

__all__ = ["ExecSession"]

#: How long :meth:`ExecSession.terminate` lets the process exit on its own after stdin EOF.
TERMINATE_GRACE = 1.0
#: How long :meth:`ExecSession.exit_code` waits for the status after the output ended.
EOF_EXIT_WAIT = 1.0
_POLL = 0.05


def _str_list(value: Any, what: str) -> list[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise bad_request(f"{what} must be a list of strings")
    if not all(isinstance(v, str) for v in value):
        raise bad_request(f"{what} must be a list of strings")
    return list(value)


def _size(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise bad_request(f"invalid terminal {what} {value!r}")
    return value


def _pid_in_container(pid: int, container_id: str) -> bool:
    """True if host ``pid`` is visible here and sits in the cgroup of ``container_id``.

    Guards against signalling an unrelated process (pid reuse, or an agent that does
    not share the engine's pid namespace).
    """
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8", errors="replace") as fh:
            return bool(container_id) and container_id in fh.read()
    except OSError:
        return False


def _namespaced_pid(pid: int) -> int | None:
    """The pid of host ``pid`` inside its own pid namespace (last field of ``NSpid:``)."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("NSpid:"):
                    fields = line.split()
                    return int(fields[-1]) if len(fields) > 1 else None
    except (OSError, ValueError):
        return None
    return None


class ExecSession:
    """A process started in a running container with stdin attached.

    Create with :meth:`start`; always finish with :meth:`close` or :meth:`terminate`
    (or use ``async with``).  ``cmd`` is an argv list handed to the engine as-is.
    """

    def __init__(self, docker: aiodocker.Docker, exec_: Exec, stream: Stream, *, tty: bool) -> None:
        self._docker = docker
        self._exec = exec_
        self._stream = stream
        self.tty = tty
        self._stdin_closed = False
        self._closed = False
        self._eof = False

    @property
    def id(self) -> str:
        return str(self._exec.id)

    @classmethod
    async def start(
        cls,
        docker: aiodocker.Docker,
        ref: str,
        cmd: list[str],
        *,
        tty: bool,
        env: list[str] | None = None,
        workdir: str | None = None,
        cols: int | None = None,
        rows: int | None = None,
    ) -> ExecSession:
        """Create and start ``cmd`` in container ``ref``; the connection is open on return.

        ``env`` entries are ``NAME=value``; ``cols``/``rows`` size the TTY.
        """
        object_ref(ref)
        argv = _str_list(cmd, "cmd")
        if not argv:
            raise bad_request("cmd must not be empty")
        environment = _str_list(env, "env") if env is not None else None
        if workdir is not None and not isinstance(workdir, str):
            raise bad_request("workdir must be a string")
        size = (_size(cols, "columns"), _size(rows, "rows")) if cols is not None or rows is not None else None
        with docker_errors():
            exec_ = await docker.containers.container(ref).exec(
                argv,
                stdout=True,
                stderr=True,
                stdin=True,
                tty=bool(tty),
                environment=environment,
                workdir=workdir,
            )
            stream = exec_.start(detach=False)
            session = cls(docker, exec_, stream, tty=bool(tty))
            try:
                await stream.__aenter__()  # POST /exec/{id}/start and take over the socket
                if size is not None and tty:
                    await exec_.resize(w=size[0], h=size[1])
            except BaseException:
                await session.close()
                raise
        return session

    async def __aenter__(self) -> ExecSession:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def write(self, data: bytes) -> None:
        """Send ``data`` to the process's stdin."""
        if self._closed or self._stdin_closed:
            raise DockerFailure(409, "conflict", "stdin of this exec session is closed")
        with docker_errors():
            await self._stream.write_in(bytes(data))

    async def read_message(self) -> tuple[int, bytes] | None:
        """Next output as ``(stream, data)`` (1 stdout, 2 stderr; TTY: always 1), None at the end."""
        if self._eof or self._closed:
            return None
        with docker_errors():
            while True:
                msg = await self._stream.read_out()
                if msg is None:
                    self._eof = True
                    return None
                if msg.data:
                    return int(msg.stream), bytes(msg.data)

    async def read(self) -> bytes | None:
        """Next output bytes (TTY: raw; otherwise demultiplexed stdout+stderr), None at the end."""
        msg = await self.read_message()
        return None if msg is None else msg[1]

    async def resize(self, cols: int, rows: int) -> None:
        """Resize the session's TTY (a no-op for the engine when there is none)."""
        with docker_errors():
            await self._exec.resize(w=_size(cols, "columns"), h=_size(rows, "rows"))

    async def close_stdin(self) -> None:
        """Half-close: the process reads EOF on stdin; output can still be read.

        aiodocker has no half-close (its ``close()`` also drops the connection), so this
        shuts down the write side of the hijacked socket.
        """
        if self._stdin_closed or self._closed:
            return
        self._stdin_closed = True
        resp = self._stream._resp
        connection = resp.connection if resp is not None else None
        transport = connection.transport if connection is not None else None
        if transport is None or transport.is_closing():
            return
        with docker_errors():
            if transport.can_write_eof():
                transport.write_eof()

    async def inspect(self) -> dict[str, Any]:
        """The engine's exec inspect JSON (Running, ExitCode, Pid, ...)."""
        with docker_errors():
            data: dict[str, Any] = await self._exec.inspect()
        return data

    async def _exit_code_now(self) -> int | None:
        info = await self.inspect()
        if info.get("Running"):
            return None
        code = info.get("ExitCode")
        return int(code) if code is not None else None

    async def exit_code(self) -> int | None:
        """The process's exit status, None while it still runs.

        Once :meth:`read` has returned None the engine may report the process as running
        for a few more milliseconds; then this waits up to 1 s for the real status.
        """
        if self._eof:
            return await self.wait(EOF_EXIT_WAIT)
        return await self._exit_code_now()

    async def wait(self, timeout: float = 10.0) -> int | None:
        """Poll until the process has exited (its exit code) or ``timeout`` s passed (None)."""
        deadline = time.monotonic() + timeout
        while True:
            code = await self._exit_code_now()
            if code is not None or time.monotonic() >= deadline:
                return code
            await asyncio.sleep(_POLL)

    async def _wait_stopped(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            info = await self.inspect()
            if not info.get("Running") or time.monotonic() >= deadline:
                return info
            await asyncio.sleep(_POLL)

    async def terminate(self) -> None:
        """Make sure the process is gone, then close the connection.

        Closes stdin and waits up to 1 s; a process still running is SIGKILLed by its host
        pid, or, without permission to signal it, by ``kill -9 <pid>`` exec'd in the
        container with the pid as seen there.  Raises DockerFailure if it survives.
        """
        try:
            with contextlib.suppress(DockerFailure):
                await self.close_stdin()
            info = await self._wait_stopped(TERMINATE_GRACE)
            if info.get("Running"):
                await self._kill(info)
                info = await self._wait_stopped(5.0)
                if info.get("Running"):
                    pid = info.get("Pid")
                    raise DockerFailure(
                        502, "engine_error", f"exec {self.id[:12]} survived SIGKILL (pid {pid})"
                    )
        finally:
            await self.close()

    async def _kill(self, info: dict[str, Any]) -> None:
        host_pid = int(info.get("Pid") or 0)
        container_id = str(info.get("ContainerID") or "")
        if host_pid <= 0 or not _pid_in_container(host_pid, container_id):
            raise DockerFailure(
                502,
                "engine_error",
                f"cannot terminate exec {self.id[:12]}: its pid {host_pid} is not visible from here",
            )
        try:
            os.kill(host_pid, signal.SIGKILL)
            return
        except ProcessLookupError:
            return
        except PermissionError:
            pass
        inner_pid = _namespaced_pid(host_pid)
        if inner_pid is None:
            raise DockerFailure(
                502, "engine_error", f"cannot terminate exec {self.id[:12]}: no namespaced pid for {host_pid}"
            )
        argv = ["kill", "-9", str(inner_pid)]
        killer = await ExecSession.start(self._docker, container_id, argv, tty=False)
        try:
            while await killer.read() is not None:
                pass
        finally:
            await killer.close()

    async def close(self) -> None:
        """Drop the connection (the process itself may keep running: see :meth:`terminate`)."""
        if self._closed:
            return
        self._closed = True
        stream = self._stream
        resp = stream._resp
        with contextlib.suppress(OSError, RuntimeError, aiodocker.DockerError):
            if resp is not None and resp.connection is None:
                # aiodocker's close() asserts a live connection; the engine already dropped it.
                stream._closed = True
                resp.close()
            else:
                await stream.close()
