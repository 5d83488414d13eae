"""Apply a compose Project to one engine: deploy (idempotent, rolled back on failure), down, stop, start.

Objects get compose v2 names and labels (docker/compose_config.py), so `docker compose ls/ps` and
`docker ps --filter label=com.docker.compose.project=<name>` see what we made.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any, cast

import aiodocker

from dockmesh.compose import Project, Service
from dockmesh.docker._api import delete, image_ref, iter_json_lines, object_ref, open_stream, short_id
from dockmesh.docker.compose_config import (
    LABEL,
    container_body,
    container_name,
    endpoint,
    network_body,
    volume_body,
)
from dockmesh.docker.errors import DockerFailure, docker_errors, from_engine
from dockmesh.docker.events import engine_events
from dockmesh.docker.images import registry_auth_header, registry_host

__all__ = ["Emit", "deploy", "down", "services", "start", "stop"]

log = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], None]
Undo = Callable[[], Awaitable[None]]

# Compose's healthcheck defaults (Docker's): used to bound the wait for a service to become healthy.
_HC_INTERVAL, _HC_TIMEOUT, _HC_RETRIES = 30.0, 30.0, 3
_HEALTH_SLACK = 10.0


def _filters(project: str) -> str:
    return json.dumps({"label": [f"{LABEL.PROJECT}={project}"]})


async def _containers(docker: aiodocker.Docker, project: str) -> list[dict[str, Any]]:
    with docker_errors():
        raw = await docker._query_json("containers/json", params={"all": "1", "filters": _filters(project)})
    return list(raw or [])


def progress(service: str, phase: str, status: str, message: str = "", **extra: Any) -> dict[str, Any]:
    return {
        "type": "progress",
        "service": service,
        "phase": phase,
        "status": status,
        "current": extra.get("current"),
        "total": extra.get("total"),
        "message": message,
    }


class _Deploy:
    def __init__(
        self, docker: aiodocker.Docker, project: Project, emit: Emit, auth: Mapping[str, Any] | None
    ) -> None:
        self.docker = docker
        self.project = project
        self.emit = emit
        self.auth = auth or {}
        self.undo: list[Undo] = []  # run in reverse on failure
        self.commit: list[Undo] = []  # run on success (removing what was replaced)
        self.ids: dict[str, str] = {}  # service -> container id, as started by this deploy
        self.started_at: dict[str, float] = {}  # container id -> wall time just before its start

    async def run(self) -> None:
        try:
            existing = await _containers(self.docker, self.project.name)
            await self.networks()
            await self.volumes()
            await self.images()
            by_service: dict[str, list[dict[str, Any]]] = {}
            for c in existing:
                by_service.setdefault(c["Labels"].get(LABEL.SERVICE, ""), []).append(c)
            for service in self.project.services.values():
                await self.service(service, by_service.pop(service.name, []))
            for name, orphans in by_service.items():
                for c in orphans:
                    await self.retire(name, c, "remove")
        except BaseException:
            await self.rollback()
            raise
        for step in self.commit:
            try:
                await step()
            except DockerFailure as exc:  # the new stack runs; a leftover old container is only clutter
                log.warning("deploy of %s: cleanup failed: %s", self.project.name, exc.message)

    async def rollback(self) -> None:
        """Undo in reverse; shielded so a second cancel cannot leave the stack half rolled back."""

        async def undo_all() -> None:
            self.emit(progress("", "rollback", "started"))
            for step in reversed(self.undo):
                try:
                    await step()
                except DockerFailure as exc:
                    log.warning("rollback of %s: %s", self.project.name, exc.message)
            self.emit(progress("", "rollback", "done"))

        task = asyncio.ensure_future(undo_all())
        while not task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)

    # --- networks, volumes, images ----------------------------------------------------------------
    async def networks(self) -> None:
        for spec in self.project.networks.values():
            with docker_errors():
                found = await self.docker.networks.list(filters={"name": [spec.name]})
            if any(n.get("Name") == spec.name for n in found):
                continue
            if spec.external:
                raise DockerFailure(404, "not_found", f"external network {spec.name!r} does not exist")
            with docker_errors():
                network = await self.docker.networks.create(network_body(self.project, spec))
            self.emit(progress("", "network", "created", spec.name))
            self.undo.append(self._remover(f"networks/{network.id}"))

    async def volumes(self) -> None:
        for spec in self.project.volumes.values():
            try:
                with docker_errors():
                    await self.docker._query_json(f"volumes/{object_ref(spec.name, 'volume')}")
                continue
            except DockerFailure as exc:
                if exc.code != "not_found":
                    raise
            if spec.external:
                raise DockerFailure(404, "not_found", f"external volume {spec.name!r} does not exist")
            with docker_errors():
                await self.docker._query_json(
                    "volumes/create", method="POST", data=volume_body(self.project, spec)
                )
            self.emit(progress("", "volume", "created", spec.name))
            self.undo.append(self._remover(f"volumes/{spec.name}"))

    async def images(self) -> None:
        pulled: set[str] = set()
        for service in self.project.services.values():
            ref = image_ref(service.image)
            if ref in pulled:
                continue
            pulled.add(ref)
            try:
                with docker_errors():
                    await self.docker.images.inspect(ref)
                continue
            except DockerFailure as exc:
                if exc.code != "not_found":
                    raise
            await self.pull(service.name, ref)

    async def pull(self, service: str, ref: str) -> None:
        creds = self.auth.get(registry_host(ref))
        headers = {"X-Registry-Auth": registry_auth_header(ref, creds)} if creds else {}
        params = {"fromImage": ref}
        if ":" not in ref.rsplit("/", 1)[-1] and "@" not in ref:
            params["tag"] = "latest"
        self.emit(progress(service, "pull", "started", ref))
        try:
            await self._pull_stream(service, ref, params, headers)
        except DockerFailure as exc:
            # The engine's words, with the image they are about (a registry's answer may not name it).
            raise DockerFailure(
                exc.status, exc.code, f"pull {ref} (service {service!r}): {exc.message}"
            ) from None
        self.emit(progress(service, "pull", "done", ref))

    async def _pull_stream(
        self, service: str, ref: str, params: dict[str, str], headers: dict[str, str]
    ) -> None:
        layers: dict[str, tuple[int, int]] = {}
        last = (0, 0)
        with docker_errors():
            async with open_stream(
                self.docker, "images/create", method="POST", params=params, headers=headers
            ) as resp:
                async for msg in iter_json_lines(resp):
                    if "error" in msg or "errorDetail" in msg:
                        detail = msg.get("errorDetail")
                        text = (detail.get("message") if isinstance(detail, dict) else None) or msg.get(
                            "error"
                        )
                        raise from_engine(0, str(text or "pull failed"))
                    detail = msg.get("progressDetail") or {}
                    if msg.get("id") and isinstance(detail, dict) and detail.get("total"):
                        layers[str(msg["id"])] = (int(detail.get("current") or 0), int(detail["total"]))
                        current = sum(c for c, _ in layers.values())
                        total = sum(t for _, t in layers.values())
                        # About a hundred events per pull, not one per engine line (thousands for big images).
                        if total != last[1] or current - last[0] >= total // 100:
                            last = (current, total)
                            self.emit(
                                progress(
                                    service,
                                    "pull",
                                    str(msg.get("status", "")),
                                    ref,
                                    current=current,
                                    total=total,
                                )
                            )

    # --- containers -------------------------------------------------------------------------------
    async def service(self, service: Service, current: list[dict[str, Any]]) -> None:
        for dep, condition in service.depends_on:
            await self.wait_for(dep, condition)
        keep = [c for c in current if c["Labels"].get(LABEL.HASH) == service.config_hash]
        if keep and len(current) == 1:
            cid = keep[0]["Id"]
            self.ids[service.name] = cid
            if keep[0].get("State") != "running":
                await self.start_container(service.name, cid)
                self.undo.append(lambda: self._quiet(self.docker.containers.container(cid).stop()))
            self.emit(progress(service.name, "start", "unchanged", short_id(cid)))
            return
        for c in current:
            await self.retire(service.name, c, "recreate")
        await self.create(service)

    async def retire(self, service: str, raw: dict[str, Any], why: str) -> None:
        """Stop and rename an old container; removed at commit, restored by rollback."""
        container = self.docker.containers.container(raw["Id"])
        name = raw["Names"][0].lstrip("/")
        was_running = raw.get("State") == "running"
        renamed = False

        async def restore() -> None:
            with docker_errors():
                if renamed:
                    await container.rename(name)
                if was_running:
                    await container.start()

        self.emit(progress(service, "remove", "stopping", f"{why} {name}"))
        self.undo.append(restore)  # before the stop: a failed rename must still restart it
        with docker_errors():
            await container.stop()
            await container.rename(f"{short_id(raw['Id'])}_{name}")
        renamed = True
        self.commit.append(lambda: self._quiet(container.delete(force=True)))

    async def create(self, service: Service) -> None:
        name = container_name(self.project.name, service.name)
        body = container_body(self.project, service)
        self.emit(progress(service.name, "create", "creating", name))
        with docker_errors():
            container = await self.docker.containers.create(body, name=name)
        self.undo.append(lambda: self._quiet(container.delete(force=True, v=True)))
        for key, aliases in service.networks[1:]:
            with docker_errors():
                net = await self.docker.networks.get(self.project.networks[key].name)
                await net.connect({"Container": container.id, "EndpointConfig": endpoint(service, aliases)})
        self.ids[service.name] = container.id
        await self.start_container(service.name, container.id)

    async def start_container(self, service: str, cid: str) -> None:
        self.started_at[cid] = time.time() - 1  # events are replayed from here (whole seconds at the engine)
        with docker_errors():
            await self.docker.containers.container(cid).start()
        self.emit(progress(service, "start", "started", short_id(cid)))

    # --- waiting on dependencies --------------------------------------------------------------------
    async def wait_for(self, service: str, condition: str) -> None:
        if condition == "service_started":
            return
        cid = self.ids[service]
        spec = self.project.services[service]
        if condition == "service_healthy":
            await self.wait_healthy(spec, cid)
        else:
            await self.wait_exited(spec, cid)

    async def wait_healthy(self, spec: Service, cid: str) -> None:
        """Wait for the engine's health verdict, on its event stream, within what the healthcheck allows."""
        hc = spec.healthcheck

        def seconds(ns: int | None, default: float) -> float:
            return ns / 1e9 if ns else default

        interval = seconds(hc.interval_ns if hc else None, _HC_INTERVAL)
        timeout = seconds(hc.timeout_ns if hc else None, _HC_TIMEOUT)
        retries = hc.retries if hc and hc.retries is not None else _HC_RETRIES
        start = seconds(hc.start_period_ns if hc else None, 0.0)
        # The engine says unhealthy after `retries` failures past the start period: allow that, and a little.
        budget = start + (interval + timeout) * (retries + 1) + _HEALTH_SLACK
        state = await self._state(cid)
        if (state.get("Health") or {}).get("Status") == "healthy":
            return
        if state.get("Health") is None:
            raise DockerFailure(409, "unhealthy", f"service {spec.name!r} has no healthcheck to wait for")
        self.emit(progress(spec.name, "health", "waiting"))
        # Replaying from before the start means a verdict given between the inspect and the subscription
        # is not missed (the agent and its engine share a clock).
        since = self.started_at.get(cid, time.time() - 1)
        try:
            # wait_for, not asyncio.timeout: the agent runs on Python 3.9.
            if await asyncio.wait_for(self._health_verdict(spec, cid, since), budget):
                return
        except asyncio.TimeoutError:
            pass
        raise DockerFailure(409, "unhealthy", f"service {spec.name!r} did not become healthy")

    async def _health_verdict(self, spec: Service, cid: str, since: float) -> bool:
        """True once the engine says healthy, False when it says unhealthy (or the events end)."""
        events = cast(
            AsyncGenerator[dict[str, Any], None],  # an async generator, annotated as an iterator
            engine_events(self.docker, {"type": "container", "container": [cid]}, since=since),
        )
        try:
            async for event in events:
                action = str(event.get("Action") or event.get("status") or "")
                if action == "health_status: healthy":
                    self.emit(progress(spec.name, "health", "healthy"))
                    return True
                if action == "health_status: unhealthy":
                    return False
                if action in ("die", "destroy"):
                    state = await self._state(cid)
                    raise DockerFailure(
                        409,
                        "unhealthy",
                        f"service {spec.name!r} exited (code {state.get('ExitCode')}) before healthy",
                    )
        finally:
            await events.aclose()  # contextlib.aclosing is 3.10+
        return False

    async def wait_exited(self, spec: Service, cid: str) -> None:
        self.emit(progress(spec.name, "health", "waiting for exit"))
        with docker_errors():
            result = await self.docker.containers.container(cid).wait(timeout=None)
        code = int(result.get("StatusCode", -1))
        if code != 0:
            raise DockerFailure(409, "failed", f"service {spec.name!r} exited with code {code}")
        self.emit(progress(spec.name, "health", "completed"))

    async def _state(self, cid: str) -> dict[str, Any]:
        with docker_errors():
            info = await self.docker.containers.container(cid).show()
        state = info.get("State") or {}
        return dict(state)

    @staticmethod
    async def _quiet(step: Awaitable[Any]) -> None:
        with docker_errors():
            await step

    def _remover(self, path: str) -> Undo:
        async def run() -> None:
            await self._quiet(delete(self.docker, path))

        return run


