"""Login and logout pages."""

from __future__ import annotations

import re

from aiohttp import web

from dockmesh.server.accounts import API_TOKEN_TTL, Busy
from dockmesh.server.clients import limit_key
from dockmesh.server.context import ctx
from dockmesh.server.routes import RouteTable
from dockmesh.server.services.audit import record_login
from dockmesh.server.sessions import (
    CSRF_FIELD,
    WEB_SECRET,
    clear_session_cookie,
    csrf_ok,
    login_csrf,
    login_csrf_ok,
    secure_cookies,
    session_token,
    set_login_csrf_cookie,
    set_session_cookie,
)
from dockmesh.server.web.render import current_session, render, see_other

routes = RouteTable("web")


_LOCAL_PATH = re.compile(r"^/(?![/\\])[\x21-\x7e]*$")


def safe_next(target: str | None) -> str:
    """Only a local path: `//evil.example`, `/\\evil`, `https://…`, or `/` + tab + `/evil` (browsers drop
    the tab) would be an open redirect."""
    if not target or "\\" in target or not _LOCAL_PATH.fullmatch(target):
        return "/"
    return target


def _login_page(
    request: web.Request, *, error: str = "", username: str = "", target: str | None = None
) -> web.Response:
    value, fresh = login_csrf(request)
    response = render(
        request,
        "login.html",
        {
            "title": "Log in",
            "login_csrf": value,
            "error": error,
            "username": username,
            "next": safe_next(target if target is not None else request.query.get("next")),
        },
        no_store=True,
    )
    if fresh:
        set_login_csrf_cookie(response, value, secure=secure_cookies(ctx(request).config))
    return response


@routes.route("GET", "/login", summary="Login page", auth=False, responses={200: "HTML"})
async def login_page(request: web.Request) -> web.StreamResponse:
    if await current_session(request) is not None:
        raise web.HTTPSeeOther(safe_next(request.query.get("next")))
    return _login_page(request)


@routes.route(
    "POST",
    "/login",
    summary="Log in from the form: sets the session cookie",
    auth=False,
    responses={303: "to the requested page", 200: "the form again, with the error"},
)
async def login_submit(request: web.Request) -> web.StreamResponse:
    c = ctx(request)
    form = await request.post()
    username = str(form.get("username", "")).strip()[:64]
    password = str(form.get("password", ""))
    target = safe_next(str(form.get("next", "")))

    def again(error: str) -> web.Response:
        # 200, not 401: the browser shows the form again; nothing here is an API answer.
        return _login_page(request, error=error, username=username, target=target)

    if not login_csrf_ok(request, str(form.get(CSRF_FIELD, ""))):
        return again("The form expired; please try again.")
    key = limit_key(request, "login")
    if c.limiter.blocked(key):
        return again("Too many failed logins; wait a minute.")
    c.limiter.fail(key)  # counted until it proves right: see api/auth.login
    try:
        token = await c.accounts.login(username, password) if username and password else None
    except Busy:
        c.limiter.forgive(key)
        return again("The server is busy with other logins; try again in a moment.")
    if token is None:
        if username and password:
            await record_login(c, request, username, ok=False)
        return again("Wrong username or password.")
    c.limiter.forgive(key)
    await record_login(c, request, username, ok=True)
    response = see_other(target)
    set_session_cookie(response, token, secure=secure_cookies(c.config), max_age=API_TOKEN_TTL)
    response.del_cookie("dockmesh_login_csrf", path="/login")
    return response


@routes.route(
    "POST",
    "/logout",
    summary="Log out: drops the session token and its cookie",
    auth=False,
    responses={303: "to /login"},
)
async def logout_submit(request: web.Request) -> web.StreamResponse:
    c = ctx(request)
    token = session_token(request)
    form = await request.post()
    if token is not None:
        if not csrf_ok(request.app[WEB_SECRET], token, str(form.get(CSRF_FIELD, ""))):
            raise web.HTTPForbidden(text="missing or wrong CSRF token; reload the page")
        await c.accounts.logout(token)
    response = see_other("/login")
    clear_session_cookie(response, secure=secure_cookies(c.config))
    return response
