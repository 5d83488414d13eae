"""Migrate a stack from its page and follow it live; cordoned hosts are marked on the dashboard (issue 13)."""

from __future__ import annotations

import secrets

from playwright.sync_api import Page, expect

from tests.browser.conftest import Ui
from tests.fleet import wait_for

COMPOSE = """services:
  app:
    image: local/busybox:1
    command: ["sleep", "600"]
    network_mode: none
    stop_grace_period: 1s
    volumes: ["data:/data"]
volumes:
  data: {}
"""


def test_migrate_from_the_stack_page_and_follow_it(page: Page, ui: Ui) -> None:
    name = f"mv{secrets.token_hex(3)}"
    api = ui.server.api
    assert api.call("PUT", f"/api/v1/stacks/{name}", {"compose": COMPOSE})[0] == 200
    deployed = api.post(f"/api/v1/stacks/{name}/deploy", {"host": ui.alpha_id}, expect=202)
    wait_for(lambda: api.get(f"/api/v1/deploys/{deployed['id']}")["state"] == "done", 90)
    volume = f"{name}_data"
    run = ["run", "--rm", "--network", "none", "-v", f"{volume}:/data", "local/busybox:1", "sh", "-c"]
    ui.fleet.engine(1).docker(*run, "echo carried > /data/note")
    try:
        page.goto(f"/stacks/{name}")
        page.locator("#migrate-host").select_option("local")
        page.get_by_role("button", name="Migrate with volumes").click()
        page.wait_for_url(f"{ui.server.url}/migrations/*")
        expect(page.locator("#migration-state")).to_have_text("done", timeout=180_000)
        expect(page.locator("#migration-phase")).to_have_text("finished")
        expect(page.locator("#migration-kept")).to_contain_text("kept until")
        assert ui.fleet.engine(0).docker(*run, "cat /data/note").stdout == "carried\n"
    finally:
        api.call("DELETE", f"/api/v1/stacks/{name}?host=local&volumes=1")
        api.call("DELETE", f"/api/v1/stacks/{name}?host={ui.alpha_id}&volumes=1")
        ui.fleet.engine(1).docker("volume", "rm", "-f", volume, check=False)
        api.call("DELETE", f"/api/v1/stacks/{name}")


def test_a_refused_migration_shows_the_preflight_problem(page: Page, ui: Ui) -> None:
    name = f"mv{secrets.token_hex(3)}"
    api = ui.server.api
    assert api.call("PUT", f"/api/v1/stacks/{name}", {"compose": COMPOSE})[0] == 200
    deployed = api.post(f"/api/v1/stacks/{name}/deploy", {"host": ui.alpha_id}, expect=202)
    wait_for(lambda: api.get(f"/api/v1/deploys/{deployed['id']}")["state"] == "done", 90)
    ui.fleet.engine(0).docker("volume", "create", f"{name}_data")  # in the way on the destination
    try:
        page.goto(f"/stacks/{name}")
        page.locator("#migrate-host").select_option("local")
        page.get_by_role("button", name="Migrate with volumes").click()
        expect(page.locator("#action-error")).to_contain_text("already exists on 'local'")
        assert api.get(f"/api/v1/stacks/{name}")["hosts"][0]["host"] == ui.alpha_id
    finally:
        ui.fleet.engine(0).docker("volume", "rm", "-f", f"{name}_data", check=False)
        api.call("DELETE", f"/api/v1/stacks/{name}?host={ui.alpha_id}&volumes=1")
        api.call("DELETE", f"/api/v1/stacks/{name}")


def test_cordoned_host_is_marked_on_the_dashboard_and_hosts_list(page: Page, ui: Ui) -> None:
    assert ui.server.api.call("POST", f"/api/v1/hosts/{ui.alpha_id}/cordon")[0] == 200
    try:
        page.goto("/")
        tile = page.locator(f".tile[data-host-id='{ui.alpha_id}']")
        expect(tile.locator(".tile-cordoned")).to_have_text("cordoned")
        expect(page.locator(".tile[data-host-id='local'] .tile-cordoned")).to_have_count(0)
        page.goto("/hosts")
        expect(page.get_by_text("cordoned").first).to_be_visible()
    finally:
        assert ui.server.api.call("POST", f"/api/v1/hosts/{ui.alpha_id}/uncordon")[0] == 200
