"""`dockmesh volumes|networks|images`: list, create, remove, pull (with a progress bar) and prune."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

from dockmesh.cli.client import CliError, api, load_login, login_pin, urlopen
from dockmesh.cli.table import table

MANAGED = ("volumes", "networks", "images")
BAR = 30


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f}MB"


def cmd_volume_create(args: argparse.Namespace) -> int:
    row = api("POST", f"/api/v1/hosts/{_q(args.host)}/volumes", {"name": args.name, "driver": args.driver})
    print(f"created volume {row['name']} on {row['host']['name']}")
    return 0


def cmd_network_create(args: argparse.Namespace) -> int:
    body = {"name": args.name, "driver": args.driver, "internal": args.internal}
    row = api("POST", f"/api/v1/hosts/{_q(args.host)}/networks", body)
    print(f"created network {row['name']} ({row['id']}) on {row['host']['name']}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    query = "?force=1" if getattr(args, "force", False) else ""
    api("DELETE", f"/api/v1/hosts/{_q(args.host)}/{args.resource}/{_q(args.ref)}{query}")
    print(f"removed {args.resource[:-1]} {args.ref} on {args.host}")
    return 0


def _show_prune(result: dict[str, Any], resource: str, dry_run: bool) -> None:
    key = "name" if resource == "volumes" else "id"
    rows = []
    for r in result["results"]:
        for item in r["items"]:
            tags = ",".join(item.get("tags") or [])
            rows.append(
                {"host": r["host"]["name"], "ref": item[key], "tags": tags, "size": _mb(item["size"])}
            )
        for item in r["failed"]:
            print(
                f"dockmesh: {r['host']['name']}: kept {item.get(key)}: {item.get('error')}", file=sys.stderr
            )
    columns = [("host", "HOST"), ("ref", key.upper())]
    columns += [("tags", "TAGS")] if resource == "images" else []
    if rows:
        print(table(rows, [*columns, ("size", "SIZE")]))
    verb = "would remove" if dry_run else "removed"
    print(f"{verb} {len(rows)} {resource}, {'would free' if dry_run else 'freed'} {_mb(result['reclaimed'])}")
    for host in result["hosts"]:
        if host["status"] != "ok":
            print(
                f"dockmesh: host {host['name']} {host['status']}: {host.get('error') or ''}", file=sys.stderr
            )


def cmd_prune(args: argparse.Namespace) -> int:
    path = f"/api/v1/{args.resource}/prune?{urllib.parse.urlencode({'host': args.host})}"
    body: dict[str, Any] = {"dry_run": True}
    if args.resource == "images":
        body["mode"] = "dangling" if args.dangling else "unused"
    if args.dry_run or not args.force:
        preview = api("POST", path, body)
        _show_prune(preview, args.resource, True)
        if args.dry_run:
            return 0
        if not sys.stdin.isatty():
            raise CliError("pruning removes the objects above: add --force to prune without asking")
        if input("remove them? [y/N] ").strip().lower() not in ("y", "yes"):
            return 1
    result = api("POST", path, {**body, "dry_run": False})
    _show_prune(result, args.resource, False)
    failed = any(h["status"] != "ok" for h in result["hosts"]) or any(r["failed"] for r in result["results"])
    return 1 if failed else 0


def _ndjson(path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    url, token = load_login()
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST")  # noqa: S310
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", f"Bearer {token}")
    try:
        with urlopen(req, login_pin(), timeout=None) as resp:
            for line in resp:
                if line.strip():
                    yield json.loads(line)
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {exc.code}"
        raise CliError(message) from None
    except (urllib.error.URLError, OSError) as exc:
        raise CliError(f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from None


def progress_bar(done: int, total: int, width: int = BAR) -> str:
    filled = width * done // total if total > 0 else 0
    return f"[{'#' * filled}{'.' * (width - filled)}] {_mb(done)}/{_mb(total)}"


def cmd_pull(args: argparse.Namespace) -> int:
    path = f"/api/v1/images/pull?{urllib.parse.urlencode({'host': args.host})}"
    hosts: dict[str, tuple[int, int]] = {}
    live = sys.stderr.isatty()
    result: dict[str, Any] | None = None
    for line in _ndjson(path, {"image": args.image}):
        if line.get("type") == "progress":
            hosts[line["host"]["id"]] = (line.get("pulled") or 0, line.get("size") or 0)
            if live:
                done, total = sum(d for d, _t in hosts.values()), sum(t for _d, t in hosts.values())
                print(
                    f"\rpulling {args.image} on {len(hosts)} host(s) {progress_bar(done, total)}",
                    end="",
                    file=sys.stderr,
                )
        elif line.get("type") == "result":
            result = line
    if live:
        print(file=sys.stderr)
    if result is None:
        raise CliError("the pull ended without a result; see the server log")
    for item in result["items"]:
        print(f"{item['host']['name']}: pulled {args.image} ({item['id']})")
    failed = [h for h in result["hosts"] if h["status"] != "ok"]
    for host in failed:
        print(f"dockmesh: host {host['name']} {host['status']}: {host.get('error') or ''}", file=sys.stderr)
    if not result["hosts"]:
        raise CliError(f"no host matches {args.host!r}")
    return 1 if failed else 0


def list_flags(p: Any, default: Any = False) -> None:
    """The list options (docs/inventory.md): ask every host now, or leave offline hosts' rows out."""
    p.add_argument("--fresh", action="store_true", default=default, help="ask every host now (no inventory)")
    p.add_argument(
        "--no-stale", action="store_true", default=default, help="leave out offline hosts' last-known rows"
    )


