"""`dockmesh registries ls|add|rm|update`: registry credentials scoped by host selector.

The password is read from a prompt or from stdin (`--password-stdin`), never from the command line, where
other users could read it in the process list and the shell would keep it in its history.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from typing import Any

from dockmesh.cli.client import CliError, api
from dockmesh.cli.table import table

MAX_PASSWORD = 4096


def read_password(from_stdin: bool, prompt: str = "registry password: ") -> str:
    if from_stdin:
        value = sys.stdin.read(MAX_PASSWORD + 2)
        value = value[:-1] if value.endswith("\n") else value  # `echo` and here-strings add one
        value = value[:-1] if value.endswith("\r") else value
    elif sys.stdin.isatty():
        value = getpass.getpass(prompt)
    else:
        raise CliError("stdin is not a terminal: pipe the password in with --password-stdin")
    if not value:
        raise CliError("the password is empty: give one at the prompt or on stdin (--password-stdin)")
    return value


def _when(at: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(float(at))) if at else "-"


def cmd_ls(args: argparse.Namespace) -> int:
    items = api("GET", "/api/v1/registries")["items"]
    rows = [{**c, "updated": _when(c.get("updated_at"))} for c in items]
    columns = [("id", "ID"), ("url", "REGISTRY"), ("username", "USERNAME"), ("scope", "SCOPE")]
    print(table(rows, [*columns, ("updated", "UPDATED")]))
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    body = {
        "url": args.url,
        "username": args.username,
        "password": read_password(args.password_stdin),
        "scope": args.scope,
    }
    made = api("POST", "/api/v1/registries", body)
    print(f"added credential {made['id']} for {made['url']} (user {made['username']}, scope {made['scope']})")
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        key: value
        for key, value in (("url", args.url), ("username", args.username), ("scope", args.scope))
        if value is not None
    }
    if args.password or args.password_stdin:
        body["password"] = read_password(args.password_stdin, "new registry password: ")
    if not body:
        raise CliError("nothing to change: give --url, --username, --scope, --password or --password-stdin")
    changed = api("PATCH", f"/api/v1/registries/{args.id}", body)
    print(f"updated credential {changed['id']} for {changed['url']} (scope {changed['scope']})")
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    api("DELETE", f"/api/v1/registries/{args.id}")
    print(f"removed credential {args.id}")
    return 0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("registries", help="registry credentials: ls, add, update, rm")
    actions = p.add_subparsers(dest="action", required=True)
    actions.add_parser("ls", help="credentials (never their passwords)").set_defaults(func=cmd_ls)
    add = actions.add_parser("add", help="add a credential; the password is prompted for or read from stdin")
    add.add_argument("url", help="host[:port][/path], e.g. ghcr.io/acme or registry.example:5000")
    add.add_argument("-u", "--username", required=True)
    add.add_argument("--scope", default="", help="host selector, e.g. 'prod and not eu' (default: all)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.set_defaults(func=cmd_add)
    update = actions.add_parser("update", help="change a credential's url, username, scope or password")
    update.add_argument("id", type=int)
    update.add_argument("--url")
    update.add_argument("-u", "--username")
    update.add_argument("--scope", help="host selector; '' = every host")
    update.add_argument("--password", action="store_true", help="prompt for a new password")
    update.add_argument("--password-stdin", action="store_true", help="read a new password from stdin")
    update.set_defaults(func=cmd_update)
    rm = actions.add_parser("rm", help="remove a credential")
    rm.add_argument("id", type=int)
    rm.set_defaults(func=cmd_rm)
