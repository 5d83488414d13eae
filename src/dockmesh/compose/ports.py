"""Published ports in compose's short (``[IP:][HOST:]CONTAINER[/PROTO]``, ranges) and long syntax."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from dockmesh.compose.model import Port

__all__ = ["parse_ports"]

_SHORT = re.compile(
    r"(?:(?P<ip>\[[0-9a-fA-F:.]+\]|\d+\.\d+\.\d+\.\d+):)?(?:(?P<host>\d+(?:-\d+)?)?:)?(?P<target>\d+(?:-\d+)?)(?:/(?P<proto>tcp|udp|sctp))?"
)
MAX_PORTS = 1024  # a range expands to one binding per port


def _range(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def parse_ports(raw: list[Any], fail: Callable[[int, str], Exception]) -> tuple[Port, ...]:
    out: list[Port] = []
    for i, item in enumerate(raw):
        if isinstance(item, dict):
            out.append(_long(item, i, fail))
            continue
        match = _SHORT.fullmatch(str(item))
        if match is None:
            raise fail(i, f"{item!r} is not [HOST_IP:][HOST:]CONTAINER[/PROTOCOL]")
        targets = _range(match["target"])
        hosts: list[int | None] = [*_range(match["host"])] if match["host"] else [None] * len(targets)
        if len(hosts) != len(targets):
            raise fail(i, f"{item!r}: the host and container ranges differ in length")
        ip = (match["ip"] or "").strip("[]")
        for target, host in zip(targets, hosts):  # lengths checked above; no strict= on 3.9
            out.append(_port(target, host, ip, match["proto"] or "tcp", i, fail))
        if len(out) > MAX_PORTS:
            raise fail(i, f"more than {MAX_PORTS} published ports")
    return tuple(out)


def _long(item: dict[str, Any], i: int, fail: Callable[[int, str], Exception]) -> Port:
    try:
        target = int(item["target"])
        published = item.get("published")
        host = int(published) if published not in (None, "") else None
    except ValueError:
        raise fail(i, "target and published must be port numbers") from None
    return _port(target, host, item.get("host_ip", ""), item.get("protocol", "tcp"), i, fail)


def _port(
    target: int, host: int | None, ip: str, proto: str, i: int, fail: Callable[[int, str], Exception]
) -> Port:
    for value in (target, host):
        if value is not None and not 0 < value < 65536:
            raise fail(i, f"port {value} is out of range 1-65535")
    return Port(target=target, published=host, host_ip=ip, protocol=proto)
