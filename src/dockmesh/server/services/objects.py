"""Volumes, networks and images on one host or over a host selection, behind the API routes.

Every function takes the caller (for the audit row, and for its scope: `reach` and `select_hosts`
are the one place that check goes) and raises `ApiError` (status, code, message), which
the API renders as JSON. The pages' forms call those routes from the browser (as the container
actions do), so there is one path to the hosts.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from dockmesh.link import Link, LinkClosed, RemoteError, RequestTimeout
from dockmesh.proto.methods import Objects
from dockmesh.server.context import ServerContext
from dockmesh.server.directory import HostRef
from dockmesh.server.errors import ApiError, from_remote
from dockmesh.server.fanout import HostOutcome
from dockmesh.server.services import access
from dockmesh.store.users import UserRecord

ACTION_TIMEOUT = 60.0
# A prune asks the engine for disk usage (it walks volume data) and removes objects one by one.
PRUNE_TIMEOUT = 300.0
PRUNE_KINDS = {"images": Objects.IMAGES_PRUNE, "volumes": Objects.VOLUMES_PRUNE}


async def reach(
    c: ServerContext, user: UserRecord, host_id: str, permission: str = access.CONTAINERS_MANAGE
) -> tuple[HostRef, Link]:
    """The one host a host-addressed call names, if this caller may act on it (404 out of scope, 403
    without the permission); every function here changes objects, hence `containers.manage`."""
    return await c.directory.require(host_id, user, permission)


async def select_hosts(
    c: ServerContext, user: UserRecord, selector: str, permission: str = access.CONTAINERS_MANAGE
) -> list[HostRef]:
    """The selected hosts on which the caller may act; the others are left out, not errors."""
    return await c.directory.select(selector, user, permission)


def remote_error(exc: RemoteError, host: HostRef) -> ApiError:
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
    host, link = await reach(c, user, host_id)
    try:
        return host, await link.request(method, params, timeout=ACTION_TIMEOUT)
    except RemoteError as exc:
        raise remote_error(exc, host) from None
    except RequestTimeout:
        raise ApiError(
            504, "host_timeout", f"host {host.name!r} did not answer within {ACTION_TIMEOUT:g}s"
        ) from None
    except LinkClosed:
        raise ApiError(503, "host_offline", f"host {host.name!r} went offline during the request") from None


async def audit(
    c: ServerContext,
    user: UserRecord,
    action: str,
    target: str,
    detail: dict[str, Any] | None = None,
    *,
    host: str | None = None,
) -> None:
    await c.audit.add(c.clock(), user.username, action, target, detail, host=host)


async def create_volume(
    c: ServerContext, user: UserRecord, host_id: str, name: str, driver: str = "local"
) -> dict[str, Any]:
    host, row = await _ask(c, user, host_id, Objects.VOLUMES_CREATE, {"name": name, "driver": driver})
    await audit(c, user, "volume.create", f"{host.id}/{name}", {"driver": driver}, host=host.id)
    return {**row, "host": host.summary()} if isinstance(row, dict) else {"name": name}


async def remove_volume(c: ServerContext, user: UserRecord, host_id: str, name: str) -> None:
    host, _ = await _ask(c, user, host_id, Objects.VOLUMES_REMOVE, {"name": name})
    await audit(c, user, "volume.remove", f"{host.id}/{name}", host=host.id)


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
    await audit(
        c, user, "network.create", f"{host.id}/{name}", {"driver": driver, "internal": internal}, host=host.id
    )
    return {**row, "host": host.summary()} if isinstance(row, dict) else {"name": name}


async def remove_network(c: ServerContext, user: UserRecord, host_id: str, ref: str) -> None:
    host, _ = await _ask(c, user, host_id, Objects.NETWORKS_REMOVE, {"id": ref})
    await audit(c, user, "network.remove", f"{host.id}/{ref}", host=host.id)


async def remove_image(
    c: ServerContext, user: UserRecord, host_id: str, ref: str, force: bool = False
) -> None:
    host, _ = await _ask(c, user, host_id, Objects.IMAGES_REMOVE, {"id": ref, "force": force})
    await audit(c, user, "image.remove", f"{host.id}/{ref}", {"force": force}, host=host.id)


# --- prune -------------------------------------------------------------------------------------


# A host's prune answer is shown whole: a hostile or broken host must not make it unbounded.
MAX_ROWS = 10_000


def _rows(value: Any) -> list[dict[str, Any]]:
    return [r for r in value[:MAX_ROWS] if isinstance(r, dict)] if isinstance(value, list) else []


def byte_count(value: Any) -> int:
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
    hosts = await select_hosts(c, user, selector)
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
            "reclaimed": byte_count(answer.get("reclaimed")),
            "failed": _rows(answer.get("failed")),
        }
        return outcome("ok", None), result

    done = await asyncio.gather(*(one(h) for h in hosts))
    results = [r for _o, r in done if r is not None]
    if not dry_run:
        for r in results:
            await audit(
                c,
                user,
                f"{kind[:-1]}.prune",
                r["host"]["id"],
                {"removed": len(r["items"]), "failed": len(r["failed"]), "reclaimed": r["reclaimed"]},
                host=r["host"]["id"],
            )
    return {
        "dry_run": dry_run,
        **({"mode": mode} if kind == "images" else {}),
        "results": results,
        "reclaimed": sum(r["reclaimed"] for r in results),
        "hosts": [o.to_dict() for o, _r in done],
    }
