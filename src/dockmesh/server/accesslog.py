"""Access logging that never writes a secret: query strings are reduced to their keys."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

log = logging.getLogger("dockmesh.access")


class RedactingAccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        keys = "&".join(f"{k}=…" for k in request.query)
        path = request.path + (f"?{keys}" if keys else "")
        self.logger.info(
            '%s "%s %s" %s %.1fms', request.remote, request.method, path, response.status, time * 1000
        )
