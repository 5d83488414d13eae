"""Login, logout, the session cookie, CSRF on writes and Origin on WebSockets."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import Console, Ui, run_async
from tests.integration.harness import ADMIN_PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.docker]


def test_login_redirects_back_and_logout_ends_the_session(
    make_context: Callable[..., BrowserContext], ui: Ui
) -> None:
    context = make_context(login=False)
    page = context.new_page()
    page.goto("/hosts")
    expect(page).to_have_url(f"{ui.server.url}/login?next=/hosts")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "wrong password")
    page.click("button[type=submit]")
    expect(page.locator("p.error")).to_have_text("Wrong username or password.")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{ui.server.url}/hosts")
    expect(page.locator("h1")).to_have_text("Hosts")

    (cookie,) = [c for c in context.cookies() if c["name"] == "dockmesh_session"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/"
    token = cookie["value"]
    assert ui.server.api.call("GET", "/api/v1/agents")[0] == 200
    status, _ = _get_with_bearer(ui, token)
    assert status == 200  # the cookie holds a real API token

    page.click("text=Log out")
    expect(page).to_have_url(f"{ui.server.url}/login")
    assert not [c for c in context.cookies() if c["name"] == "dockmesh_session"]
    status, _ = _get_with_bearer(ui, token)
    assert status == 401  # logging out dropped the token itself, not just the cookie
    page.goto("/agents")
    expect(page).to_have_url(f"{ui.server.url}/login?next=/agents")


def _get_with_bearer(ui: Ui, token: str) -> tuple[int, object]:
    from tests.integration.harness import Api

    return Api(ui.server.url, token).call("GET", "/api/v1/agents")


def test_login_form_needs_its_csrf_token(make_context: Callable[..., BrowserContext], ui: Ui) -> None:
    context = make_context(login=False)
    page = context.new_page()
    page.goto("/login")
    page.evaluate("document.querySelector('input[name=csrf]').value = 'forged'")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("p.error")).to_contain_text("expired")
    assert not [c for c in context.cookies() if c["name"] == "dockmesh_session"]


def test_cookie_writes_need_the_csrf_header_and_pages_send_security_headers(page: Page, ui: Ui) -> None:
    response = page.goto("/agents")
    assert response is not None
    headers = response.headers
    assert "default-src 'self'" in headers["content-security-policy"]
    assert "script-src 'self';" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    assert headers["x-frame-options"] == "DENY"
    csrf = page.get_attribute("meta[name=csrf-token]", "content")
    assert csrf
    assert len(csrf) == 64

    request = page.context.request
    without = request.post("/api/v1/agents", data={"name": "csrf-probe"})
    assert without.status == 403
    assert without.json()["error"]["code"] == "csrf"
    wrong = request.post("/api/v1/agents", data={"name": "csrf-probe"}, headers={"X-CSRF-Token": "0" * 64})
    assert wrong.status == 403
    assert request.get("/api/v1/agents").status == 200  # reads need no CSRF token
    right = request.post("/api/v1/agents", data={"name": "csrf-probe"}, headers={"X-CSRF-Token": csrf})
    assert right.status == 201
    names = [a["name"] for a in ui.server.api.get("/api/v1/agents")["items"]]
    assert names.count("csrf-probe") == 1  # only the request with the token created anything


def test_websockets_with_the_cookie_check_origin(ui: Ui) -> None:
    ui.run(1, "origin-probe")
    token = ui.login_token()
    url = f"{ui.server.url}/api/v1/hosts/{ui.alpha_id}/containers/origin-probe/exec?cmd=echo&cmd=ok&tty=0"

    async def handshake(origin: str | None) -> int:
        headers = {"Cookie": f"dockmesh_session={token}"}
        if origin is not None:
            headers["Origin"] = origin
        async with aiohttp.ClientSession() as http:
            try:
                async with http.ws_connect(url, headers=headers) as ws:
                    await ws.close()
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    assert run_async(handshake("http://evil.example")) == 403
    assert run_async(handshake(None)) == 403
    assert run_async(handshake(ui.server.url)) == 101


def test_the_console_recorder_sees_errors(page: Page, console: Console) -> None:
    """The check every test ends with would notice a page's error (and an uncaught exception)."""
    page.goto("/")
    page.evaluate("console.error('probe-7f3a')")
    page.evaluate("setTimeout(() => { throw new Error('probe-uncaught-9c1d') }, 0)")

    def seen() -> bool:
        errors = console.errors
        return any("probe-7f3a" in e for e in errors) and any("probe-uncaught-9c1d" in e for e in errors)

    # Playwright delivers events only while it runs a call: poll through short waits, until seen.
    for _ in range(100):
        if seen():
            break
        page.wait_for_timeout(50)
    assert seen()
    console.allow("probe-7f3a|probe-uncaught-9c1d")
