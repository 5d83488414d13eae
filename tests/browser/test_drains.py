"""Draining a host from the browser: host page → Drain, the destination selector previewed as a dry-run
plan, then started and followed on the drain page until its summary (real agents, engines, migration)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Ui
from tests.fleet import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.docker]

STACK = """services:
  app:
    image: local/busybox:1
    command: ["sh", "-c", "echo kept > /data/seed; trap 'exit 0' TERM; while true; do sleep 1; done"]
    network_mode: none
    volumes: [data:/data]
volumes:
  data:
"""


def test_drain_started_and_followed_from_the_ui(page: Page, ui: Ui) -> None:
    source = ui.add_agent("drain-src", engine=2)
    dest = ui.add_agent("drain-dst", engine=3)
    assert source.agent_id
    assert dest.agent_id
    api = ui.server.api
    assert api.call("PUT", f"/api/v1/hosts/{dest.agent_id}/tags", {"tags": ["drain-dest"]})[0] == 200
    assert api.call("PUT", "/api/v1/stacks/moving", {"compose": STACK})[0] in (200, 201)
    status, deployed = api.call("POST", "/api/v1/stacks/moving/deploy", {"host": source.agent_id})
    assert status == 202, deployed
    wait_for(
        lambda: api.get(f"/api/v1/deploys/{deployed['id']}")["state"] == "done",
        120,
        message="deploy unsettled",
    )

    page.goto(f"/hosts/{source.agent_id}")
    page.locator("#host-drain").click()
    expect(page.locator("#drain-form")).to_be_visible()
    page.locator("#drain-destinations").fill("drain-dest")
    page.locator("#drain-preview").click()
    row = page.locator('#drain-plan tr[data-stack="moving"]')
    expect(row).to_contain_text("drain-dst")
    assert api.host(source.agent_id)["cordoned"] is False  # type: ignore[index]  # the preview touched nothing

    page.locator("#drain-start").click()
    expect(page).to_have_url(re.compile(r"/drains/[0-9a-f]{32}$"))
    expect(page.locator("#drain-live")).to_be_visible()
    expect(page.locator("#drain-status")).to_have_attribute("data-status", "done", timeout=180_000)
    expect(page.locator('#drain-stacks tr[data-stack="moving"]')).to_have_attribute("data-state", "done")
    expect(page.locator("#drain-summary")).to_contain_text("Moved 1")
    assert api.host(source.agent_id)["cordoned"] is True  # type: ignore[index]
    placed = api.get("/api/v1/stacks/moving")["hosts"]
    assert [p["host"] for p in placed] == [dest.agent_id]
