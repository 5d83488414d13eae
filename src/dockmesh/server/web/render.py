"""Rendering pages: the Jinja2 environment (autoescaped), the session guard and the security headers.

A page handler builds one context and calls `render`. Live parts of a page are `{% include %}`d partials;
the page's own JS asks for the same URL with an `X-Fragment: <name>` header and swaps in the fresh HTML
(htmx-style), so one template renders both the first paint and every refresh.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web

from dockmesh import __version__
from dockmesh.server.context import ctx
from dockmesh.server.routes import Handler
from dockmesh.server.services import access
from dockmesh.server.sessions import CSRF_FIELD, WEB_SECRET, csrf_for, csrf_ok, session_token
from dockmesh.store.users import UserRecord

FRAGMENT_HEADER = "X-Fragment"

# No inline scripts anywhere: page data travels in data- attributes. xterm.js writes <style> elements,
# hence 'unsafe-inline' for styles only.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}

NAV = (
    ("dashboard", "/", "Dashboard"),
    ("agents", "/agents", "Agents"),
    ("hosts", "/hosts", "Hosts"),
    ("containers", "/containers", "Containers"),
    ("stacks", "/stacks", "Stacks"),
    ("volumes", "/volumes", "Volumes"),
    ("images", "/images", "Images"),
    ("networks", "/networks", "Networks"),
    ("upgrades", "/upgrades", "Upgrades"),
)
# Shown only to callers who may manage users (the pages themselves refuse everyone else).
ADMIN_NAV = (
    ("users", "/users", "Users"),
    ("roles", "/roles", "Roles"),
    ("registries", "/registries", "Registries"),
    ("audit", "/audit", "Audit"),
)


def _parse_time(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def when(value: Any) -> str:
    """An absolute UTC time, minute precision."""
    ts = _parse_time(value)
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"


def ago(value: Any, now: float | None = None) -> str:
    ts = _parse_time(value)
    if ts is None:
        return "never"
    delta = (now if now is not None else time.time()) - ts
    return "just now" if delta < 2 else f"{_span(delta)} ago"


def until(value: Any, now: float | None = None) -> str:
    ts = _parse_time(value)
    if ts is None:
        return "—"
    delta = ts - (now if now is not None else time.time())
    return f"in {_span(delta)}" if delta >= 0 else f"expired {_span(delta)} ago"


def days_left(value: Any, now: float | None = None) -> float | None:
    ts = _parse_time(value)
    return None if ts is None else (ts - (now if now is not None else time.time())) / 86400


def size(value: Any) -> str:
    """Bytes in binary units: 1536 → '1.5 KiB'."""
    try:
        n = float(value)
    except (TypeError, ValueError):
        return "—"
    if not math.isfinite(n) or n < 0:
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def percent(used: Any, total: Any) -> float:
    try:
        u, t = float(used), float(total)
    except (TypeError, ValueError):
        return 0.0
    return round(100 * u / t, 1) if t > 0 else 0.0


def path_quote(value: Any) -> str:
    return quote(str(value), safe="")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("dockmesh.server.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=when, ago=ago, until=until, size=size, days_left=days_left, pq=path_quote, percent=percent
    )
    env.globals.update(nav=NAV, version=__version__, percent=percent)
    return env


ENV = _environment()


@dataclass(frozen=True)
class Session:
    user: UserRecord
    token: str
    csrf: str


async def current_session(request: web.Request) -> Session | None:
    token = session_token(request)
    if token is None:
        return None
    user = await ctx(request).accounts.user_for_token(token)
    if user is None:
        return None
    return Session(user, token, csrf_for(request.app[WEB_SECRET], token))


async def require_session(request: web.Request) -> Session:
    """The signed-in user, or a redirect to the login page (401 for a fragment refresh)."""
    session = await current_session(request)
    if session is not None:
        return session
    if request.headers.get(FRAGMENT_HEADER):
        raise web.HTTPUnauthorized(text="session expired")
    target = request.rel_url.path_qs
    raise web.HTTPSeeOther("/login" + (f"?next={quote(target, safe='')}" if target != "/" else ""))


def fragment_wanted(request: web.Request, fragments: Mapping[str, str]) -> str | None:
    name = request.headers.get(FRAGMENT_HEADER)
    return fragments.get(name) if name else None


def render(
    request: web.Request,
    template: str,
    context: dict[str, Any],
    *,
    session: Session | None = None,
    active: str = "",
    status: int = 200,
    fragments: Mapping[str, str] | None = None,
    no_store: bool = False,
) -> web.Response:
    """The page (or, for a live refresh, just the partial named by the X-Fragment header)."""
    partial = fragment_wanted(request, fragments or {})
    values = {
        "user": session.user if session else None,
        "csrf": session.csrf if session else "",
        "active": active,
        "admin_nav": ADMIN_NAV if session and access.has_global(session.user, access.USERS_MANAGE) else (),
        "now": ctx(request).clock(),
        "plain_http_exposed": ctx(request).config.plain_http_exposed,
        **context,
    }
    body = ENV.get_template(partial or template).render(values)
    response = web.Response(text=body, status=status, content_type="text/html", charset="utf-8")
    response.headers.update(SECURITY_HEADERS)
    if partial or no_store:
        response.headers["Cache-Control"] = "no-store"
    else:
        response.headers["Cache-Control"] = "no-cache"
    response.headers["Vary"] = FRAGMENT_HEADER
    return response


def see_other(location: str) -> web.Response:
    """A 303 after a form post (a response, not an exception, so it can carry cookies)."""
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


async def session_form(request: web.Request) -> tuple[Session, Mapping[str, Any]]:
    """The signed-in user and the posted form, whose CSRF field must match the session."""
    session = await require_session(request)
    form = await request.post()
    if not csrf_ok(request.app[WEB_SECRET], session.token, str(form.get(CSRF_FIELD, ""))):
        raise PageError(
            403, "Form expired", "The form's security token did not match; reload the page and retry."
        )
    return session, form


def require_global(session: Session, permission: str) -> None:
    """The permission on every host (e.g. enrolling agents), else the page's 403."""
    if not access.has_global(session.user, permission):
        raise PageError(403, "Not allowed", f"This needs the {permission!r} permission on every host.")


class PageError(Exception):
    """Rendered as an HTML error page by `page_errors`."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


@web.middleware
async def page_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except PageError as exc:
        if request.headers.get(FRAGMENT_HEADER):
            # A live refresh of a page that is fine in itself (e.g. its host went offline): the part
            # says what is wrong, and the next refresh shows the data again once it can.
            return render(
                request,
                "_unavailable.html",
                {"title": exc.title, "message": exc.message},
                session=await current_session(request),
            )
        return render(
            request,
            "error.html",
            {"title": exc.title, "message": exc.message},
            session=await current_session(request),
            status=exc.status,
        )
