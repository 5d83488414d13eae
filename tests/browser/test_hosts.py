"""Hosts: the list with status, tags, metrics and agent version; tag editing on the host page."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Ui

pytestmark = [pytest.mark.browser, pytest.mark.docker]


def test_hosts_list_shows_status_metrics_and_versions(page: Page, ui: Ui) -> None:
    page.goto("/hosts")
    row = page.locator(f"#hosts-table tr[data-host-id='{ui.alpha_id}']")
    expect(row.locator(".status")).to_have_text("Online")
    host = ui.server.api.host(ui.alpha_id)
    assert host
    expect(row).to_contain_text(host["version"])
    expect(row).to_contain_text(host["docker_version"])
    expect(row.locator("td.num").first).to_contain_text("%")
    expect(page.locator("#hosts-table tr[data-host-id='local']")).to_contain_text("this server")


def test_edit_tags_on_the_host_page(page: Page, ui: Ui) -> None:
    ui.server.api.call("PUT", f"/api/v1/hosts/{ui.alpha_id}/tags", {"tags": []})
    page.goto("/hosts")
    page.locator(f"#hosts-table tr[data-host-id='{ui.alpha_id}']").get_by_role("link", name="alpha").click()
    expect(page.locator("h1")).to_have_text("alpha")
    expect(page.locator("#host-tags")).to_have_text("No tags.")

    page.fill("#tags-input", "prod, eu-west-1 gpu")
    page.get_by_role("button", name="Save tags").click()
    expect(page.locator("#tags-saved")).to_be_visible()
    expect(page.locator("#host-tags .tag")).to_have_text(["eu-west-1", "gpu", "prod"])
    assert ui.server.api.host(ui.alpha_id)["tags"] == ["eu-west-1", "gpu", "prod"]  # type: ignore[index]

    page.fill("#tags-input", "prod, not_valid!")
    page.get_by_role("button", name="Save tags").click()
    expect(page.locator("#tag-error")).to_contain_text("not_valid!")
    expect(page.locator("#tags-input")).to_have_value("prod, not_valid!")  # the draft survives the error
    assert ui.server.api.host(ui.alpha_id)["tags"] == ["eu-west-1", "gpu", "prod"]  # type: ignore[index]

    page.fill("#tags-input", "prod")
    page.get_by_role("button", name="Save tags").click()
    expect(page.locator("#host-tags .tag")).to_have_text(["prod"])
    page.goto("/hosts")
    expect(page.locator(f"#hosts-table tr[data-host-id='{ui.alpha_id}'] .tags")).to_have_text("prod")
    page.goto("/hosts/local")
    expect(page.locator("#tag-form")).to_have_count(0)  # the server's own engine has no tags yet
