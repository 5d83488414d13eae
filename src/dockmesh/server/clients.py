"""Who is asking: the client address (behind trusted proxies only) and the bucket the limiter counts it in.

One function for every place that needs it (login, enrolment, installer token checks, the access log),
so a proxy deployment cannot be honoured in one place and collapse into one shared bucket in another.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any, Union

from aiohttp import web

from dockmesh.server.context import ctx

Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

# A typed request key where aiohttp has them (3.12+; plain strings warn there), a string before.
_CACHE: Any = web.RequestKey("dockmesh_client", object) if hasattr(web, "RequestKey") else "dockmesh_client"
# X-Forwarded-For hops looked at, from the right: a chain of proxies is short; a long header is made up.
MAX_HOPS = 16


def parse_ip(text: str) -> Address | None:
    """An address as proxies write it ('203.0.113.7', '[2001:db8::1]:443', '10.0.0.1:80'), or None.

    IPv4-mapped IPv6 (::ffff:203.0.113.7, what a dual-stack socket reports) is the IPv4 address,
    so one client cannot count against two buckets.
    """
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.partition(":")[0]  # IPv4 with a port; bare IPv6 has two colons or more
    try:
        address = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def resolve(peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[Network]) -> Address | None:
    """The rightmost address that is not a trusted proxy.

    Each proxy appends the address it received the request from, so reading from the right, every entry
    after a trusted hop was written by that trusted hop; the first untrusted one is the client. Anything
    left of it was written by the client itself and proves nothing.
    """
    address = parse_ip(peer or "")
    if address is None or not _trusted(address, trusted):
        return address
    hops = [h for header in forwarded_for for h in header.split(",")]
    for hop in reversed(hops[-MAX_HOPS:]):
        forwarded = parse_ip(hop)
        if forwarded is None:
            break  # garbage from a misbehaving proxy: count the request against the last hop we trust
        address = forwarded
        if not _trusted(address, trusted):
            break
    return address


def _trusted(address: Address, trusted: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)


def bucket(address: Address | None) -> str:
    """IPv4 by address; IPv6 by /64, the smallest block one subscriber gets (one address is free to vary)."""
    if address is None:
        return "?"
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
    return str(address)


def client_address(request: web.BaseRequest, trusted: Sequence[Network]) -> Address | None:
    """The request's client, resolved once per request (the access log asks again at the end)."""
    if _CACHE not in request:
        request[_CACHE] = resolve(request.remote, request.headers.getall("X-Forwarded-For", ()), trusted)
    cached: Address | None = request[_CACHE]
    return cached


def limit_key(request: web.Request, scope: str) -> str:
    """The limiter key for this request: a scope ('login', 'token') and the client's bucket."""
    return f"{scope}:{bucket(client_address(request, ctx(request).config.trusted_proxies))}"
