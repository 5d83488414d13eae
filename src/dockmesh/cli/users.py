"""`dockmesh users|roles|tokens`: accounts, roles (permissions + host scope), script tokens, effective access.

Passwords come from a prompt (asked twice) or, for scripts, one line on stdin with `--password-stdin`;
never from argv, where other users of the machine can read them.
"""

from __future__ import annotations

import argparse
import getpass
import re
import sys
import urllib.parse
from datetime import UTC, datetime
from typing import Any

from dockmesh.cli.client import CliError, api
from dockmesh.cli.table import table

_TTL = re.compile(r"^(\d{1,6})([smhd]?)$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def read_password(args: argparse.Namespace, who: str) -> str:
    if args.password_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise CliError("--password-stdin: no password on stdin (give it as one line)")
        return line
    if not sys.stdin.isatty():
        raise CliError(
            "no terminal to ask for the password: pass it as one line on stdin with --password-stdin"
        )
    first = getpass.getpass(f"new password for {who}: ")
    if getpass.getpass("again: ") != first:
        raise CliError("the two passwords differ; nothing was changed")
    return first


def user_by_name(username: str) -> dict[str, Any]:
    for user in api("GET", "/api/v1/users")["items"]:
        if user["username"] == username:
            return dict(user)
    raise CliError(f"no user named {username!r}: `dockmesh users ls` lists them")


def utc(ts: Any) -> str:
    return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d %H:%M UTC") if ts is not None else ""


def ttl_seconds(text: str) -> int:
    match = _TTL.fullmatch(text.strip())
    if not match:
        raise CliError(f"--expires {text!r}: give a number with s, m, h or d (e.g. 30d)")
    return int(match.group(1)) * _UNIT[match.group(2)]


# --- users ----------------------------------------------------------------------------------------


def cmd_users(args: argparse.Namespace) -> int:
    action = args.action or "ls"
    if action == "ls":
        rows = [
            {**u, "roles": ",".join(u["roles"]), "admin": "yes" if u["admin"] else ""}
            for u in api("GET", "/api/v1/users")["items"]
        ]
        print(table(rows, [("id", "ID"), ("username", "USERNAME"), ("roles", "ROLES"), ("admin", "ADMIN")]))
    elif action == "add":
        body = {"username": args.username, "password": read_password(args, args.username), "roles": args.role}
        user = api("POST", "/api/v1/users", body)
        roles = ",".join(user["roles"]) or "none"
        print(f"created user {user['username']} (id {user['id']}) with roles {roles}")
    elif action == "rm":
        user = user_by_name(args.username)
        api("DELETE", f"/api/v1/users/{user['id']}")
        print(f"deleted user {args.username}")
    elif action == "set-roles":
        user = user_by_name(args.username)
        done = api("PATCH", f"/api/v1/users/{user['id']}", {"roles": args.roles})
        print(f"{done['username']} now holds {','.join(done['roles']) or 'no role'}")
    elif action == "passwd":
        user = user_by_name(args.username)
        api("PATCH", f"/api/v1/users/{user['id']}", {"password": read_password(args, args.username)})
        print(f"password of {args.username} changed")
    elif action == "access":
        print_access(api("GET", f"/api/v1/users/{user_by_name(args.username)['id']}/access"))
    return 0


def print_access(view: dict[str, Any]) -> None:
    print(f"user {view['user']['username']}: roles {','.join(view['user']['roles']) or 'none'}")
    print(f"global: {','.join(view['global']) or 'none'}")
    if not view["hosts"]:
        print("reaches no host")
        return
    rows = [
        {**h, "tags": ",".join(h["tags"]), "permissions": ",".join(h["permissions"])} for h in view["hosts"]
    ]
    print(
        table(rows, [("id", "HOST ID"), ("name", "NAME"), ("tags", "TAGS"), ("permissions", "PERMISSIONS")])
    )


# --- roles ----------------------------------------------------------------------------------------


def cmd_roles(args: argparse.Namespace) -> int:
    action = args.action or "ls"
    if action == "ls":
        rows = [
            {
                **r,
                "permissions": ",".join(r["permissions"]),
                "scope": r["scope"] or "all",
                "builtin": "yes" if r["builtin"] else "",
            }
            for r in api("GET", "/api/v1/roles")["items"]
        ]
        columns = [
            ("name", "NAME"),
            ("builtin", "BUILT-IN"),
            ("scope", "SCOPE"),
            ("permissions", "PERMISSIONS"),
        ]
        print(table(rows, columns))
    elif action == "add":
        body = {"name": args.name, "permissions": args.permission, "scope": args.scope or ""}
        role = api("POST", "/api/v1/roles", body)
        print(f"created role {role['name']} (scope {role['scope'] or 'all'})")
    elif action == "update":
        patch: dict[str, Any] = {}
        if args.permission is not None:
            patch["permissions"] = args.permission
        if args.scope is not None:
            patch["scope"] = args.scope
        if not patch:
            raise CliError("roles update: give --permission and/or --scope")
        role = api("PATCH", f"/api/v1/roles/{_q(args.name)}", patch)
        print(f"updated role {role['name']}: {','.join(role['permissions'])} on {role['scope'] or 'all'}")
    elif action == "rm":
        api("DELETE", f"/api/v1/roles/{_q(args.name)}")
        print(f"deleted role {args.name}")
    return 0


# --- script tokens --------------------------------------------------------------------------------


def cmd_tokens(args: argparse.Namespace) -> int:
    action = args.action or "ls"
    if not args.user:
        raise CliError("tokens: say whose tokens with --user USERNAME")
    user = user_by_name(args.user)
    base = f"/api/v1/users/{user['id']}/tokens"
    if action == "ls":
        rows = [
            {**t, "roles": ",".join(t["roles"]), "expires_at": utc(t["expires_at"])}
            for t in api("GET", base)["items"]
        ]
        columns = [("id", "ID"), ("name", "NAME"), ("roles", "ROLES"), ("expires_at", "EXPIRES AT")]
        print(table(rows, columns))
    elif action == "add":
        body: dict[str, Any] = {"name": args.name, "ttl_s": ttl_seconds(args.expires)}
        if args.role:
            body["roles"] = args.role
        made = api("POST", base, body)
        # The secret alone on stdout (scripts capture it); what it is, on stderr.
        print(
            f"token {made['name']} (id {made['id']}) for {args.user}, roles {','.join(made['roles'])}; "
            "shown once:",
            file=sys.stderr,
        )
        print(made["token"])
    elif action == "rm":
        api("DELETE", f"{base}/{_q(args.token_id)}")
        print(f"revoked token {args.token_id}")
    return 0


def add_parsers(sub: Any) -> None:
    u = sub.add_parser("users", help="users: ls (default), add, rm, set-roles, passwd, access")
    u.set_defaults(func=cmd_users, action=None)
    ua = u.add_subparsers(dest="action", metavar="ACTION")
    ua.add_parser("ls", help="list users and their roles")
    add = ua.add_parser("add", help="create a user (password from a prompt, or --password-stdin)")
    add.add_argument("username")
    add.add_argument("--role", action="append", default=[], help="a role to hold (repeat for several)")
    add.add_argument("--password-stdin", action="store_true", help="read the password as one line on stdin")
    ua.add_parser("rm", help="delete a user").add_argument("username")
    sr = ua.add_parser("set-roles", help="replace a user's roles (none: no role at all)")
    sr.add_argument("username")
    sr.add_argument("roles", nargs="*")
    pw = ua.add_parser("passwd", help="set a user's password (from a prompt, or --password-stdin)")
    pw.add_argument("username")
    pw.add_argument("--password-stdin", action="store_true", help="read the password as one line on stdin")
    ua.add_parser("access", help="effective access: hosts and permissions per host").add_argument("username")

    r = sub.add_parser("roles", help="roles: ls (default), add, update, rm")
    r.set_defaults(func=cmd_roles, action=None)
    ra = r.add_subparsers(dest="action", metavar="ACTION")
    ra.add_parser("ls", help="list roles")
    for name, text in (("add", "create a role"), ("update", "change a custom role")):
        p = ra.add_parser(name, help=text)
        p.add_argument("name")
        p.add_argument(
            "--permission",
            action="append",
            default=[] if name == "add" else None,
            help="a permission, e.g. containers.view (repeat for several)",
        )
        p.add_argument("--scope", help="host selector, e.g. 'prod and not name:db-1' (default: every host)")
    ra.add_parser("rm", help="delete a custom role").add_argument("name")

    t = sub.add_parser("tokens", help="script tokens of a user: ls (default), add, rm")
    t.set_defaults(func=cmd_tokens, action=None)
    t.add_argument("--user", help="the tokens' owner (username)")
    ta = t.add_subparsers(dest="action", metavar="ACTION")
    for name, text in (
        ("ls", "list a user's tokens"),
        ("add", "create a token; prints the secret once"),
        ("rm", "revoke a token"),
    ):
        p = ta.add_parser(name, help=text)
        p.add_argument("--user", default=argparse.SUPPRESS, help="the tokens' owner (username)")
        if name == "add":
            p.add_argument("name")
            p.add_argument(
                "--role", action="append", default=[], help="limit to this role (default: all of the user's)"
            )
            p.add_argument("--expires", default="30d", help="lifetime, e.g. 3600s, 12h, 30d (default 30d)")
        if name == "rm":
            p.add_argument("token_id", metavar="ID")
