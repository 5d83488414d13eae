"""`dockmesh stacks`: ls, show, put, deploy (a progress bar per service), stop, start, rm, history, logs."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from dockmesh.cli import migrate
from dockmesh.cli.client import CliError, api, error_message, load_login, login_pin, urlopen
from dockmesh.cli.table import table

MAX_FILE = 1 << 20  # the server's limit for compose.yaml and .env together


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _read(path: str, what: str) -> str:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE:
        raise CliError(f"{path} is over 1 MiB; the server refuses stacks that large")
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise CliError(f"{path} is not UTF-8 text") from None


def cmd_ls(args: argparse.Namespace) -> int:
    query = urllib.parse.urlencode({"host": args.host, **({"timeout": args.timeout} if args.timeout else {})})
    result = api("GET", f"/api/v1/stacks?{query}")
    rows = []
    for item in result["items"]:
        row = dict(item)
        row["host"] = item["host"]["name"]
        row["services"] = ",".join(item.get("services") or [])
        if item.get("external"):
            row["revision"] = "external"
        elif item.get("deployed_revision") is not None:
            row["revision"] = f"{item['deployed_revision']}/{item['revision']}"
        rows.append(row)
    columns = [
        ("host", "HOST"),
        ("name", "NAME"),
        ("services", "SERVICES"),
        ("running", "RUNNING"),
        ("total", "TOTAL"),
        ("revision", "REVISION"),
        ("deploy_state", "DEPLOY"),
    ]
    print(table(rows, columns))
    placed = {r["name"] for r in result["items"]}
    idle = [r["name"] for r in result.get("records", []) if r["name"] not in placed]
    if idle:
        print(f"not deployed on these hosts: {', '.join(idle)}")
    for host in result["hosts"]:
        if host["status"] != "ok":
            print(
                f"dockmesh: host {host['name']} {host['status']}: {host.get('error') or ''}", file=sys.stderr
            )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    s = api("GET", f"/api/v1/stacks/{_q(args.name)}")
    flag = " (privileged allowed)" if s["allow_privileged"] else ""
    print(f"stack {s['name']}: revision {s['revision']}{flag}")
    if s["hosts"]:
        print(
            table(
                s["hosts"],
                [("host", "HOST"), ("revision", "REVISION"), ("state", "STATE"), ("deploy_id", "DEPLOY")],
            )
        )
    else:
        print("not deployed")
    return 0


def cmd_put(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"compose": _read(args.file, "compose file")}
    if args.env_file:
        body["env"] = _read(args.env_file, "env file")
    if args.allow_privileged is not None:
        body["allow_privileged"] = args.allow_privileged
    result = api("PUT", f"/api/v1/stacks/{_q(args.name)}", body)
    what = f"saved as revision {result['revision']}" if result["changed"] else "unchanged"
    print(f"stack {result['name']}: {what}")
    return 0


def cmd_action(args: argparse.Namespace) -> int:
    api("POST", f"/api/v1/stacks/{_q(args.name)}/{args.action}", {"host": args.host})
    print(f"{args.action}: {args.name} on {args.host}")
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    if args.host:
        query = urllib.parse.urlencode({"host": args.host, "volumes": "1" if args.volumes else "0"})
        api("DELETE", f"/api/v1/stacks/{_q(args.name)}?{query}")
        print(f"removed {args.name} from {args.host}{' with its volumes' if args.volumes else ''}")
    else:
        api("DELETE", f"/api/v1/stacks/{_q(args.name)}")
        print(f"deleted stack {args.name} (its record, revisions and history)")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    if args.revisions:
        items = api("GET", f"/api/v1/stacks/{_q(args.name)}/revisions")["items"]
        print(table(items, [("number", "REVISION"), ("author", "AUTHOR"), ("at", "AT")]))
        return 0
    deployments = api("GET", f"/api/v1/stacks/{_q(args.name)}")["deployments"]
    print(
        table(
            deployments,
            [
                ("id", "DEPLOY"),
                ("host", "HOST"),
                ("revision", "REVISION"),
                ("state", "STATE"),
                ("actor", "BY"),
                ("error", "ERROR"),
            ],
        )
    )
    return 0


def _stream(path: str) -> Any:
    url, token = load_login()
    req = urllib.request.Request(url + path)  # noqa: S310 - the user's own server URL
    req.add_header("Authorization", f"Bearer {token}")
    try:
        return urlopen(req, login_pin(), timeout=None)
    except urllib.error.HTTPError as exc:
        raise CliError(error_message(exc)) from None
    except (urllib.error.URLError, OSError) as exc:
        raise CliError(f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from None


def cmd_logs(args: argparse.Namespace) -> int:
    query = {"host": args.host, "follow": "1" if args.follow else "0"}
    if args.tail is not None:
        query["tail"] = str(args.tail)
    try:
        with _stream(f"/api/v1/stacks/{_q(args.name)}/logs?{urllib.parse.urlencode(query)}") as resp:
            while chunk := resp.read1(65536):
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
    except KeyboardInterrupt:
        return 130
    return 0


def events(deploy_id: str) -> Iterator[dict[str, Any]]:
    with _stream(f"/api/v1/deploys/{_q(deploy_id)}/events") as resp:
        for line in resp:
            if line.strip():
                yield json.loads(line)


class Progress:
    """One line per service: its phase and status, a bar while bytes are counted.

    On a terminal the block is redrawn in place; otherwise a line is printed when a service's phase or
    status changes (not for every byte).
    """

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.services: dict[str, dict[str, Any]] = {}
        self.drawn = 0
        self.last: dict[str, tuple[Any, Any]] = {}

    def update(self, event: dict[str, Any]) -> None:
        service = event.get("service") or "stack"
        self.services[service] = event
        if self.tty:
            self.draw()
            return
        key = (event.get("phase"), event.get("status"))
        if self.last.get(service) != key:
            self.last[service] = key
            print(self.line(service, event), file=self.out, flush=True)

    def line(self, service: str, e: dict[str, Any]) -> str:
        width = max(len(s) for s in self.services)
        text = f"{service:<{width}}  {e.get('phase') or '':<8} {e.get('status') or ''}"
        current, total = e.get("current"), e.get("total")
        if isinstance(current, int) and isinstance(total, int) and total > 0:
            filled = min(20, current * 20 // total)
            text += f" [{'#' * filled}{'-' * (20 - filled)}] {current / 1e6:.1f}/{total / 1e6:.1f} MB"
        return text

    def draw(self) -> None:
        if self.drawn:
            self.out.write(f"\x1b[{self.drawn}F")
        for service, event in self.services.items():
            self.out.write("\x1b[2K" + self.line(service, event) + "\n")
        self.drawn = len(self.services)
        self.out.flush()


def follow(deploy_id: str, out: TextIO) -> dict[str, Any]:
    """Show the deploy's progress until its result, which is returned."""
    progress = Progress(out)
    for event in events(deploy_id):
        kind = event.get("type")
        if kind == "progress":
            progress.update(event)
        elif kind == "state" and event.get("message"):
            print(f"dockmesh: {event['message']}", file=out, flush=True)
        elif kind == "result":
            return event
    raise CliError(f"the event stream ended before the result; see `dockmesh stacks history` for {deploy_id}")


