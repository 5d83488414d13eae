"""A user whose only role is scoped to `prod` sees only `prod` hosts on every list page and the dashboard;
the other host's pages are a 404; a retag changes what the next page load shows (issue 11)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import Console, Ui
from tests.integration.harness import Api

pytestmark = [pytest.mark.browser, pytest.mark.docker]

LIST_PAGES = ("/", "/hosts", "/containers", "/volumes", "/images", "/networks", "/stacks", "/agents")
PASSWORD = "scoped-ui-password"


def hosts_shown(page: Page) -> set[str]:
    """Every host id the page marks on a row, a tile, a banner line or the host filter."""
    marked = page.eval_on_selector_all(
        "[data-host], [data-host-id]",
        "els => els.map(e => e.getAttribute('data-host') || e.getAttribute('data-host-id'))",
    )
    options = page.eval_on_selector_all(
        "#host-select option",
        "els => els.map(e => e.value).filter(v => v !== 'all' && !v.startsWith('tag:'))",
    )
    return {str(x) for x in [*marked, *options]}


def test_scoped_user_sees_only_prod_hosts_in_every_page(
    ui: Ui, make_context: Callable[..., BrowserContext], console: Console
) -> None:
    console.allow("status of 404")  # the out-of-scope pages below are 404s on purpose
    admin = ui.server.api
    previous = admin.host(ui.alpha_id)
    assert previous is not None
    admin.call("PUT", f"/api/v1/hosts/{ui.alpha_id}/tags", {"tags": ["prod"]})
    status, _ = admin.call(
        "POST",
        "/api/v1/roles",
        {
            "name": "ui-prod-viewer",
            "permissions": ["hosts.view", "containers.view", "stacks.view"],
            "scope": "prod",
        },
    )
    assert status == 201
    status, _ = admin.call(
        "POST", "/api/v1/users", {"username": "ui-pat", "password": PASSWORD, "roles": ["ui-prod-viewer"]}
    )
    assert status == 201
    status, login = Api(ui.server.url).call(
        "POST", "/api/v1/auth/login", {"username": "ui-pat", "password": PASSWORD}
    )
    assert status == 200
    ui.run(0, "rbac-local-c")
    ui.run(1, "rbac-alpha-c")
    hidden_agents = [a["name"] for a in admin.get("/api/v1/agents")["items"] if a["id"] != ui.alpha_id]

    context = make_context(login=False)
    context.add_cookies(
        [{"name": "dockmesh_session", "value": login["token"], "url": ui.server.url, "httpOnly": True}]
    )
    page = context.new_page()
    try:
        for path in LIST_PAGES:
            page.goto(path)
            expect(page.locator("main, body").first).to_be_visible()
            shown = hosts_shown(page)
            assert shown <= {ui.alpha_id}, (path, shown)
            text = page.locator("body").inner_text()
            assert "rbac-local-c" not in text, path
            for name in hidden_agents:
                assert f"{name}\n" not in text, (path, name)
                assert f"{name}\t" not in text, (path, name)
        page.goto("/containers")
        expect(page.locator("#containers-table")).to_contain_text("rbac-alpha-c")
        page.goto("/")
        expect(page.locator("[data-host-id]")).to_have_count(1)
        page.goto("/hosts")
        expect(page.locator("tr[data-host-id]")).to_have_count(1)

        # The other host's pages are a 404, like a host that does not exist.
        for path in ("/hosts/local", "/containers/local/rbac-local-c", "/containers?host=local"):
            response = page.goto(path)
            assert response is not None
            assert response.status == 404, path

        # Untag alpha: on the very next load the user reaches no host at all.
        admin.call("PUT", f"/api/v1/hosts/{ui.alpha_id}/tags", {"tags": []})
        page.goto("/containers")
        expect(page.locator("#containers-table")).to_have_count(0)
        assert hosts_shown(page) == set()
        page.goto("/")
        expect(page.locator("[data-host-id]")).to_have_count(0)
    finally:
        admin.call("PUT", f"/api/v1/hosts/{ui.alpha_id}/tags", {"tags": previous["tags"]})
        for name in ("rbac-local-c",):
            ui.fleet.engine(0).docker("rm", "-f", name)
        ui.fleet.engine(1).docker("rm", "-f", "rbac-alpha-c")
