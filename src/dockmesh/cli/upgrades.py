"""`dockmesh upgrades ls|policy|start HOST`: the fleet's agent versions and their self-upgrade."""

from __future__ import annotations

import argparse
import time
import urllib.parse
from typing import Any

from dockmesh.cli.client import CliError, api
from dockmesh.cli.table import table


def _when(at: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(float(at))) if at else "-"


def cmd_ls(args: argparse.Namespace) -> int:
    data = api("GET", "/api/v1/upgrades")
    skew = ", ".join(f"{v}: {n}" for v, n in data["skew"].items()) or "none reported"
    print(f"server {data['server_version']} · policy {data['policy']} · versions {skew}")
    rows = [
        {
            **item,
            "current": item.get("current") or "-",
            "target": item.get("target") or "-",
            "state": item.get("state") or "-",
            "when": _when(item.get("last_attempt")),
            "error": (item.get("error") or "")[:60],
        }
        for item in data["items"]
    ]
    columns = [("name", "HOST"), ("current", "VERSION"), ("target", "TARGET"), ("state", "STATE")]
    print(table(rows, [*columns, ("when", "LAST ATTEMPT"), ("error", "ERROR")]))
    return 0


def cmd_policy(args: argparse.Namespace) -> int:
    if args.policy is None:
        print(api("GET", "/api/v1/upgrades")["policy"])
        return 0
    print(f"upgrade policy: {api('PUT', '/api/v1/upgrades/policy', {'policy': args.policy})['policy']}")
    return 0


def _host_id(name: str) -> str:
    for host in api("GET", "/api/v1/hosts")["items"]:
        if name in (host["id"], host["name"]):
            return str(host["id"])
    raise CliError(f"no host named {name!r}: see `dockmesh hosts ls`")


def cmd_start(args: argparse.Namespace) -> int:
    host_id = _host_id(args.host)
    state = api("POST", f"/api/v1/hosts/{urllib.parse.quote(host_id, safe='')}/upgrade", {})
    print(f"{args.host}: {state['state']} {state['target']}; follow it with `dockmesh upgrades ls`")
    return 0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("upgrades", help="agent versions and self-upgrade: ls, policy, start")
    actions = p.add_subparsers(dest="action", required=True)
    actions.add_parser("ls", help="server version, policy, version skew, per-host state").set_defaults(
        func=cmd_ls
    )
    policy = actions.add_parser(
        "policy", help="show or set the policy (automatic upgrades on connect, or manual)"
    )
    policy.add_argument("policy", nargs="?", choices=["automatic", "manual"])
    policy.set_defaults(func=cmd_policy)
    start = actions.add_parser("start", help="offer this server's agent build to one host now")
    start.add_argument("host", help="host name or id")
    start.set_defaults(func=cmd_start)
