"""`dockmesh`: the server (`serve`) and client commands that talk to its API."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
import urllib.parse
from pathlib import Path

from dockmesh import __version__
from dockmesh.cli import audit, drain, fleet, registries, stacks, upgrades, users
from dockmesh.cli.client import CliError, api, call, checked_pin, save_login
from dockmesh.cli.migrate import resolve_host
from dockmesh.cli.table import table
from dockmesh.server.config import ConfigError, ServerConfig

# Installed by the `server` extra, not with the package itself (the agent's pex leaves them out).
SERVER_EXTRA = ("sqlalchemy", "alembic", "aiosqlite", "asyncpg", "jinja2", "argon2", "pex")
# The server's floor (TimeoutError, asyncio.timeout, contextlib.aclosing); the package's is the agent's, 3.9.
SERVER_PYTHON = (3, 11)


def server_extra_missing(exc: ModuleNotFoundError) -> int:
    """A server command on an install without the `server` extra: say what to install, not a traceback."""
    if (exc.name or "").split(".")[0] not in SERVER_EXTRA:
        raise exc
    print(
        f"dockmesh: the server needs the 'server' extra ({exc.name} is not installed): "
        "pip install 'dockmesh[server]'",
        file=sys.stderr,
    )
    return 2


def cmd_serve(args: argparse.Namespace) -> int:
    if sys.version_info < SERVER_PYTHON:
        print(
            f"dockmesh: the server needs Python 3.11 or newer (this is {sys.version.split()[0]}); "
            "run it with python3.11 or later",
            file=sys.stderr,
        )
        return 2
    try:
        config = ServerConfig.from_env(
            data_dir=args.data_dir,
            http=args.http,
            agent_listen=args.agent_listen,
            public_url=args.public_url,
            agent_url=args.agent_url,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            insecure_http=args.insecure_http,
            trusted_proxies=args.trusted_proxies,
            database_url=args.database_url,
        )
    except ConfigError as exc:
        print(f"dockmesh: {exc}", file=sys.stderr)
        return 2
    from dockmesh.server import listen

    # Before the imports below (seconds on a small machine): agents that dial a restarting server
    # wait in this socket's backlog instead of being refused and sleeping through a backoff window.
    try:
        agent_socket = listen.bind(config.agent_host, config.agent_port)
    except OSError as exc:
        print(
            f"dockmesh: cannot listen for agents on {config.agent_host}:{config.agent_port}: {exc}",
            file=sys.stderr,
        )
        return 1
    try:
        from dockmesh.server.app import Server
        from dockmesh.store import StoreError
    except ModuleNotFoundError as exc:
        agent_socket.close()
        return server_extra_missing(exc)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(Server(config, agent_socket=agent_socket).run_forever())
    except ConfigError as exc:
        print(f"dockmesh: {exc}", file=sys.stderr)
        return 2
    except (OSError, StoreError) as exc:
        print(f"dockmesh: cannot start: {exc}", file=sys.stderr)
        return 1
    finally:
        agent_socket.close()  # a no-op once the server's site closed it
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    """`db upgrade` (what `serve` does at start) and `db current`, for an operator's maintenance window."""
    try:
        from dockmesh.store import Database, StoreError, migrate
        from dockmesh.store.url import redact
    except ModuleNotFoundError as exc:
        return server_extra_missing(exc)

    try:
        config = ServerConfig.from_env(data_dir=args.data_dir, database_url=args.database_url)
    except ConfigError as exc:
        print(f"dockmesh: {exc}", file=sys.stderr)
        return 2
    url = config.database_url
    if args.action == "upgrade" and not config.database:
        config.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    async def run() -> str | None:
        db = await Database.open(url, migrate=args.action == "upgrade")
        try:
            return await migrate.current(db)
        finally:
            await db.close()

    try:
        revision = asyncio.run(run())
    except StoreError as exc:
        print(f"dockmesh: {exc}", file=sys.stderr)
        return 1
    print(f"{revision or 'empty'} (head {migrate.head()}) {redact(url)}")
    return 0


