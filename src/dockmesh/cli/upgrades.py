"""`dockmesh upgrades ls|policy|start HOST|rollout|rollouts [ID]`: the fleet's agent versions, their
self-upgrade, and rollouts in waves (docs/upgrades.md)."""

from __future__ import annotations

import argparse
import sys
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


FOLLOW_POLL = 1.0  # seconds between two looks at a followed rollout


def _rate(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a fraction (0.25) or a percentage (25%)") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: the rate is from 0 to 1 (or 0% to 100%)")
    return value


def _counts(wave: dict[str, Any]) -> str:
    return ", ".join(f"{n} {state}" for state, n in wave["counts"].items()) or "no hosts"


def show(rollout: dict[str, Any]) -> str:
    """The rollout's head line and one line per wave, each host with its state."""
    head = (
        f"rollout {rollout['id']} to {rollout['version']} over {rollout['hosts']!r}: {rollout['status']}"
        f" (max failure rate {rollout['max_failure_rate']:.0%})"
    )
    if rollout.get("reason"):
        head += f"\n  {rollout['reason']}"
    lines = [head]
    for wave in rollout["waves"]:
        marker = ">" if rollout["status"] == "running" and wave["index"] == rollout["wave"] else " "
        hosts = " ".join(f"{h['name']}:{h['state']}" for h in wave["hosts"])
        lines.append(f"{marker} wave {wave['index'] + 1} {wave['step']}: {_counts(wave)}  {hosts}".rstrip())
    return "\n".join(lines)


def _progress(rollout: dict[str, Any]) -> str:
    wave = rollout["waves"][min(rollout["wave"], len(rollout["waves"]) - 1)]
    where = f"wave {wave['index'] + 1}/{len(rollout['waves'])} {wave['step']}"
    return f"{rollout['status']}: {where}: {_counts(wave)}"


def cmd_rollout(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"waves": args.wave, "max_failure_rate": args.max_failure_rate}
    if args.hosts:
        body["hosts"] = args.hosts
    rollout = api("POST", "/api/v1/upgrades/rollouts", body)
    print(show(rollout))
    if args.no_wait:
        print(f"follow it with `dockmesh upgrades rollouts {rollout['id']}`")
        return 0
    seen = ""
    while rollout["status"] == "running":
        line = _progress(rollout)
        if line != seen:
            print(line, flush=True)
            seen = line
        time.sleep(FOLLOW_POLL)
        rollout = api("GET", f"/api/v1/upgrades/rollouts/{urllib.parse.quote(rollout['id'], safe='')}")
    print(show(rollout))
    if rollout["status"] == "halted":
        print(
            "dockmesh: the rollout halted; see the errors above and `dockmesh upgrades ls`", file=sys.stderr
        )
        return 1
    return 0


def cmd_rollouts(args: argparse.Namespace) -> int:
    if args.id:
        print(show(api("GET", f"/api/v1/upgrades/rollouts/{urllib.parse.quote(args.id, safe='')}")))
        return 0
    rows = [
        {
            **r,
            "waves": " → ".join(r["steps"]),
            "progress": _progress(r) if r["status"] == "running" else r["status"],
            "when": _when(r["created_at"]),
        }
        for r in api("GET", "/api/v1/upgrades/rollouts")["items"]
    ]
    columns = [("id", "ID"), ("version", "VERSION"), ("hosts", "HOSTS"), ("waves", "WAVES")]
    print(table(rows, [*columns, ("progress", "STATUS"), ("when", "STARTED"), ("actor", "BY")]))
    return 0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "upgrades", help="agent versions, self-upgrade and rollouts: ls, policy, start, rollout, rollouts"
    )
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
    roll = actions.add_parser(
        "rollout", help="upgrade agents in waves; each wave starts when the one before is healthy"
    )
    roll.add_argument(
        "--wave",
        action="append",
        required=True,
        help="a wave: a host selector (tag:canary) or a cumulative percentage (50%%); repeat, in order",
    )
    roll.add_argument("--hosts", help="which agents (a host id, tag:x or a selector; default all)")
    roll.add_argument(
        "--max-failure-rate",
        type=_rate,
        default=0.0,
        help="halt when more than this share of a wave fails (0.25 or 25%%; default 0: any failure)",
    )
    roll.add_argument("--no-wait", action="store_true", help="print the plan and return")
    roll.set_defaults(func=cmd_rollout)
    shown = actions.add_parser("rollouts", help="list rollouts, or show one with its waves")
    shown.add_argument("id", nargs="?", help="a rollout id")
    shown.set_defaults(func=cmd_rollouts)
