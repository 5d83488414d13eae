"""Access logging that never writes a secret: query strings are reduced to their keys."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from dockmesh.server.clients import client_address
from dockmesh.server.context import CONTEXT

log = logging.getLogger("dockmesh.access")


class RedactingAccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        keys = "&".join(f"{k}=…" for k in request.query)
        path = request.path + (f"?{keys}" if keys else "")
        self.logger.info(
            '%s "%s %s" %s %.1fms', _client(request), request.method, path, response.status, time * 1000
        )


def _client(request: web.BaseRequest) -> str:
    """The client as the limiter sees it (behind trusted proxies), so logs and 429s name the same one."""
    app = request.app if isinstance(request, web.Request) else None
    context = app.get(CONTEXT) if app is not None else None
    trusted = context.config.trusted_proxies if context is not None else ()
    address = client_address(request, trusted)
    return str(address) if address is not None else (request.remote or "?")
