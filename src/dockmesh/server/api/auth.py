"""Login, logout and the bearer-token middleware."""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from dockmesh.server.accounts import Busy
from dockmesh.server.clients import limit_key
from dockmesh.server.context import ctx
from dockmesh.server.errors import ApiError, Handler, field_str, json_body
from dockmesh.server.routes import RouteTable, needs_auth
from dockmesh.server.services.audit import record_login
from dockmesh.server.sessions import CSRF_HEADER, SAFE_METHODS, WEB_SECRET, csrf_ok, session_token
from dockmesh.store.users import UserRecord

routes = RouteTable("auth")


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def current_user(request: web.Request) -> UserRecord:
    user = request.get("dockmesh_user")
    if not isinstance(user, UserRecord):
        raise ApiError(401, "unauthorized", "log in first")
    return user


def require_admin(request: web.Request) -> UserRecord:
    user = current_user(request)
    if not user.is_admin:
        raise ApiError(403, "forbidden", "this needs an administrator")
    return user


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A bearer token, or the browser's session cookie; cookie-authenticated writes need the CSRF token."""
    if request.path.startswith("/api/v1/") and needs_auth(request):
        token, via = bearer(request), "bearer"
        if token is None:
            token, via = session_token(request), "cookie"
        user = await ctx(request).accounts.user_for_token(token) if token else None
        if user is None or token is None:
            raise ApiError(401, "unauthorized", "missing or expired token: POST /api/v1/auth/login first")
        csrf = request.headers.get(CSRF_HEADER)
        unsafe = request.method not in SAFE_METHODS
        if via == "cookie" and unsafe and not csrf_ok(request.app[WEB_SECRET], token, csrf):
            raise ApiError(403, "csrf", f"missing or wrong {CSRF_HEADER} header; reload the page")
        request["dockmesh_user"] = user
        request["dockmesh_auth"] = via
    return await handler(request)


@routes.route(
    "POST",
    "/api/v1/auth/login",
    summary="Exchange username and password for a bearer token",
    auth=False,
    body={
        "type": "object",
        "properties": {"username": {"type": "string"}, "password": {"type": "string"}},
        "required": ["username", "password"],
    },
    responses={
        200: "{token}",
        401: "wrong credentials",
        429: "too many failures from this client",
        503: "too many logins in progress",
    },
)
async def login(request: web.Request) -> web.Response:
    c = ctx(request)
    key = limit_key(request, "login")
    body = await json_body(request)
    username = field_str(body, "username", max_len=64)
    password = body.get("password")
    if not isinstance(password, str) or not password:
        raise ApiError(400, "invalid_field", "'password' must be a non-empty string")
    if c.limiter.blocked(key):
        raise ApiError(
            429, "too_many_requests", "too many failed logins; wait a minute", headers={"Retry-After": "60"}
        )
    # Counted as a failure until it proves right: the check is awaited, and concurrent guesses from
    # one client must not all pass `blocked` before the first of them has failed.
    c.limiter.fail(key)
    try:
        token = await c.accounts.login(username, password)
    except Busy:
        c.limiter.forgive(key)
        raise ApiError(
            503, "server_busy", "too many logins in progress; retry in a second", headers={"Retry-After": "1"}
        ) from None
    if token is None:
        await record_login(c, request, username, ok=False)
        raise ApiError(401, "bad_credentials", "wrong username or password")
    c.limiter.forgive(key)
    await record_login(c, request, username, ok=True)
    return web.json_response({"token": token})


@routes.route("POST", "/api/v1/auth/logout", summary="Invalidate the bearer token", responses={204: "done"})
async def logout(request: web.Request) -> web.Response:
    token = bearer(request) or session_token(request)
    if token:
        await ctx(request).accounts.logout(token)
    return web.Response(status=204)


def origin_of(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of a URL, default ports filled in; None if it has no usable origin."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or (443 if scheme == "https" else 80)


def check_origin(request: web.Request) -> None:
    """Browsers send Origin on WebSocket upgrades; a foreign one is cross-site WebSocket hijacking.

    Compared with the configured public URL, not the Host header: behind a reverse proxy Host names the
    backend, and Host is as much the client's word as Origin is.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        if request.get("dockmesh_auth") == "cookie":
            # Browsers always send Origin on WebSocket upgrades; a cookie without one is not a page of ours.
            raise ApiError(403, "bad_origin", "WebSocket with a session cookie but no Origin refused")
        return  # not a browser: API clients authenticate with a bearer token
    expected = origin_of(ctx(request).config.public_url)
    if expected is None or origin_of(origin) != expected:
        raise ApiError(403, "bad_origin", f"WebSocket from origin {origin[:200]!r} refused")