def cmd_deploy(args: argparse.Namespace) -> int:
    started = api("POST", f"/api/v1/stacks/{_q(args.name)}/deploy", {"host": args.host})
    deploy_id = started["id"]
    print(f"deploying {args.name} revision {started['revision']} to {args.host} (deploy {deploy_id})")
    try:
        result = follow(deploy_id, sys.stdout)
    except KeyboardInterrupt:
        if args.cancel_on_interrupt:
            api("POST", f"/api/v1/deploys/{_q(deploy_id)}/cancel")
            print(f"\ncancel requested for deploy {deploy_id}; the host rolls it back", file=sys.stderr)
        else:
            print(
                f"\ndetached: deploy {deploy_id} goes on on the server (not cancelled); "
                f"see `dockmesh stacks history {args.name}`",
                file=sys.stderr,
            )
        return 130
    if result["state"] != "done":
        error = (result.get("error") or "no reason given").strip().splitlines()[0]
        print(f"dockmesh: deploy {result['state']}: {error}", file=sys.stderr)
        return 1
    states = ", ".join(f"{s['name']} {s.get('state')}" for s in result.get("services") or [])
    print(f"deployed {args.name} to {args.host}: {states or 'no services'}")
    return 0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("stacks", help="compose stacks: ls, show, put, deploy, stop, start, rm, history, logs")
    actions = p.add_subparsers(dest="action", required=True)
    ls = actions.add_parser("ls", help="stacks across hosts (external ones too)")
    ls.add_argument("--host", default="all", help="all (default), a host id, or tag:<tag>")
    ls.add_argument("--timeout", help="per-host deadline in seconds (default 3)")
    ls.set_defaults(func=cmd_ls)
    show = actions.add_parser("show", help="a stack's revision and where it is deployed")
    show.add_argument("name")
    show.set_defaults(func=cmd_show)
    put = actions.add_parser("put", help="create or update a stack from a compose file (validated)")
    put.add_argument("name")
    put.add_argument("-f", "--file", required=True, help="compose.yaml")
    put.add_argument("--env-file", help=".env for ${VAR} interpolation")
    put.add_argument(
        "--allow-privileged",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="let the stack run privileged containers, bind / or the Docker socket (admins)",
    )
    put.set_defaults(func=cmd_put)
    deploy = actions.add_parser("deploy", help="deploy to a host, following its progress")
    deploy.add_argument("name")
    deploy.add_argument("--host", required=True)
    deploy.add_argument(
        "--cancel-on-interrupt",
        action="store_true",
        help="Ctrl-C cancels the deploy (default: Ctrl-C only detaches)",
    )
    deploy.set_defaults(func=cmd_deploy)
    for action in ("stop", "start"):
        a = actions.add_parser(action, help=f"{action} the stack's containers on a host")
        a.add_argument("name")
        a.add_argument("--host", required=True)
        a.set_defaults(func=cmd_action, action=action)
    rm = actions.add_parser("rm", help="down on a host (--host), or delete the record (no --host)")
    rm.add_argument("name")
    rm.add_argument("--host")
    rm.add_argument("--volumes", action="store_true", help="also remove the stack's volumes (with --host)")
    rm.set_defaults(func=cmd_rm)
    history = actions.add_parser("history", help="the stack's deploys (or --revisions)")
    history.add_argument("name")
    history.add_argument("--revisions", action="store_true")
    history.set_defaults(func=cmd_history)
    logs = actions.add_parser("logs", help="logs of all the stack's services on a host, merged")
    logs.add_argument("name")
    logs.add_argument("--host", required=True)
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("--tail", type=int)
    logs.set_defaults(func=cmd_logs)
    migrate.add_parser(actions)
