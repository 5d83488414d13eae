"""Client commands for fleet operations: lists with a host column, container actions, logs, exec."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import urllib.parse
import urllib.request
from typing import Any

from dockmesh.cli import objects
from dockmesh.cli.client import CliError, api, load_login, login_pin, urlopen
from dockmesh.cli.table import table
from dockmesh.cli.tls import PinMismatch, aiohttp_ssl

COLUMNS: dict[str, list[tuple[str, str]]] = {
    "containers": [
        ("host", "HOST"),
        ("name", "NAME"),
        ("image", "IMAGE"),
        ("state", "STATE"),
        ("status", "STATUS"),
        ("stack", "STACK"),
        ("id", "ID"),
    ],
    "images": [("host", "HOST"), ("tags", "TAGS"), ("size", "SIZE"), ("id", "ID")],
    "volumes": [("host", "HOST"), ("name", "NAME"), ("driver", "DRIVER"), ("stack", "STACK")],
    "networks": [("host", "HOST"), ("name", "NAME"), ("driver", "DRIVER"), ("stack", "STACK"), ("id", "ID")],
    "stacks": [
        ("host", "HOST"),
        ("name", "NAME"),
        ("services", "SERVICES"),
        ("running", "RUNNING"),
        ("total", "TOTAL"),
    ],
}


def cmd_list(args: argparse.Namespace) -> int:
    params = {"host": args.host, **({"timeout": args.timeout} if args.timeout else {})}
    if getattr(args, "fresh", False):
        params["fresh"] = "1"
    if getattr(args, "no_stale", False):
        params["stale"] = "exclude"
    query = urllib.parse.urlencode(params)
    result = api("GET", f"/api/v1/{args.resource}?{query}")
    rows = []
    for item in result["items"]:
        row = dict(item)
        row["host"] = item["host"]["name"]
        for key in ("tags", "services"):
            if isinstance(row.get(key), list):
                row[key] = ",".join(row[key])
        if isinstance(row.get("size"), int):
            row["size"] = f"{row['size'] / 1e6:.1f}MB"
        rows.append(row)
    print(table(rows, COLUMNS[args.resource]))
    failed = [h for h in result["hosts"] if h["status"] != "ok"]
    for host in failed:
        aged = ""
        if host.get("stale") and host.get("age_s") is not None:
            aged = f" (its last-known rows, {host['age_s']:.0f}s old)"
        error = host.get("error") or ""
        print(f"dockmesh: host {host['name']} {host['status']}: {error}{aged}", file=sys.stderr)
    return 0


def cmd_action(args: argparse.Namespace) -> int:
    path = f"/api/v1/hosts/{_q(args.host)}/containers/{_q(args.container)}"
    if args.action == "rm":
        api("DELETE", path)
    else:
        api("POST", f"{path}/{args.action}")
    print(f"{args.action}: {args.container} on {args.host}")
    return 0


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def cmd_logs(args: argparse.Namespace) -> int:
    url, token = load_login()
    query = urllib.parse.urlencode(
        {"follow": "1" if args.follow else "0", **({"tail": str(args.tail)} if args.tail is not None else {})}
    )
    req = urllib.request.Request(  # noqa: S310 - the user's own server URL
        f"{url}/api/v1/hosts/{_q(args.host)}/containers/{_q(args.container)}/logs?{query}"
    )
    req.add_header("Authorization", f"Bearer {token}")
    try:
        with urlopen(req, login_pin(), timeout=None) as resp:
            while True:
                chunk = resp.read1(65536)
                if not chunk:
                    break
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {exc.code}"
        raise CliError(message) from None
    except KeyboardInterrupt:
        return 130
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    return asyncio.run(_exec(args))


async def _exec(args: argparse.Namespace) -> int:
    import aiohttp

    url, token = load_login()
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    size = shutil.get_terminal_size()
    query: list[tuple[str, str]] = [("cmd", part) for part in (args.command or ["sh"])]
    query += [("tty", "1" if interactive else "0"), ("cols", str(size.columns)), ("rows", str(size.lines))]
    ws_url = url.replace("http", "ws", 1) + (
        f"/api/v1/hosts/{_q(args.host)}/containers/{_q(args.container)}/exec?{urllib.parse.urlencode(query)}"
    )
    code = 1
    try:
        tls = aiohttp_ssl(url, login_pin()) if url.startswith("https://") else True
    except PinMismatch as exc:
        raise CliError(f"{exc.args[0]}: check the pin, or log in again with the right --pin") from None
    except OSError as exc:
        raise CliError(f"cannot reach {url}: {exc}") from None
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        try:
            ws = await http.ws_connect(ws_url, ssl=tls)
        except aiohttp.WSServerHandshakeError as exc:
            raise CliError(
                f"exec refused: HTTP {exc.status} (is the host online and the container running?)"
            ) from None
        loop = asyncio.get_running_loop()
        restore = _raw_mode() if interactive else None
        sending: set[asyncio.Future[None]] = set()

        def send(coro: Any) -> None:
            future = asyncio.ensure_future(coro)
            sending.add(future)
            future.add_done_callback(sending.discard)

        def on_stdin() -> None:
            data = os.read(sys.stdin.fileno(), 65536)
            if data:
                send(ws.send_bytes(data))
            else:
                loop.remove_reader(sys.stdin.fileno())
                send(ws.send_json({"type": "eof"}))

        def on_resize() -> None:
            size = shutil.get_terminal_size()
            send(ws.send_json({"type": "resize", "cols": size.columns, "rows": size.lines}))

        loop.add_reader(sys.stdin.fileno(), on_stdin)
        if interactive:
            loop.add_signal_handler(signal.SIGWINCH, on_resize)
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    sys.stdout.buffer.write(msg.data)
                    sys.stdout.buffer.flush()
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    control = json.loads(msg.data)
                    if control.get("type") == "exit":
                        code = int(control.get("code") or 0)
                        break
                    if control.get("type") == "error":
                        print(f"\ndockmesh: {control.get('message')}", file=sys.stderr)
                        break
        finally:
            with contextlib.suppress(Exception):
                loop.remove_reader(sys.stdin.fileno())
            if restore:
                restore()
            await ws.close()
    return code


def _raw_mode() -> Any:
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    return lambda: termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def cmd_dashboard(args: argparse.Namespace) -> int:
    result = api("GET", "/api/v1/dashboard")
    t = result["totals"]
    gib = 2**30
    print(
        f"hosts {t['hosts_online']}/{t['hosts_total']} online · "
        f"CPU {t['cpu_percent']}% of {t['cpu_cores']} cores · "
        f"mem {t['mem_used'] / gib:.1f}/{t['mem_total'] / gib:.1f} GiB · "
        f"disk {t['disk_used'] / gib:.0f}/{t['disk_total'] / gib:.0f} GiB · {t['containers_running']} running"
    )
    print(
        table(
            result["hosts"],
            [
                ("name", "HOST"),
                ("status", "STATUS"),
                ("cpu_percent", "CPU%"),
                ("containers_running", "RUNNING"),
            ],
        )
    )
    return 0


def cmd_tag(args: argparse.Namespace) -> int:
    result = api("PUT", f"/api/v1/hosts/{_q(args.host)}/tags", {"tags": args.tags})
    print(f"{args.host}: {','.join(result['tags']) or '(no tags)'}")
    return 0


def add_parsers(sub: Any) -> None:
    objects.add_parsers(sub, cmd_list)
    for resource in COLUMNS:
        if resource == "stacks" or resource in objects.MANAGED:
            continue  # cli/stacks.py and cli/objects.py own these
        p = sub.add_parser(resource, help=f"{resource} across hosts")
        p.add_argument("action", nargs="?", default="ls", choices=["ls"])
        p.add_argument("--host", default="all", help="all (default), a host id, or tag:<tag>")
        p.add_argument("--timeout", help="per-host deadline in seconds (default 3)")
        objects.list_flags(p)
        p.set_defaults(func=cmd_list, resource=resource)
    for action in ("start", "stop", "restart", "kill", "rm"):
        p = sub.add_parser(action, help=f"{action} a container on a host")
        p.add_argument("host")
        p.add_argument("container")
        p.set_defaults(func=cmd_action, action=action)
    lg = sub.add_parser("logs", help="a container's logs")
    lg.add_argument("host")
    lg.add_argument("container")
    lg.add_argument("-f", "--follow", action="store_true")
    lg.add_argument("--tail", type=int)
    lg.set_defaults(func=cmd_logs)
    ex = sub.add_parser("exec", help="run a command in a container (interactive when on a terminal)")
    ex.add_argument("host")
    ex.add_argument("container")
    ex.add_argument("command", nargs=argparse.REMAINDER)
    ex.set_defaults(func=cmd_exec)
    d = sub.add_parser("dashboard", help="fleet totals and per-host tiles")
    d.set_defaults(func=cmd_dashboard)
    t = sub.add_parser("tag", help="replace a host's tags")
    t.add_argument("host")
    t.add_argument("tags", nargs="*")
    t.set_defaults(func=cmd_tag)
