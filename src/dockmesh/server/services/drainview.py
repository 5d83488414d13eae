"""The JSON a drain is shown as (API, events, pages): stacks with destinations and outcomes, the current
stacks with their phase, bytes moved, time left, and the summary."""

from __future__ import annotations

from typing import Any

from dockmesh.server.directory import HostRef
from dockmesh.server.drainplan import Plan
from dockmesh.server.services.drainrun import Live
from dockmesh.store.drains import DrainRecord, DrainStack


def _host(host_id: str | None, name: str | None) -> dict[str, str] | None:
    return {"id": host_id, "name": name or host_id} if host_id else None


def record_view(drain: DrainRecord) -> dict[str, Any]:
    """A drain without its stacks (lists)."""
    return {
        "id": drain.id,
        "source": _host(drain.source, drain.source_name),
        "destinations": drain.selector,
        "order": drain.ordering,
        "status": drain.status,
        "actor": drain.actor,
        "created_at": drain.created_at,
        "finished_at": drain.finished_at,
        "error": drain.error,
    }


def plan_view(source: HostRef, selector: str, planned: Plan) -> dict[str, Any]:
    return {
        "dry_run": True,
        "source": source.summary(),
        "destinations": selector,
        "order": planned.order,
        "candidates": [
            {
                "id": c.id,
                "name": c.name,
                "online": c.online,
                "cordoned": c.cordoned,
                "arch": c.arch,
                "memory_free": c.memory_free,
                "disk_free": c.disk_free,
            }
            for c in planned.destinations
        ],
        "stacks": [
            {
                "stack": s.stack,
                "position": s.position,
                "group": s.group,
                "destination": _host(s.destination, s.destination_name),
                "volume_bytes": s.volume_bytes,
                "memory_bytes": s.memory_bytes,
                "state": "skipped" if s.skipped else "queued",
                "code": s.skip_code,
                "message": s.skip_message,
            }
            for s in planned.steps
        ],
        "bytes_total": planned.bytes_total,
    }


def _row(row: DrainStack, live: Live | None) -> dict[str, Any]:
    migrating = row.state == "migrating"
    done = row.bytes_done
    total = row.volume_bytes
    phase = None
    if migrating and live is not None:
        phase = live.phases.get(row.stack)
        done = live.bytes_done.get(row.stack, done)
        total = live.bytes_total.get(row.stack, total) or total
    elif row.state == "done":
        done = max(done, total)
    return {
        "stack": row.stack,
        "position": row.position,
        "group": row.grp,
        "state": row.state,
        "phase": phase,
        "destination": _host(row.destination, row.destination_name),
        "code": row.code,
        "message": row.message,
        "migration_id": row.migration_id,
        "attempts": row.attempts,
        "bytes_done": done,
        "bytes_total": total,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
    }


def drain_view(drain: DrainRecord, rows: list[DrainStack], live: Live | None, now: float) -> dict[str, Any]:
    stacks = [_row(r, live) for r in rows]
    counted = [s for s in stacks if s["state"] != "skipped"]
    done = sum(s["bytes_done"] for s in counted if s["state"] in ("done", "migrating"))
    total = sum(s["bytes_total"] for s in counted if s["state"] in ("done", "migrating", "queued"))
    eta: float | None = None
    if drain.status == "running" and live is not None and live.started is not None and live.moved_here > 0:
        rate = live.moved_here / max(now - live.started, 1e-3)
        eta = round(max(0, total - done) / rate, 1)
    elif drain.status != "running":
        eta = 0.0

    def pick(state: str) -> list[dict[str, Any]]:
        return [
            {"stack": s["stack"], "destination": s["destination"], "code": s["code"], "message": s["message"]}
            for s in stacks
            if s["state"] == state
        ]

    return {
        "id": drain.id,
        "source": _host(drain.source, drain.source_name),
        "destinations": drain.selector,
        "order": drain.ordering,
        "concurrency": drain.concurrency,
        "status": drain.status,
        "actor": drain.actor,
        "created_at": drain.created_at,
        "finished_at": drain.finished_at,
        "error": drain.error,
        "current": [s["stack"] for s in stacks if s["state"] == "migrating"],
        "queue": [
            {"stack": s["stack"], "destination": s["destination"]} for s in stacks if s["state"] == "queued"
        ],
        "bytes_done": done,
        "bytes_total": total,
        "eta_s": eta,
        "stacks": stacks,
        "summary": {
            "moved": pick("done"),
            "skipped": pick("skipped"),
            "rolled_back": pick("rolled_back"),
            "failed": pick("failed"),
            "remaining": sum(1 for s in stacks if s["state"] in ("queued", "migrating")),
        },
    }