async def deploy(
    docker: aiodocker.Docker,
    project: Project,
    *,
    emit: Emit,
    auth: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Make the engine run ``project``; on failure or cancel, leave it as it was. Returns services()."""
    await _Deploy(docker, project, emit, auth).run()
    return await services(docker, project.name)


async def down(docker: aiodocker.Docker, name: str, *, volumes: bool = False) -> None:
    """Remove the project's containers and networks, and its volumes only when asked."""

    async def remove(raw: dict[str, Any]) -> None:
        container = docker.containers.container(raw["Id"])
        with docker_errors():
            await container.stop()  # its own stop signal and grace period, then removed
            await container.delete(force=True, v=True)

    # Concurrently: each stop may take its whole grace period.
    await _all([remove(raw) for raw in await _containers(docker, name)])
    with docker_errors():
        for net in await docker.networks.list(filters={"label": [f"{LABEL.PROJECT}={name}"]}):
            await (await docker.networks.get(net["Id"])).delete()
        if volumes:
            found = await docker._query_json("volumes", params={"filters": _filters(name)})
            for vol in (found or {}).get("Volumes") or []:
                await delete(docker, f"volumes/{object_ref(vol['Name'], 'volume')}")


async def stop(docker: aiodocker.Docker, name: str) -> None:
    async def stop_one(cid: str) -> None:
        with docker_errors():
            await docker.containers.container(cid).stop()

    await _all(
        [stop_one(raw["Id"]) for raw in await _containers(docker, name) if raw.get("State") == "running"]
    )


async def _all(steps: list[Awaitable[None]]) -> None:
    """Run all steps to their end; then raise the first failure, if any."""
    results = await asyncio.gather(*steps, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def start(docker: aiodocker.Docker, name: str) -> None:
    for raw in sorted(await _containers(docker, name), key=lambda c: c.get("Created", 0)):
        if raw.get("State") != "running":
            with docker_errors():
                await docker.containers.container(raw["Id"]).start()


def _health(status: str) -> str | None:
    for word in ("healthy", "unhealthy", "health: starting"):
        if f"({word})" in status:
            return word.replace("health: ", "")
    return None


async def services(docker: aiodocker.Docker, name: str) -> list[dict[str, Any]]:
    """Per service: ``name``, ``state``, ``health``, ``container_id``, ``image``, ``containers``."""
    rows: dict[str, dict[str, Any]] = {}
    for raw in sorted(await _containers(docker, name), key=lambda c: c.get("Created", 0)):
        service = raw["Labels"].get(LABEL.SERVICE, "")
        row = rows.setdefault(service, {"name": service, "containers": 0})
        row.update(
            state=raw.get("State", ""),
            health=_health(str(raw.get("Status", ""))),
            container_id=short_id(raw["Id"]),
            image=raw.get("Image", ""),
            containers=row["containers"] + 1,
        )
    return [rows[k] for k in sorted(rows)]
