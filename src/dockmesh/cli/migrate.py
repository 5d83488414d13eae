"""`dockmesh stacks migrate NAME --to HOST [--from HOST]`: start a migration and follow it to its end."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
from collections.abc import Iterator
from typing import Any, TextIO

from dockmesh.cli.client import CliError, api

BAR = 30


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def resolve_host(text: str) -> str:
    """A host id from an id or a unique name (the API addresses hosts by id)."""
    items = api("GET", "/api/v1/hosts")["items"]
    if any(h["id"] == text for h in items):
        return text
    named = [h["id"] for h in items if h["name"] == text]
    if len(named) == 1:
        return str(named[0])
    if named:
        raise CliError(f"{len(named)} hosts are named {text!r}: give the host id (see `dockmesh hosts`)")
    raise CliError(f"no host {text!r}: see `dockmesh hosts` for ids and names")


def snapshots(migration_id: str) -> Iterator[dict[str, Any]]:
    from dockmesh.cli.stacks import _stream

    with _stream(f"/api/v1/migrations/{_q(migration_id)}/events") as resp:
        for line in resp:
            if line.strip():
                yield json.loads(line)


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


class Bar:
    """The phase on its own line; during the copy one line redrawn in place (a terminal) or every 10 %."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.phase = ""
        self.tenth = -1

    def update(self, m: dict[str, Any]) -> None:
        if m["phase"] != self.phase:
            if self.phase == "copying" and self.tty:
                self.out.write("\n")
            self.phase = m["phase"]
            self.out.write(f"{self.phase}\n")
        if self.phase == "copying" and m["bytes_total"] > 0:
            share = min(1.0, m["bytes_done"] / m["bytes_total"])
            filled = int(share * BAR)
            line = (
                f"  [{'#' * filled}{'.' * (BAR - filled)}] {_mib(m['bytes_done'])} / {_mib(m['bytes_total'])}"
            )
            if self.tty:
                self.out.write(f"\r{line}")
            elif int(share * 10) > self.tenth:
                self.tenth = int(share * 10)
                self.out.write(line + "\n")
        self.out.flush()


def cmd_migrate(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"host": resolve_host(args.to)}
    if args.source:
        body["from"] = resolve_host(args.source)
    started = api("POST", f"/api/v1/stacks/{_q(args.name)}/migrate", body)
    print(f"migrating {args.name} to {args.to} (migration {started['id']})")
    bar = Bar(sys.stdout)
    last: dict[str, Any] = started
    try:
        for snapshot in snapshots(started["id"]):
            bar.update(snapshot)
            last = snapshot
    except KeyboardInterrupt:
        print(f"\ndetached: migration {started['id']} goes on on the server", file=sys.stderr)
        return 130
    if last["state"] != "done":
        reason = (last.get("reason") or "no reason given").strip().splitlines()[0]
        print(f"dockmesh: migration {last['state']}: {reason}", file=sys.stderr)
        return 1
    print(f"done: {args.name} runs on {args.to}; the source keeps its volumes until the safety window ends")
    return 0


def add_parser(actions: Any) -> None:
    m = actions.add_parser("migrate", help="move the stack with its volumes to another host")
    m.add_argument("name")
    m.add_argument("--to", required=True, help="destination host id or name")
    m.add_argument("--from", dest="source", help="source host (when the stack is on more than one)")
    m.set_defaults(func=cmd_migrate)
