"""How the CLI trusts the server: the system roots by default, or the server's key pin (`login --pin`).

A server with its own certificate (issued by its private CA) is reached with the same `sha256//…` pin the
install command carries. The pin is checked right after the handshake and before a byte of the request
(with its bearer token) is sent, so verification is never simply turned off.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import socket
import ssl
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from dockmesh.pki.spki import cert_matches_pin


class PinMismatch(ssl.SSLError):
    """The server presented a key other than the pinned one."""


def _pin_only_context() -> ssl.SSLContext:
    # The pin replaces chain and name checks (the CA is private); it is checked on every connection.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def check_pin(sock: ssl.SSLSocket, pin: str) -> bytes:
    """The peer certificate (DER) if it carries the pinned key; otherwise the socket is closed."""
    der = sock.getpeercert(binary_form=True)
    if not der or not cert_matches_pin(der, pin):
        sock.close()
        raise PinMismatch(f"the server's key does not match the pin {pin}")
    return der


class _PinnedConnection(http.client.HTTPSConnection):
    def __init__(self, *args: Any, pin: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pin = pin

    def connect(self) -> None:
        super().connect()
        check_pin(self.sock, self._pin)  # before the request line leaves this machine


class _PinnedHandler(urllib.request.HTTPSHandler):
    def __init__(self, pin: str) -> None:
        self._ctx = _pin_only_context()
        super().__init__(context=self._ctx)
        self._pin = pin

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        connection = functools.partial(_PinnedConnection, pin=self._pin)
        return self.do_open(connection, req, context=self._ctx)


def opener(pin: str | None) -> urllib.request.OpenerDirector:
    """A urllib opener: system roots, or only the pinned key."""
    return urllib.request.build_opener(_PinnedHandler(pin)) if pin else urllib.request.build_opener()


def aiohttp_ssl(url: str, pin: str | None) -> Any:
    """The ``ssl=`` argument for aiohttp: True (system roots) or the fingerprint of the pinned certificate.

    aiohttp checks a certificate fingerprint right after the handshake, before the request; we learn the
    fingerprint by a pinned handshake of our own first.
    """
    if not pin:
        return True
    import aiohttp  # only exec needs it; keep the CLI's start-up light

    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    with socket.create_connection((host, port), timeout=30) as raw:
        with _pin_only_context().wrap_socket(raw, server_hostname=host) as sock:
            der = check_pin(sock, pin)
    return aiohttp.Fingerprint(hashlib.sha256(der).digest())
