"""Volumes, networks and images pages: create and remove a volume, the prune preview before confirming."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import IMAGE, Console, Ui
from tests.fleet import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.docker]


def volumes(ui: Ui, engine: int) -> set[str]:
    return set(ui.fleet.engine(engine).docker("volume", "ls", "--format", "{{.Name}}").stdout.split())


def test_create_and_remove_a_volume(page: Page, ui: Ui, console: Console) -> None:
    console.allow("status of 409")  # chromium logs the refused DELETE; the page says why
    page.goto(f"/volumes?host={ui.alpha_id}")
    form = page.locator("#create-form")
    expect(form.locator("select[name=host]")).to_have_value(ui.alpha_id)
    form.locator("input[name=name]").fill("ui-data")
    form.get_by_role("button", name="Create").click()
    row = page.locator("#volumes-table tr[data-ref='ui-data']")
    expect(row).to_have_count(1)
    expect(page.locator("#notice")).to_contain_text("ui-data created on alpha")
    assert "ui-data" in volumes(ui, 1)
    assert "ui-data" not in volumes(ui, 0)

    # In use: the page says so and the volume stays.
    ui.fleet.engine(1).docker("create", "--network", "none", "--name", "ui-user", "-v", "ui-data:/d", IMAGE)
    row.get_by_role("button", name="Remove").click()
    page.locator("#confirm-ok").click()
    expect(page.locator("#notice")).to_contain_text("in use")
    assert "ui-data" in volumes(ui, 1)
    ui.fleet.engine(1).docker("rm", "ui-user")

    row.get_by_role("button", name="Remove").click()
    expect(page.locator("#confirm-text")).to_contain_text("Remove volume ui-data?")
    page.locator("#confirm-ok").click()
    expect(page.locator("#volumes-table tr[data-ref='ui-data']")).to_have_count(0)
    assert "ui-data" not in volumes(ui, 1)


def test_a_bad_volume_name_is_refused_by_the_form_and_the_api(page: Page, ui: Ui) -> None:
    page.goto(f"/volumes?host={ui.alpha_id}")
    name = page.locator("#create-form input[name=name]")
    name.fill("../x")
    assert name.evaluate("el => el.validity.valid") is False  # the browser's check, before any request
    status, err = ui.server.api.call("POST", f"/api/v1/hosts/{ui.alpha_id}/volumes", {"name": "../x"})
    assert (status, err["error"]["code"]) == (400, "invalid_name")


def test_prune_shows_the_preview_before_removing(page: Page, ui: Ui) -> None:
    eng = ui.fleet.engine(1)
    for name in ("ui-old-1", "ui-old-2", "ui-kept"):
        eng.docker("volume", "create", name)
    eng.docker("create", "--network", "none", "--name", "ui-keeper", "-v", "ui-kept:/k", IMAGE)
    page.goto(f"/volumes?host={ui.alpha_id}")
    page.get_by_role("button", name="Preview prune…").click()
    preview = page.locator("#prune-result")
    expect(preview).to_be_visible()
    expect(page.locator("#prune-title")).to_have_text("Prune preview: 2 volumes would be removed")
    listed = page.locator("#prune-table tbody tr td:nth-child(2)").all_inner_texts()
    assert listed == ["ui-old-1", "ui-old-2"]
    assert {"ui-old-1", "ui-old-2", "ui-kept"} <= volumes(ui, 1)  # the preview removed nothing

    page.get_by_role("button", name="Remove these").click()
    expect(page.locator("#prune-title")).to_have_text("Pruned 2 volumes")
    wait_for(lambda: not ({"ui-old-1", "ui-old-2"} & volumes(ui, 1)), 10)
    assert "ui-kept" in volumes(ui, 1)
    expect(page.locator("#volumes-table tr[data-ref='ui-old-1']")).to_have_count(0)
    expect(page.get_by_role("button", name="Remove these")).to_be_hidden()


def test_pull_shows_progress_and_the_result(page: Page, ui: Ui) -> None:
    eng = ui.fleet.engine(1)
    ref = f"{ui.fleet.open_registry().addr}/dm/ui-pull:1"
    # An image of its own (one tag, so its row removes it by that tag), with a layer to download.
    eng.docker(
        "run", "--network", "none", "--name", "ui-blob", IMAGE,
        "dd", "if=/dev/urandom", "of=/blob", "bs=1024", "count=300",
    )  # fmt: skip
    eng.docker("commit", "ui-blob", ref)
    eng.docker("rm", "ui-blob")
    eng.docker("push", ref)
    eng.docker("rmi", ref)
    page.goto(f"/images?host={ui.alpha_id}")
    form = page.locator("#pull-form")
    form.locator("input[name=image]").fill(ref)
    form.get_by_role("button", name="Pull").click()
    expect(page.locator("#pull-status")).to_have_text(f"{ref}: pulled on 1 host(s)", timeout=30_000)
    expect(page.locator("#pull-progress progress")).to_have_attribute("value", "100")
    assert eng.image_exists(ref)
    row = page.locator(f"#images-table tr[data-ref='{ref}']")
    expect(row).to_have_count(1)
    row.get_by_role("button", name="Remove").click()
    page.locator("#confirm-ok").click()
    expect(page.locator(f"#images-table tr[data-ref='{ref}']")).to_have_count(0)
    assert not eng.image_exists(ref)