def cmd_build_agent(args: argparse.Namespace) -> int:
    try:
        from dockmesh.server.artifact import BuildError, build
    except ModuleNotFoundError as exc:
        return server_extra_missing(exc)

    out = Path(args.out).resolve()
    for arch in args.arch or ["x86_64", "aarch64"]:
        try:
            print(build(out, arch))
        except BuildError as exc:
            raise CliError(str(exc)) from None
    return 0


def cmd_login(args: argparse.Namespace) -> int:
    url = args.url.rstrip("/")
    pin = checked_pin(args.pin)
    if pin and not url.startswith("https://"):
        raise CliError("--pin needs an https:// --url")
    password = os.environ.get("DOCKMESH_PASSWORD") or getpass.getpass(f"password for {args.username}: ")
    body = {"username": args.username, "password": password}
    result = call("POST", url, "/api/v1/auth/login", body=body, pin=pin)
    save_login(url, result["token"], pin)
    print(f"logged in to {url} as {args.username}")
    return 0


def cmd_agents(args: argparse.Namespace) -> int:
    if args.action == "ls":
        items = api("GET", "/api/v1/agents")["items"]
        print(
            table(
                items,
                [
                    ("id", "ID"),
                    ("name", "NAME"),
                    ("status", "STATUS"),
                    ("hostname", "HOSTNAME"),
                    ("version", "VERSION"),
                    ("last_seen", "LAST SEEN"),
                ],
            )
        )
    elif args.action == "create":
        result = api("POST", "/api/v1/agents", {"name": args.target})
        print(f"agent {result['id']} created; run this on the host (the token is shown once):\n")
        print_install(result)
        manual = f"DOCKMESH_ENROLL_URL={result['enroll_url']} DOCKMESH_TOKEN={result['token']}"
        print(f"or start it by hand:\n  {manual} dockmesh-agent")
    elif args.action == "revoke":
        result = api("POST", f"/api/v1/agents/{args.target}/revoke")
        print(f"agent {result['id']} revoked")
    elif args.action == "rotate-token":
        result = api("POST", f"/api/v1/agents/{args.target}/rotate-token")
        print_install(result)
    return 0


def print_install(result: dict[str, str | None]) -> None:
    """The install command exactly as the API and the UI show it, and the plain form when offered."""
    print(f"  {result['install_command']}\n")
    if result.get("install_command_plain"):
        print(f"or, as the certificate is publicly trusted:\n  {result['install_command_plain']}\n")


