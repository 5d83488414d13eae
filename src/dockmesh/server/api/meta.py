"""Health, the OpenAPI document and its browsable page."""

from __future__ import annotations

from aiohttp import web

from dockmesh import __version__
from dockmesh.server.routes import RouteTable

routes = RouteTable("meta")
OPENAPI = web.AppKey("dockmesh_openapi", dict)


@routes.route("GET", "/api/v1/health", summary="Liveness and version", auth=False)
async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "version": __version__})


@routes.route("GET", "/api/openapi.json", summary="This API as an OpenAPI 3.1 document", auth=False)
async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


@routes.route("GET", "/api/docs", summary="A browsable list of the API's operations", auth=False)
async def docs(request: web.Request) -> web.Response:
    from dockmesh.server.openapi import DOCS_PAGE

    return web.Response(text=DOCS_PAGE, content_type="text/html")
