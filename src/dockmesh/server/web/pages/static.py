"""The UI's static files (CSS, JS, vendored xterm.js), served from the package."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from aiohttp import web

from dockmesh.server.routes import RouteTable
from dockmesh.server.web.render import SECURITY_HEADERS

routes = RouteTable("web")

STATIC_ROOT = (Path(__file__).resolve().parent.parent / "static").resolve()
_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png"}


def resolve(relative: str) -> Path | None:
    """The file under the static root, or None (missing, a directory, hidden, or outside the root)."""
    if not relative or any(part.startswith(".") for part in relative.split("/")):
        return None
    path = (STATIC_ROOT / relative).resolve()
    if not path.is_relative_to(STATIC_ROOT) or not path.is_file():
        return None
    return path


@routes.route(
    "GET", "/static/{path:.+}", summary="Static assets of the web UI", auth=False, responses={200: "the file"}
)
async def static_file(request: web.Request) -> web.StreamResponse:
    path = resolve(request.match_info["path"])
    if path is None:
        raise web.HTTPNotFound(text="no such file")
    content_type = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    headers = {
        **SECURITY_HEADERS,
        "Content-Type": content_type,
        # Revalidate every time (Last-Modified → 304): no stale JS after an upgrade, no build step for hashes.
        "Cache-Control": "no-cache",
    }
    return web.FileResponse(path, headers=headers)


@routes.route("GET", "/favicon.ico", summary="The UI's icon (browsers ask for it by this name)", auth=False)
async def favicon(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(
        STATIC_ROOT / "favicon.svg",
        headers={"Content-Type": "image/svg+xml", "Cache-Control": "max-age=86400"},
    )
