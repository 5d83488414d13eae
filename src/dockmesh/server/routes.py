"""Route tables: each API module declares its routes once; the app and the OpenAPI document read them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class RouteSpec:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    auth: bool
    body: dict[str, Any] | None
    responses: dict[int, str]
    query: tuple[str, ...]
    websocket: bool


@dataclass
class RouteTable:
    """Collects handlers with the facts the OpenAPI document needs."""

    tag: str
    specs: list[RouteSpec] = field(default_factory=list)

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        auth: bool = True,
        body: dict[str, Any] | None = None,
        responses: dict[int, str] | None = None,
        query: tuple[str, ...] = (),
        websocket: bool = False,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            handler.__dict__["dockmesh_auth"] = auth
            self.specs.append(
                RouteSpec(
                    method,
                    path,
                    handler,
                    summary,
                    self.tag,
                    auth,
                    body,
                    responses or {200: "OK"},
                    query,
                    websocket,
                )
            )
            return handler

        return register

    def install(self, app: web.Application) -> None:
        for spec in self.specs:
            app.router.add_route(spec.method, spec.path, spec.handler)


def needs_auth(request: web.Request) -> bool:
    """Routes are authenticated unless declared otherwise; unknown paths are too (they 404 after auth)."""
    handler = request.match_info.handler
    return bool(getattr(handler, "dockmesh_auth", True))
