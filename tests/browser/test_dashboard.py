"""Dashboard: fleet totals for CPU, memory and disk plus a tile per host, refreshing live."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Ui

pytestmark = [pytest.mark.browser, pytest.mark.docker]


def test_dashboard_totals_and_tiles_refresh_live(page: Page, ui: Ui) -> None:
    page.goto("/")
    tiles = page.locator("#tiles .tile")
    hosts = ui.server.api.get("/api/v1/dashboard")["hosts"]
    expect(tiles).to_have_count(len(hosts))
    alpha = page.locator(f"#tiles .tile[data-host-id='{ui.alpha_id}']")
    expect(alpha).to_contain_text("alpha")
    expect(alpha).to_contain_text("Online")
    for label in ("CPU", "Memory", "Disk"):
        expect(page.locator("#totals")).to_contain_text(label)
    online = sum(1 for h in hosts if h["status"] == "online")
    expect(page.locator("#total-hosts")).to_have_text(f"{online} / {len(hosts)}")
    # The previous test's containers are gone; wait until alpha's heartbeat says so too.
    expect(alpha.locator(".tile-containers")).to_have_text("0", timeout=10_000)
    page.evaluate("window.__stillTheSamePage = true")

    ui.run(1, "dash-1")
    ui.run(1, "dash-2")
    # Heartbeats carry the counts; the page picks them up by itself.
    expect(alpha.locator(".tile-containers")).to_have_text("2", timeout=15_000)
    expect(alpha).to_contain_text("2 containers running")
    assert page.evaluate("window.__stillTheSamePage") is True
    # Read in one go (no refresh in between): the total is the sum of the tiles.
    total, tiles_sum = page.evaluate(
        """() => [
            Number(document.querySelector('#total-containers').textContent),
            [...document.querySelectorAll('.tile-containers')].reduce((n, e) => n + Number(e.textContent), 0),
        ]"""
    )
    assert total == tiles_sum >= 2
    chart = page.locator("#fleet-cpu-chart")
    expect(chart).not_to_have_attribute("data-samples", "1")  # the CPU history keeps growing
    expect(page.locator("#fleet-cpu-now")).to_contain_text("%")

    alpha.click()
    expect(page).to_have_url(f"{ui.server.url}/hosts/{ui.alpha_id}")
