"""Every main page works at 1280x800 and at 390x844: no horizontal overflow, the nav collapses on phones."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import DESKTOP, PHONE, Ui

pytestmark = [pytest.mark.browser, pytest.mark.docker]

LONG = "a-container-with-a-rather-long-name-that-could-push-the-layout-sideways"


def overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than the window (0 when nothing scrolls sideways)."""
    return int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
def test_main_pages_fit_the_window(
    make_context: Callable[..., BrowserContext], ui: Ui, viewport: dict[str, int]
) -> None:
    ui.run(1, LONG, labels={"com.docker.compose.project": "shop", "com.docker.compose.service": "web"})
    ui.fleet.engine(1).docker("volume", "create", "data-" + LONG)
    page = make_context(viewport=viewport).new_page()
    paths = [
        "/",
        "/agents",
        f"/agents/{ui.alpha_id}",
        "/agents/new",
        "/hosts",
        f"/hosts/{ui.alpha_id}",
        "/containers",
        f"/containers/{ui.alpha_id}/{LONG}",
        "/stacks",
        "/volumes",
        "/images",
        "/networks",
        "/registries",
    ]
    for path in paths:
        page.goto(path)
        expect(page.locator("h1").first).to_be_visible()
        assert overflow(page) <= 0, (path, overflow(page))
    # The enrolment page, with its long install command.
    page.goto("/agents/new")
    page.fill("input[name=name]", "layout-probe")
    page.get_by_role("button", name="Create agent").click()
    expect(page.locator("#install-command")).to_be_visible()
    assert overflow(page) <= 0, ("enrol", overflow(page))
    probe = page.locator("#enrol").get_attribute("data-agent-id")
    # The terminal fits too.
    page.goto(f"/containers/{ui.alpha_id}/{LONG}")
    page.get_by_role("button", name="Open terminal").click()
    expect(page.locator("#term-status")).to_have_text("connected")
    assert overflow(page) <= 0, ("terminal", overflow(page))

    nav = page.locator("#nav")
    toggle = page.get_by_role("button", name="Menu")
    if viewport == PHONE:
        expect(nav).to_be_hidden()
        toggle.click()
        expect(nav.get_by_role("link", name="Containers")).to_be_visible()
        expect(toggle).to_have_attribute("aria-expanded", "true")
        nav.get_by_role("link", name="Hosts").click()
        expect(page).to_have_url(f"{ui.server.url}/hosts")
        expect(page.locator("#nav")).to_be_hidden()
    else:
        expect(toggle).to_be_hidden()
        expect(nav.get_by_role("link", name="Containers")).to_be_visible()
    ui.server.api.post(f"/api/v1/agents/{probe}/revoke")


def test_login_page_fits_a_phone(make_context: Callable[..., BrowserContext]) -> None:
    page = make_context(viewport=PHONE, login=False).new_page()
    page.goto("/login")
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    assert overflow(page) <= 0
