"""Browser sessions, shared by the API (cookie auth, CSRF check) and the pages: the session cookie carries an
API token; CSRF tokens are bound to it.

The session cookie holds the same kind of token `POST /api/v1/auth/login` returns (stored only as a hash),
so logging out or expiring it ends the browser session and any API use of it alike. Unsafe requests
authenticated by the cookie must carry a CSRF token: an HMAC of the session token under a server secret
(generated at first start, 0600 in the data directory). Pages put it in a meta tag and in their forms.
Before a session exists, the login form is protected by a double-submit cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from aiohttp import web

from dockmesh.server.config import ServerConfig

SESSION_COOKIE = "dockmesh_session"
LOGIN_CSRF_COOKIE = "dockmesh_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SECRET_FILE = "web-secret"  # noqa: S105 - a file name, not a secret

WEB_SECRET = web.AppKey("dockmesh_web_secret", bytes)


def load_or_create_secret(data_dir: Path) -> bytes:
    """The server's CSRF secret: 32 random bytes, created once with mode 0600."""
    path = data_dir / SECRET_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raw = b""
    if len(raw) >= 32:
        return raw
    raw = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, raw)
    finally:
        os.close(fd)
    path.chmod(0o600)
    return raw


def csrf_for(secret: bytes, session_token: str) -> str:
    return hmac.new(secret, b"csrf:" + session_token.encode(), hashlib.sha256).hexdigest()


def csrf_ok(secret: bytes, session_token: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(csrf_for(secret, session_token), str(presented))


def session_token(request: web.Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE) or None


def secure_cookies(config: ServerConfig) -> bool:
    """Secure whenever TLS is on: served by us, or by a proxy in front (the public URL says https)."""
    return config.https or config.public_url.startswith("https://")


def set_session_cookie(response: web.StreamResponse, token: str, *, secure: bool, max_age: int) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=secure,
    )


def clear_session_cookie(response: web.StreamResponse, *, secure: bool) -> None:
    response.del_cookie(SESSION_COOKIE, path="/", secure=secure, httponly=True, samesite="Strict")


def login_csrf(request: web.Request) -> tuple[str, bool]:
    """The login form's double-submit value, and whether the cookie must be (re)set."""
    existing = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if len(existing) >= 32:
        return existing, False
    return secrets.token_urlsafe(32), True


def set_login_csrf_cookie(response: web.StreamResponse, value: str, *, secure: bool) -> None:
    response.set_cookie(
        LOGIN_CSRF_COOKIE, value, path="/login", httponly=True, samesite="Strict", secure=secure
    )


def login_csrf_ok(request: web.Request, presented: str | None) -> bool:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    return len(cookie) >= 32 and bool(presented) and hmac.compare_digest(cookie, str(presented))