def add_parsers(sub: Any, cmd_list: Callable[[argparse.Namespace], int]) -> None:
    groups: dict[str, Any] = {}
    for resource in MANAGED:
        p = sub.add_parser(resource, help=f"{resource} across hosts: ls (default), create, rm, prune")
        p.add_argument("--host", default="all", help="all (default), a host id, or tag:<tag>")
        p.add_argument("--timeout", help="per-host deadline in seconds (default 3)")
        list_flags(p)
        p.set_defaults(func=cmd_list, resource=resource)
        actions = groups[resource] = p.add_subparsers(dest="action", metavar="ACTION")
        ls = actions.add_parser("ls", help=f"list {resource}")
        ls.add_argument("--host", default=argparse.SUPPRESS, help="all (default), a host id, or tag:<tag>")
        ls.add_argument(
            "--timeout", default=argparse.SUPPRESS, help="per-host deadline in seconds (default 3)"
        )
        list_flags(ls, argparse.SUPPRESS)
        ls.set_defaults(func=cmd_list, resource=resource)
        rm = actions.add_parser("rm", help=f"remove one of the {resource} on a host")
        rm.add_argument("ref", metavar="NAME" if resource == "volumes" else "ID")
        rm.add_argument("--host", required=True, help="the host's id")
        if resource == "images":
            rm.add_argument("--force", action="store_true", help="also when a container uses it")
        rm.set_defaults(func=cmd_remove, resource=resource)
        if resource in ("volumes", "images"):
            pr = actions.add_parser("prune", help=f"remove {resource} no container uses")
            pr.add_argument(
                "--host", default=argparse.SUPPRESS, help="all (default), a host id, or tag:<tag>"
            )
            pr.add_argument("--dry-run", action="store_true", help="list what would go; remove nothing")
            pr.add_argument("-f", "--force", action="store_true", help="do not ask before removing")
            if resource == "images":
                pr.add_argument("--dangling", action="store_true", help="only untagged images")
            pr.set_defaults(func=cmd_prune, resource=resource)
        if resource in ("volumes", "networks"):
            cr = actions.add_parser("create", help=f"create a {resource[:-1]} on a host")
            cr.add_argument("name")
            cr.add_argument("--host", required=True, help="the host's id")
            cr.add_argument("--driver", default="local" if resource == "volumes" else "bridge")
            if resource == "networks":
                cr.add_argument("--internal", action="store_true", help="no route outside the host")
            cr.set_defaults(func=cmd_volume_create if resource == "volumes" else cmd_network_create)
    pull = groups["images"].add_parser(
        "pull", help="pull an image on the selected hosts, with a progress bar"
    )
    pull.add_argument("image")
    pull.add_argument("--host", default=argparse.SUPPRESS, help="all (default), a host id, or tag:<tag>")
    pull.set_defaults(func=cmd_pull, resource="images")
