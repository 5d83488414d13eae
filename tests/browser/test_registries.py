"""Registries page: list, add (a bad scope says where, the password never comes back), remove."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, expect

from tests.integration.harness import ServerProc

pytestmark = [pytest.mark.browser]

SECRET = "ui-Pa55-never-rendered"


def test_registries_page_adds_and_removes_without_rendering_the_secret(
    make_context: Callable[..., BrowserContext], server_factory: Callable[..., ServerProc]
) -> None:
    server = server_factory()
    page = make_context(server=server).new_page()
    page.goto("/")
    page.get_by_role("link", name="Registries").click()
    expect(page.locator("#registries-table")).to_contain_text("No credentials yet")

    form = page.locator("#registry-add")
    form.locator("input[name=url]").fill("https://ghcr.io/acme/")
    form.locator("input[name=username]").fill("bot")
    form.locator("input[name=password]").fill(SECRET)
    form.locator("input[name=scope]").fill("prod and (")
    form.get_by_role("button", name="Add credential").click()
    expect(page.get_by_role("alert")).to_contain_text("position")
    # The form comes back with what was typed, except the password.
    expect(form.locator("input[name=url]")).to_have_value("https://ghcr.io/acme/")
    expect(form.locator("input[name=password]")).to_have_value("")
    assert SECRET not in page.content()
    assert server.api.get("/api/v1/registries")["items"] == []

    form.locator("input[name=password]").fill(SECRET)
    form.locator("input[name=scope]").fill("prod")
    form.get_by_role("button", name="Add credential").click()
    row = page.locator("#registries-table tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("ghcr.io/acme")
    expect(row).to_contain_text("bot")
    expect(row).to_contain_text("prod")
    assert SECRET not in page.content()
    (made,) = server.api.get("/api/v1/registries")["items"]
    assert made["scope"] == "prod"

    row.get_by_role("button", name="Remove ghcr.io/acme (bot)").click()
    expect(page.locator("#registries-table")).to_contain_text("No credentials yet")
    assert server.api.get("/api/v1/registries")["items"] == []