def cmd_hosts(args: argparse.Namespace) -> int:
    if args.action == "drain-status":
        if not args.host:
            raise CliError("`hosts drain-status` needs the drain id")
        return drain.cmd_drain_status(args.host)
    if args.action == "drain":
        if not args.host or not args.to:
            raise CliError("usage: dockmesh hosts drain HOST --to SELECTOR [--order …] [--dry-run]")
        return drain.cmd_drain(args, resolve_host(args.host))
    if args.action in ("cordon", "uncordon"):
        if not args.host:
            raise CliError(f"`hosts {args.action}` needs a host id or name")
        host = resolve_host(args.host)
        result = api("POST", f"/api/v1/hosts/{urllib.parse.quote(host, safe='')}/{args.action}")
        print(f"{result['name']}: {'cordoned' if result['cordoned'] else 'uncordoned'}")
        return 0
    items = api("GET", "/api/v1/hosts")["items"]
    for item in items:
        if item.get("cordoned"):
            item["status"] = f"{item['status']},cordoned"
        m = item.get("metrics") or {}
        item["cpu"] = f"{m['cpu_percent']:.0f}%" if "cpu_percent" in m else ""
        item["mem"] = f"{m['mem_used'] / 2**30:.1f}/{m['mem_total'] / 2**30:.1f}G" if "mem_total" in m else ""
        item["tags"] = ",".join(item.get("tags") or [])
    print(
        table(
            items,
            [
                ("id", "ID"),
                ("name", "NAME"),
                ("status", "STATUS"),
                ("hostname", "HOSTNAME"),
                ("docker_version", "DOCKER"),
                ("cpu", "CPU"),
                ("mem", "MEM"),
                ("tags", "TAGS"),
            ],
        )
    )
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dockmesh", description="dockmesh: one server for a fleet of Docker hosts"
    )
    p.add_argument("--version", action="version", version=f"dockmesh {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the server")
    s.add_argument("--data-dir")
    s.add_argument("--http", help="HOST:PORT for the UI and API (default :8080)")
    s.add_argument("--agent-listen", help="HOST:PORT for agents (default :8443)")
    s.add_argument("--public-url", help="URL users and installers reach the HTTP port at")
    s.add_argument("--agent-url", help="https:// URL agents dial")
    s.add_argument("--tls-cert", help="PEM certificate (chain) for the UI/API listener; reloaded on SIGHUP")
    s.add_argument("--tls-key", help="PEM private key for --tls-cert")
    s.add_argument(
        "--insecure-http",
        action="store_true",
        help="serve the UI/API as plain HTTP (default: HTTPS unless bound to loopback only)",
    )
    s.add_argument(
        "--trusted-proxies",
        help="comma-separated CIDRs of reverse proxies whose X-Forwarded-For is believed (default none)",
    )
    s.add_argument(
        "--database-url",
        help="sqlite:///PATH (default: dockmesh.db in the data dir) or postgresql://USER@HOST:PORT/DB",
    )
    s.set_defaults(func=cmd_serve)
    d = sub.add_parser("db", help="database schema: upgrade to the newest revision, or show the current one")
    d.add_argument("action", choices=["upgrade", "current"])
    d.add_argument("--data-dir")
    d.add_argument("--database-url", help="as for serve (env DOCKMESH_DATABASE_URL)")
    d.set_defaults(func=cmd_db)
    b = sub.add_parser(
        "build-agent", help="build the agent artifacts (pex; CPython 3.9-3.13) for an offline server"
    )
    b.add_argument(
        "--out", default="./data/artifacts", help="directory (then set DOCKMESH_ARTIFACT_DIR to it)"
    )
    b.add_argument("--arch", action="append", choices=["x86_64", "aarch64"], help="repeatable; default: both")
    b.set_defaults(func=cmd_build_agent)
    lg = sub.add_parser("login", help="log in to a server")
    lg.add_argument("--url", default="https://127.0.0.1:8080")
    lg.add_argument("--username", default="admin")
    lg.add_argument(
        "--pin", help="the server's key pin (sha256//…), for a server with its own certificate; saved"
    )
    lg.set_defaults(func=cmd_login)
    a = sub.add_parser("agents", help="list, create, revoke agents")
    a.add_argument("action", choices=["ls", "create", "revoke", "rotate-token"])
    a.add_argument("target", nargs="?", help="name (create) or agent id")
    a.set_defaults(func=cmd_agents)
    h = sub.add_parser("hosts", help="list hosts; cordon, uncordon or drain one")
    h.add_argument(
        "action", nargs="?", default="ls", choices=["ls", "cordon", "uncordon", "drain", "drain-status"]
    )
    h.add_argument(
        "host", nargs="?", help="host id or name (cordon, uncordon, drain); drain id (drain-status)"
    )
    drain.add_arguments(h)
    h.set_defaults(func=cmd_hosts)
    fleet.add_parsers(sub)
    stacks.add_parsers(sub)
    users.add_parsers(sub)
    registries.add_parsers(sub)
    upgrades.add_parsers(sub)
    audit.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "agents" and args.action != "ls" and not args.target:
        print(
            f"dockmesh: `agents {args.action}` needs a {'name' if args.action == 'create' else 'agent id'}",
            file=sys.stderr,
        )
        return 2
    try:
        code: int = args.func(args)
    except CliError as exc:
        print(f"dockmesh: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
