"""Web UI helpers: login redirects, CSRF tokens, the secret file, static paths, display filters."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from dockmesh.server.sessions import csrf_for, csrf_ok, load_or_create_secret
from dockmesh.server.web.pages.auth import safe_next
from dockmesh.server.web.pages.static import resolve
from dockmesh.server.web.render import ENV, ago, percent, size, until


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/hosts", "/hosts"),
        ("/containers?host=tag%3Aprod", "/containers?host=tag%3Aprod"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("/\t/evil.example", "/"),
        ("https://evil.example/", "/"),
        ("hosts", "/"),
        ("", "/"),
        (None, "/"),
    ],
)
def test_login_redirects_only_to_local_paths(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def test_csrf_token_is_bound_to_the_session_and_the_secret() -> None:
    token = csrf_for(b"s" * 32, "session-a")
    assert len(token) == 64
    assert csrf_ok(b"s" * 32, "session-a", token)
    assert not csrf_ok(b"s" * 32, "session-b", token)
    assert not csrf_ok(b"t" * 32, "session-a", token)
    assert not csrf_ok(b"s" * 32, "session-a", None)
    assert not csrf_ok(b"s" * 32, "session-a", "")


def test_secret_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    first = load_or_create_secret(tmp_path)
    assert len(first) == 32
    assert stat.S_IMODE((tmp_path / "web-secret").stat().st_mode) == 0o600
    assert load_or_create_secret(tmp_path) == first


@pytest.mark.parametrize(
    "path", ["../render.py", "js/../../render.py", ".hidden", "js/.x", "", "js", "nope.css"]
)
def test_static_paths_stay_inside_the_static_root(path: str) -> None:
    assert resolve(path) is None


def test_static_files_resolve() -> None:
    for path in ("app.css", "js/app.js", "vendor/xterm/xterm.js", "vendor/xterm/LICENSE-xterm"):
        found = resolve(path)
        assert found is not None
        assert found.is_file()


def test_display_filters() -> None:
    assert size(0) == "0 B"
    assert size(1536) == "1.5 KiB"
    assert size(3 * 1024**3) == "3.0 GiB"
    assert size(None) == "—"
    assert percent(1, 4) == 25.0
    assert percent(1, 0) == 0.0
    assert ago(None) == "never"
    assert ago(100.0, now=101.0) == "just now"
    assert ago(0.0, now=7200.0) == "2 h ago"
    assert until("1970-01-31T00:00:00+00:00", now=0.0) == "in 30 d"
    assert until(0.0, now=120.0) == "expired 2 min ago"


def test_templates_escape_what_they_show() -> None:
    html = ENV.get_template("_unavailable.html").render(title="<b>x</b>", message="<script>alert(1)</script>")
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


@pytest.mark.parametrize(
    ("env", "secure"),
    [
        ({}, True),  # HTTPS by default
        ({"DOCKMESH_TLS_CERT": "a", "DOCKMESH_TLS_KEY": "b", "DOCKMESH_HTTP_ADDR": "127.0.0.1:1"}, True),
        ({"DOCKMESH_HTTP_ADDR": "127.0.0.1:1", "DOCKMESH_BASE_URL": "https://proxy.example"}, True),
        ({"DOCKMESH_HTTP_ADDR": "127.0.0.1:1"}, False),
        ({"DOCKMESH_INSECURE_HTTP": "1"}, False),
    ],
)
def test_cookies_are_secure_whenever_tls_is_on(tmp_path: Path, env: dict[str, str], secure: bool) -> None:
    from dockmesh.server.config import ServerConfig
    from dockmesh.server.sessions import secure_cookies

    assert secure_cookies(ServerConfig.from_env({"DOCKMESH_DATA_DIR": str(tmp_path), **env})) is secure
