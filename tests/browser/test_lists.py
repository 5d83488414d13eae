"""Fan-out lists: the host filter (All hosts, one host, a tag), the host column, the banner naming hosts that
did not answer, and container row actions."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import IMAGE, Ui
from tests.fleet import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.docker]

STACK = {"com.docker.compose.project": "shop", "com.docker.compose.service": "web"}


def rows(page: Page) -> list[tuple[str, str]]:
    """(host id or '', container name) of every row, as the page shows them."""
    result = []
    for row in page.locator("#containers-table tbody tr").all():
        host_cell = row.locator("td.host-cell")
        host = host_cell.get_attribute("data-host-id") if host_cell.count() else ""
        result.append((host or "", row.locator("td.name").inner_text().strip()))
    return result


def test_filter_containers_by_host_tag_and_all_hosts(page: Page, ui: Ui) -> None:
    ui.run(0, "local-web")
    ui.run(1, "alpha-web")
    ui.run(1, "alpha-db")
    ui.server.api.call("PUT", f"/api/v1/hosts/{ui.alpha_id}/tags", {"tags": ["prod"]})

    page.goto("/containers")
    select = page.locator("#host-select")
    expect(select).to_have_value("all")  # All hosts is the default
    expect(page.locator("#containers-table thead")).to_contain_text("Host")
    assert rows(page) == [(ui.alpha_id, "alpha-db"), (ui.alpha_id, "alpha-web"), ("local", "local-web")]
    host_names = page.locator("#containers-table td.host-cell").all_inner_texts()
    assert host_names == ["alpha", "alpha", "local"]

    select.select_option(label="alpha")
    expect(page).to_have_url(f"{ui.server.url}/containers?host={ui.alpha_id}")
    expect(page.locator("#containers-table thead")).not_to_contain_text("Host")
    assert rows(page) == [("", "alpha-db"), ("", "alpha-web")]

    page.locator("#host-select").select_option("tag:prod")
    expect(page).to_have_url(f"{ui.server.url}/containers?host=tag%3Aprod")
    assert rows(page) == [(ui.alpha_id, "alpha-db"), (ui.alpha_id, "alpha-web")]

    page.locator("#host-select").select_option(label="All hosts")
    expect(page).to_have_url(f"{ui.server.url}/containers?host=all")
    assert [name for _, name in rows(page)] == ["alpha-db", "alpha-web", "local-web"]
    expect(page.locator("#host-banner")).to_have_count(0)


def test_banner_names_a_host_that_did_not_answer(page: Page, ui: Ui) -> None:
    gone = ui.add_agent("gamma")
    gone.stop()
    wait_for(lambda: ui.server.api.host(gone.agent_id or "")["status"] == "offline", 10)  # type: ignore[index]
    ui.run(1, "still-here")
    page.goto("/containers")
    banner = page.locator("#host-banner")
    expect(banner).to_contain_text("host gamma: offline")
    expect(banner).not_to_contain_text("alpha")
    assert ("", "still-here") not in rows(page)
    assert (ui.alpha_id, "still-here") in rows(page)  # the others still answer
    page.goto("/images")
    expect(page.locator("#host-banner")).to_contain_text("host gamma: offline")
    ui.server.api.post(f"/api/v1/agents/{gone.agent_id}/revoke")


def test_stop_start_restart_remove_from_the_list(page: Page, ui: Ui) -> None:
    ui.run(1, "worker")
    page.goto(f"/containers?host={ui.alpha_id}")
    row = page.locator("#containers-table tr[data-container='worker']")
    expect(row.locator(".state")).to_have_text("Running")

    row.get_by_role("button", name="Stop").click()
    expect(row.locator(".state")).to_have_text("Exited", timeout=15_000)
    assert ui.state(1, "worker") == "exited"

    row.get_by_role("button", name="Start").click()
    expect(row.locator(".state")).to_have_text("Running", timeout=15_000)
    assert ui.state(1, "worker") == "running"

    started = ui.fleet.engine(1).docker("inspect", "-f", "{{.State.StartedAt}}", "worker").stdout
    row.get_by_role("button", name="Restart").click()
    wait_for(
        lambda: (
            ui.fleet.engine(1).docker("inspect", "-f", "{{.State.StartedAt}}", "worker").stdout != started
        ),
        15,
    )
    expect(row.locator(".state")).to_have_text("Running", timeout=15_000)

    row.get_by_role("button", name="Remove").click()
    page.locator("dialog#confirm").get_by_role("button", name="Remove").click()
    expect(row).to_have_count(0, timeout=15_000)
    assert "worker" not in ui.fleet.engine(1).docker("ps", "-a", "--format", "{{.Names}}").stdout
    expect(page.locator("#empty-hint")).to_be_visible()


def test_stacks_volumes_images_networks_lists(page: Page, ui: Ui) -> None:
    ui.run(1, "shop-web-1", labels=STACK)
    engine = ui.fleet.engine(1)
    engine.docker("volume", "create", "--label", "com.docker.compose.project=shop", "shop-data")
    engine.docker("network", "create", "--internal", "--label", "com.docker.compose.project=shop", "shop-net")
    expectations = {
        "/stacks": ("#stacks-table", ["shop", "web", "1 / 1"]),
        "/volumes": ("#volumes-table", ["shop-data", "local", "shop"]),
        "/images": ("#images-table", ["local/busybox:1"]),
        "/networks": ("#networks-table", ["shop-net", "bridge", "shop"]),
    }
    for path, (table, texts) in expectations.items():
        page.goto(path)
        row = page.locator(f"{table} tbody tr").filter(
            has=page.locator(f"td.host-cell[data-host-id='{ui.alpha_id}']")
        )
        row = row.filter(has_text=texts[0])
        expect(row).to_have_count(1)
        for text in texts:
            expect(row).to_contain_text(text)
        page.locator("#host-select").select_option("local")
        expect(page).to_have_url(f"{ui.server.url}{path}?host=local")
        expect(page.locator("td.host-cell")).to_have_count(0)  # one host: no host column
        # alpha's objects are filtered out; local has its own copy of the image
        expect(page.locator("tbody tr", has_text=texts[0])).to_have_count(1 if path == "/images" else 0)


def test_a_container_started_on_a_host_appears_in_the_open_page(page: Page, ui: Ui) -> None:
    # Page time is fake and advanced by hand: the row must come from the server's push, long before
    # the page's own 5 s refresh could fire.
    page.clock.install()
    page.goto("/containers")
    expect(page.locator("#list-body[data-live='1']")).to_have_count(1)
    page.clock.pause_at(page.evaluate("Date.now()") + 100)
    advanced = 0

    def shown() -> bool:
        nonlocal advanced
        page.clock.run_for(100)
        advanced += 100
        return (ui.alpha_id, "pushed-web") in rows(page)

    ui.fleet.engine(1).docker(
        "run", "-d", "--network", "none", "--name", "pushed-web", IMAGE, "sleep", "600"
    )  # fmt: skip
    wait_for(shown, 20, interval=0.1, message="the new container never appeared in the open page")
    assert advanced < 5000  # page time: the periodic refresh never ran
