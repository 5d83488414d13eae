"""Deploy jobs: stacks deployed on this host, independent of the stream (or link) that asked for them.

A job is keyed by the server's deploy id. Its stream only follows it: a closed stream or a dropped link
leaves the job running to its end (done, or failed and rolled back). Finished jobs go to the journal,
so a retry with the same id answers the recorded result instead of deploying twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiodocker

from dockmesh.agent.journal import Journal
from dockmesh.compose import MAX_TEXT, PROJECT_NAME, ComposeError
from dockmesh.docker.errors import DockerFailure
from dockmesh.link import LinkClosed, RemoteError, Stream
from dockmesh.link.packets import PacketStream
from dockmesh.proto.methods import Stacks

__all__ = ["DEPLOY_ID", "MAX_EVENTS", "MAX_JOBS", "Deploys"]

log = logging.getLogger(__name__)

DEPLOY_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
#: Deploys running at once on one host: each holds engine connections and pulls; more wait their turn
#: at the server, which sees "busy".
MAX_JOBS = 4
#: Progress events kept per job for followers; a follower that falls further behind skips the oldest.
MAX_EVENTS = 1024
_AUTH_FIELDS = frozenset({"username", "password", "serveraddress", "identitytoken", "registrytoken", "email"})
_MAX_REGISTRIES = 16
_MAX_FIELD = 8192

Request = Callable[[dict[str, Any]], Awaitable[Any]]


class Job:
    def __init__(self, deploy_id: str, project: str) -> None:
        self.deploy_id = deploy_id
        self.project = project
        self.events: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        self.emitted = 0  # events ever emitted: a follower's cursor counts these
        self.result: dict[str, Any] | None = None
        self.task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    def emit(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self.emitted += 1
        self._changed.set()

    def finish(self, result: dict[str, Any]) -> None:
        self.result = result
        self._changed.set()

    async def follow(self, packets: PacketStream) -> None:
        """Send the buffered events, then new ones as they come, then the result; returns at the end."""
        sent = self.emitted - len(self.events)
        while True:
            first = self.emitted - len(self.events)
            start = max(sent, first)  # a slow follower skips what the bounded buffer dropped
            batch = list(self.events)[start - first :]
            for event in batch:
                await packets.send_json(event)
            sent = start + len(batch)
            if sent < self.emitted:
                continue
            if self.result is not None:
                await packets.send_json(self.result)
                return
            self._changed.clear()
            await self._changed.wait()


def _text(params: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = params.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise RemoteError("bad_request", f"'{name}' must be a{' non-empty' if required else ''} string")
    if len(value.encode()) > MAX_TEXT:
        raise RemoteError("too_large", f"'{name}' is larger than {MAX_TEXT} bytes")
    return value


def _pattern(params: dict[str, Any], name: str, pattern: re.Pattern[str]) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise RemoteError("bad_request", f"'{name}' must match {pattern.pattern}")
    return value


def _auth(value: Any) -> dict[str, dict[str, str]] | None:
    """Registry credentials by registry host; kept in memory for one job only."""
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > _MAX_REGISTRIES:
        raise RemoteError(
            "bad_request", f"'auth' must map at most {_MAX_REGISTRIES} registries to credentials"
        )
    for host, creds in value.items():
        if (
            not isinstance(host, str)
            or not 0 < len(host) <= 255
            or not isinstance(creds, dict)
            or not set(creds) <= _AUTH_FIELDS
            or not all(isinstance(v, str) and len(v) <= _MAX_FIELD for v in creds.values())
        ):
            # Never echo the value: it holds a password.
            raise RemoteError(
                "bad_request", "'auth' entries must be {username, password, serveraddress} strings"
            )
    return value


class Deploys:
    """The stacks.* link methods over one engine; ``journal_path`` None keeps the journal in memory."""

    def __init__(self, docker: aiodocker.Docker, journal_path: Path | None) -> None:
        self._docker = docker
        self._journal = Journal(journal_path)
        self._jobs: dict[str, Job] = {}

    def requests(self) -> dict[str, Request]:
        return {
            Stacks.DEPLOY_STATUS: self._status,
            Stacks.CANCEL: self._cancel,
            Stacks.DOWN: self._down,
            Stacks.STOP: self._stop,
            Stacks.START: self._start,
            Stacks.SERVICES: self._services,
        }

    def streams(self) -> dict[str, Callable[[Stream], Awaitable[None]]]:
        return {Stacks.DEPLOY: self._deploy}

    async def close(self) -> None:
        """Cancel running jobs (each rolls back) and wait for them: the host is shutting down."""
        tasks = [job.task for job in self._jobs.values() if job.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- stacks.deploy ------------------------------------------------------------------------
    async def _deploy(self, stream: Stream) -> None:
        params = stream.params
        deploy_id = _pattern(params, "deploy_id", DEPLOY_ID)
        packets = PacketStream(stream)
        job = self._jobs.get(deploy_id)
        if job is None:
            recorded = self._journal.get(deploy_id)
            if recorded is not None:
                await packets.send_json(recorded)
                return
            job = self._start_job(deploy_id, params)
        with contextlib.suppress(LinkClosed):  # the follower went away; the job goes on
            await job.follow(packets)

    def _start_job(self, deploy_id: str, params: dict[str, Any]) -> Job:
        project_name = _pattern(params, "project", PROJECT_NAME)
        compose_text = _text(params, "compose")
        env_text = _text(params, "env", required=False)
        allow = params.get("allow_privileged", False)
        if not isinstance(allow, bool):
            raise RemoteError("bad_request", "'allow_privileged' must be a boolean")
        auth = _auth(params.get("auth"))
        if any(j.project == project_name for j in self._jobs.values()):
            raise RemoteError(
                "conflict", f"a deploy of stack {project_name!r} is already running on this host"
            )
        if len(self._jobs) >= MAX_JOBS:
            raise RemoteError("busy", f"this host already runs {MAX_JOBS} deploys: try again when one ends")
        # Imported by the first deploy, not at start: the compose code with YAML, the JSON schema and .env
        # parsing is memory an idle agent does not need (docs/artifact.md "Footprint").
        from dockmesh.compose.policy import check_policy
        from dockmesh.compose.project import load_project

        try:
            project = load_project(project_name, compose_text or "", env_text)
            check_policy(project, allow_privileged=allow)
        except ComposeError as exc:
            raise RemoteError(exc.code, str(exc)) from None
        job = Job(deploy_id, project_name)
        self._jobs[deploy_id] = job
        self._journal.record(
            {"type": "result", "deploy_id": deploy_id, "state": "running", "error": None, "services": []}
        )
        job.task = asyncio.create_task(self._run(job, project, auth), name=f"deploy {deploy_id}")
        job.task.add_done_callback(lambda _task: self._never_ran(job))
        return job

    def _never_ran(self, job: Job) -> None:
        """A task cancelled before its first step never enters _run's finally: settle it here."""
        if job.result is None:
            result = self._result(
                job, "cancelled", {"code": "cancelled", "message": "the deploy was cancelled"}, []
            )
            self._settle(job, result)

    @staticmethod
    def _result(job: Job, state: str, error: dict[str, str] | None, rows: list[Any]) -> dict[str, Any]:
        return {
            "type": "result",
            "deploy_id": job.deploy_id,
            "state": state,
            "error": error,
            "services": rows,
        }

    def _settle(self, job: Job, result: dict[str, Any]) -> None:
        try:
            self._journal.record(result)
        except OSError as exc:
            log.error("deploy journal not written: %s", exc)
        self._jobs.pop(job.deploy_id, None)
        job.finish(result)

    async def _run(self, job: Job, project: Any, auth: dict[str, dict[str, str]] | None) -> None:
        from dockmesh.docker import compose  # lazily: see _start_job

        state, error, rows = "failed", None, []
        try:
            job.emit(compose.progress("", "validate", "done"))
            rows = await compose.deploy(self._docker, project, emit=job.emit, auth=auth)
            state = "done"
        except asyncio.CancelledError:
            state, error = "cancelled", {"code": "cancelled", "message": "the deploy was cancelled"}
        except DockerFailure as exc:
            error = {"code": exc.code, "message": exc.message}
        except Exception as exc:  # a bug must still end the job with a result, not leave it "running"
            log.exception("deploy %s failed", job.deploy_id)
            error = {"code": "internal", "message": f"deploy failed: {type(exc).__name__}"}
        finally:
            del auth  # the credentials die with the job
            if state != "done":
                with contextlib.suppress(DockerFailure):
                    rows = await compose.services(self._docker, project.name)
            result = {
                "type": "result",
                "deploy_id": job.deploy_id,
                "state": state,
                "error": error,
                "services": rows,
            }
            try:
                self._journal.record(result)
            except OSError as exc:
                log.error("deploy journal not written: %s", exc)
            self._jobs.pop(job.deploy_id, None)
            job.finish(result)

    # --- requests -----------------------------------------------------------------------------
    async def _status(self, params: dict[str, Any]) -> Any:
        deploy_id = _pattern(params, "deploy_id", DEPLOY_ID)
        if deploy_id in self._jobs:
            return {"state": "running", "result": None}
        recorded = self._journal.get(deploy_id)
        if recorded is None:
            return {"state": "unknown", "result": None}
        return {"state": recorded["state"], "result": recorded if recorded["state"] != "running" else None}

    async def _cancel(self, params: dict[str, Any]) -> Any:
        deploy_id = _pattern(params, "deploy_id", DEPLOY_ID)
        job = self._jobs.get(deploy_id)
        if job is not None and job.task is not None:
            job.task.cancel()
        elif self._journal.get(deploy_id) is None:
            raise RemoteError("not_found", f"no deploy {deploy_id!r} on this host")
        return {"ok": True}

    def _idle_project(self, params: dict[str, Any]) -> str:
        name = _pattern(params, "project", PROJECT_NAME)
        if any(j.project == name for j in self._jobs.values()):
            raise RemoteError("conflict", f"a deploy of stack {name!r} is running: wait for it or cancel it")
        return name

    async def _down(self, params: dict[str, Any]) -> Any:
        from dockmesh.docker import compose  # lazily: see _start_job

        volumes = params.get("volumes", False)
        if not isinstance(volumes, bool):
            raise RemoteError("bad_request", "'volumes' must be a boolean")
        await compose.down(self._docker, self._idle_project(params), volumes=volumes)
        return {"ok": True}

    async def _stop(self, params: dict[str, Any]) -> Any:
        from dockmesh.docker import compose  # lazily: see _start_job

        await compose.stop(self._docker, self._idle_project(params))
        return {"ok": True}

    async def _start(self, params: dict[str, Any]) -> Any:
        from dockmesh.docker import compose  # lazily: see _start_job

        await compose.start(self._docker, self._idle_project(params))
        return {"ok": True}

    async def _services(self, params: dict[str, Any]) -> Any:
        from dockmesh.docker import compose  # lazily: see _start_job

        return {"services": await compose.services(self._docker, _pattern(params, "project", PROJECT_NAME))}
