"""`dockmesh hosts drain HOST --to SELECTOR`: the plan (--dry-run), or the drain followed with a progress
bar (current stacks, the queue with destinations, bytes moved, time left) and its summary."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
from collections.abc import Iterator
from typing import Any, TextIO

from dockmesh.cli.client import CliError, api
from dockmesh.cli.stacks import _stream
from dockmesh.cli.table import table

ORDERS = {"smallest": "smallest", "largest": "largest", "deps": "deps"}
_WIDTH = 30


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def size(n: int | None) -> str:
    value = float(n or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _where(step: dict[str, Any]) -> str:
    dest = step.get("destination")
    return dest["name"] if dest else "-"


def plan_table(plan: dict[str, Any]) -> str:
    rows = [
        {
            "n": s["position"] + 1,
            "stack": s["stack"],
            "to": _where(s),
            "volumes": size(s.get("volume_bytes")),
            "why": s.get("message") or "",
        }
        for s in plan["stacks"]
    ]
    cols = [("n", "#"), ("stack", "STACK"), ("to", "DESTINATION"), ("volumes", "VOLUMES"), ("why", "SKIPPED")]
    moving = sum(1 for s in plan["stacks"] if s["destination"])
    head = f"drain {plan['source']['name']} → {plan['destinations']} ({plan['order']}): {moving} to move"
    return f"{head}, {len(plan['stacks']) - moving} skipped\n{table(rows, cols)}"


def views(drain_id: str) -> Iterator[dict[str, Any]]:
    with _stream(f"/api/v1/drains/{_q(drain_id)}/events") as resp:
        for line in resp:
            if line.strip():
                yield json.loads(line)


def bar_line(view: dict[str, Any]) -> str:
    """One line: the bar over all bytes, the current stacks with their phase, the queue, time left."""
    total, done = view["bytes_total"], view["bytes_done"]
    filled = int(_WIDTH * done / total) if total else (_WIDTH if view["status"] != "running" else 0)
    current = [
        f"{s['stack']}→{_where(s)} {s.get('phase') or ''}".strip()
        for s in view["stacks"]
        if s["state"] == "migrating"
    ]
    queue = [f"{q['stack']}→{_where(q)}" for q in view["queue"]]
    eta = view.get("eta_s")
    left = f"{eta:.0f}s left" if isinstance(eta, int | float) and view["status"] == "running" else ""
    parts = [
        f"[{'#' * filled}{'.' * (_WIDTH - filled)}]",
        f"{size(done)}/{size(total)}",
        "now: " + (", ".join(current) or "-"),
        "queue: " + (", ".join(queue) or "-"),
        left,
    ]
    return "  ".join(p for p in parts if p)


def summary(view: dict[str, Any]) -> str:
    s = view["summary"]
    lines = [
        f"drain {view['id']} {view['status']}: moved {len(s['moved'])}, skipped {len(s['skipped'])}, "
        f"rolled back {len(s['rolled_back'])}, failed {len(s['failed'])}"
    ]
    for m in s["moved"]:
        lines.append(f"  moved       {m['stack']} → {_where(m)}")
    for key, label in (("skipped", "skipped"), ("rolled_back", "rolled back"), ("failed", "failed")):
        for m in s[key]:
            lines.append(f"  {label:<11} {m['stack']}: {m.get('message') or m.get('code') or ''}")
    if view.get("error"):
        lines.append(f"  error: {view['error']}")
    return "\n".join(lines)


def follow(drain_id: str, out: TextIO) -> dict[str, Any]:
    """Draw the bar on every view until the drain ends; returns the final view."""
    last: dict[str, Any] | None = None
    tty = out.isatty()
    for view in views(drain_id):
        last = view
        line = bar_line(view)
        if tty:
            out.write("\r\x1b[2K" + line[:200])
        else:
            out.write(line + "\n")
        out.flush()
        if view["status"] != "running":
            break
    if tty:
        out.write("\n")
    if last is None or last["status"] == "running":
        raise CliError(f"the drain's event stream ended early; see `GET /api/v1/drains/{drain_id}`")
    return last


def cmd_drain(args: argparse.Namespace, host_id: str) -> int:
    body = {"destinations": args.to, "order": args.order, "concurrency": args.concurrency}
    path = f"/api/v1/hosts/{_q(host_id)}/drain"
    if args.dry_run:
        print(plan_table(api("POST", path + "?dry_run=true", body)))
        return 0
    started = api("POST", path, body)
    print(f"drain {started['id']}: {started['source']['name']} cordoned; moving to {args.to}", flush=True)
    try:
        final = follow(started["id"], sys.stdout)
    except KeyboardInterrupt:
        print(f"\ndetached; the drain goes on (dockmesh hosts drain-status {started['id']})", file=sys.stderr)
        return 130
    print(summary(final))
    bad = final["status"] != "done" or final["summary"]["rolled_back"] or final["summary"]["skipped"]
    return 1 if bad else 0


def cmd_drain_status(drain_id: str) -> int:
    view = api("GET", f"/api/v1/drains/{_q(drain_id)}")
    if view["status"] == "running":
        view = follow(drain_id, sys.stdout)
    print(summary(view))
    return 0 if view["status"] == "done" else 1


def add_arguments(h: argparse.ArgumentParser) -> None:
    h.add_argument("--to", help="drain: the destination hosts, a host selector (e.g. 'dest and not gpu')")
    h.add_argument(
        "--order", choices=sorted(ORDERS), default="smallest", help="drain: which stacks move first"
    )
    h.add_argument("--concurrency", type=int, default=1, help="drain: stacks moving at once (1-8)")
    h.add_argument("--dry-run", action="store_true", help="drain: show the plan, change nothing")
