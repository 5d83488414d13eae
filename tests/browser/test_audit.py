"""The audit page: entries with the API's filters, and the chain check naming an edited row."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, expect

from tests.integration.harness import Api, ServerProc

pytestmark = [pytest.mark.browser]


def test_audit_page_filters_and_verifies_the_chain(
    make_context: Callable[..., BrowserContext], server_factory: Callable[..., ServerProc]
) -> None:
    server = server_factory()
    anonymous = Api(server.url, context=server.ssl_context())
    status, _ = anonymous.call("POST", "/api/v1/auth/login", {"username": "admin", "password": "guess"})
    assert status == 401
    page = make_context(server=server).new_page()
    page.goto("/hosts")
    page.get_by_role("link", name="Audit").click()
    expect(page.locator("h1")).to_have_text("Audit log")
    rows = page.locator("#audit-table tbody tr")
    expect(rows.filter(has_text="denied")).to_have_count(1)
    expect(rows.filter(has_text="auth.login")).to_have_count(2)

    form = page.locator("#audit-filters")
    form.locator("select[name=outcome]").select_option("denied")
    form.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(f"{server.url}/audit?actor=&action=&host=&outcome=denied&since=&until=")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td.outcome")).to_have_text("denied")
    expect(rows.first).to_contain_text("admin")

    form.locator("input[name=since]").fill("tomorrow")
    form.get_by_role("button", name="Filter").click()
    expect(page.locator("#audit-error")).to_contain_text("'since' must be epoch seconds or an ISO 8601 time")

    page.get_by_role("button", name="Verify chain").click()
    expect(page.locator("#audit-verdict")).to_have_text("Chain intact: 2 rows verify.")
    expect(page.locator("#audit-head code")).to_have_text(re.compile(r"^[0-9a-f]{64}$"))

    db = sqlite3.connect(server.data_dir / "dockmesh.db")
    try:
        (victim,) = db.execute("SELECT id FROM audit WHERE outcome = 'denied'").fetchone()
        db.execute("UPDATE audit SET actor = 'someone-else' WHERE id = ?", (victim,))
        db.commit()
    finally:
        db.close()
    page.get_by_role("button", name="Verify chain").click()
    expect(page.locator("#audit-verdict")).to_contain_text(f"Chain broken at row {victim} (")
    expect(page.locator("#audit-verdict")).to_contain_text("edited")
