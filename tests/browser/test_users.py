"""Users, roles, script tokens and effective access pages (issue 11); a non-admin cannot reach them."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import Console, Ui

pytestmark = [pytest.mark.browser, pytest.mark.docker]

PASSWORD = "carol-password-1"


@pytest.fixture
def edge_alpha(ui: Ui) -> Iterator[None]:
    """`alpha` tagged `edge` (and `local` not), so a scope can pick one host of the two."""
    path = f"/api/v1/hosts/{ui.alpha_id}/tags"
    status, body = ui.server.api.call("PUT", path, {"tags": ["edge"]})
    assert status == 200, body
    yield
    ui.server.api.call("PUT", path, {"tags": []})


def _cleanup(ui: Ui, username: str, role: str) -> None:
    status, body = ui.server.api.call("GET", "/api/v1/users")
    for user in body["items"] if status == 200 else []:
        if user["username"] == username:
            ui.server.api.call("DELETE", f"/api/v1/users/{user['id']}")
    ui.server.api.call("DELETE", f"/api/v1/roles/{role}")


def test_admin_makes_a_scoped_role_and_user_who_cannot_reach_the_admin_pages(
    page: Page, make_context: Callable[..., BrowserContext], console: Console, ui: Ui, edge_alpha: None
) -> None:
    console.allow("status of (400|403)")  # chromium logs refused forms and pages; the pages say why
    try:
        _admin_flow(page, ui)
        _user_flow(make_context(login=False).new_page(), ui)
    finally:
        _cleanup(ui, "carol", "edge-viewer")


def _admin_flow(page: Page, ui: Ui) -> None:
    page.goto("/")
    nav = page.locator("#nav")
    expect(nav.get_by_role("link", name="Users")).to_be_visible()
    nav.get_by_role("link", name="Roles").click()
    expect(page.locator("#roles-table tr[data-role=admin]")).to_contain_text("built-in")
    page.get_by_role("link", name="New role").click()
    expect(page.locator("h1")).to_have_text("New role")

    page.fill("input[name=name]", "edge-viewer")
    page.check("input[name=permissions][value='containers.view']")
    # A bad scope: the live preview says what and where, with a caret under the spot.
    page.fill("#scope", "edge and (")
    error = page.locator("#scope-preview .scope-error")
    expect(error).to_contain_text("at position 10")
    expect(page.locator("#scope-preview .scope-caret")).to_have_text("edge and (\n" + " " * 10 + "^")
    # Saved anyway, the server refuses it, keeps the draft and shows the position again.
    page.click("#role-form button[type=submit]")
    expect(page.locator("#form-error")).to_contain_text("(at 10)")
    expect(page.locator("#scope")).to_have_value("edge and (")
    expect(page.locator("input[name=permissions][value='containers.view']")).to_be_checked()

    # A good scope: the preview lists the one host it matches now.
    page.fill("#scope", "edge")
    matches = page.locator("#scope-preview .scope-matches")
    expect(matches).to_contain_text("matches 1 host now")
    expect(page.locator("#scope-preview .scope-host")).to_have_text(["alpha"])
    page.click("#role-form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/roles\?saved=edge-viewer$"))
    row = page.locator("#roles-table tr[data-role=edge-viewer]")
    expect(row).to_contain_text("edge")
    expect(row).to_contain_text("containers.view")

    # Built-in roles are read-only: no save button, the fields disabled.
    page.goto("/roles/viewer")
    expect(page.locator("#scope")).to_be_disabled()
    expect(page.locator("#role-form button[type=submit]")).to_have_count(0)

    # A user holding the new role.
    page.goto("/users")
    page.get_by_role("link", name="New user").click()
    page.fill("input[name=username]", "carol")
    page.fill("input[name=password]", "short")
    page.check("input[name=roles][value='edge-viewer']")
    page.evaluate("document.querySelector('#user-form').noValidate = true")
    page.click("#user-form button[type=submit]")
    expect(page.locator("#form-error")).to_contain_text("8 to 1024 characters")
    page.fill("input[name=password]", PASSWORD)
    page.click("#user-form button[type=submit]")
    expect(page.locator("h1")).to_have_text("carol")
    user_url = page.url
    expect(page.locator("#roles-form input[value='edge-viewer']")).to_be_checked()

    # A script token: the secret once, then only its row; revoked, the row goes.
    page.fill("#token-form input[name=name]", "ci-deploy")
    page.click("#token-form button[type=submit]")
    secret = page.locator("#token-secret")
    expect(secret).to_have_text(re.compile(r"^dmt_[\w-]{20,}$"))
    token = secret.inner_text()
    status, _ = _as_token(ui, token)
    assert status == 200  # the shown secret works as a bearer token
    expect(page.locator("#tokens-table tr[data-token]")).to_have_count(1)
    page.goto(user_url)
    expect(page.locator("#token-secret")).to_have_count(0)  # shown once
    page.locator("#tokens-table button", has_text="Revoke").click()
    page.locator("#confirm-ok").click()
    expect(page.locator("#tokens-table")).to_have_count(0)
    assert _as_token(ui, token)[0] == 401

    # Effective access: alpha with what the role grants, local not at all.
    page.get_by_role("link", name="Effective access").click()
    rows = page.locator("#access-table tbody tr")
    expect(rows).to_have_count(1)
    alpha = page.locator(f"#access-table tr[data-host-id='{ui.alpha_id}']")
    expect(alpha.locator("td[data-permission='containers.view']")).to_have_text("✓")
    expect(alpha.locator("td[data-permission='containers.manage']")).not_to_have_text("✓")
    expect(page.locator("#global-permissions")).to_contain_text("no global permission")


def _as_token(ui: Ui, token: str) -> tuple[int, object]:
    from tests.integration.harness import Api

    return Api(ui.server.url, token, context=ui.server.ssl_context()).call("GET", "/api/v1/hosts")


def _user_flow(page: Page, ui: Ui) -> None:
    page.goto("/login")
    page.fill("input[name=username]", "carol")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Dashboard")
    nav = page.locator("#nav")
    expect(nav.get_by_role("link", name="Hosts")).to_be_visible()
    expect(nav.get_by_role("link", name="Users")).to_have_count(0)
    expect(nav.get_by_role("link", name="Roles")).to_have_count(0)
    for path in (
        "/users",
        "/users/new",
        "/users/1",
        "/users/1/access",
        "/roles",
        "/roles/new",
        "/roles/admin",
    ):
        response = page.goto(path)
        assert response is not None
        assert response.status in (403, 404), (path, response.status)
        expect(page.locator("h1")).to_have_text(re.compile("Not allowed|Not found"))
    preview = page.request.get("/roles/preview?scope=all")
    assert preview.status == 403  # the preview names every host: not for carol either
    page.goto("/hosts")
    expect(page.locator(f"#hosts-table tr[data-host-id='{ui.alpha_id}']")).to_have_count(1)
    expect(page.locator("#hosts-table tr[data-host-id='local']")).to_have_count(0)
