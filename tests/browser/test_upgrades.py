"""The Upgrades page: server version, version skew and per-host state; starting a rollout from its form
(refused with the form's error under the automatic policy or with a bad wave) and following it live."""

from __future__ import annotations

import os
import re

import pytest
from playwright.sync_api import Page, expect

from dockmesh import __version__
from dockmesh.server.artifact import artifact_name
from tests.browser.conftest import Console, Ui

pytestmark = [pytest.mark.browser, pytest.mark.docker]


def test_upgrades_page_starts_and_follows_a_rollout(page: Page, ui: Ui, console: Console) -> None:
    console.allow("status of 400")  # chromium logs the refused forms; the page says why
    api = ui.server.api
    page.goto("/upgrades")
    expect(page.locator("#upgrade-summary")).to_contain_text(__version__)
    expect(page.locator("#upgrade-skew")).to_contain_text(f"{__version__} (server)")
    expect(page.locator(f"#upgrade-hosts tr[data-host='{ui.alpha_id}']")).to_contain_text("alpha")
    expect(page.locator("#rollout-form")).to_be_visible()

    # Under the automatic policy the form says why it cannot start one.
    assert api.get("/api/v1/upgrades")["policy"] == "automatic"
    page.fill("#rollout-waves", "100%")
    page.fill("#rollout-hosts", f"id:{ui.alpha_id}")
    page.locator("#rollout-start").click()
    expect(page.locator("#rollout-error")).to_contain_text("set it to manual first")
    expect(page.locator("#rollout-waves")).to_have_value("100%")  # the draft is kept

    # A stand-in artifact lets the server offer a build; alpha already runs this version: it is `current`.
    artifact = ui.server.base / "artifacts" / artifact_name(os.uname().machine)
    artifact.write_bytes(b"#!/bin/sh\nexit 3\n")
    try:
        assert api.call("PUT", "/api/v1/upgrades/policy", {"policy": "manual"})[0] == 200
        page.fill("#rollout-waves", "tag:canary, 150%")
        page.locator("#rollout-start").click()
        expect(page.locator("#rollout-error")).to_contain_text("wave 2: a percentage is 1%-100%")

        page.fill("#rollout-waves", "50%, 100%")
        page.locator("#rollout-start").click()
        expect(page).to_have_url(re.compile(r"/upgrades$"))
        (started,) = [
            r for r in api.get("/api/v1/upgrades/rollouts")["items"] if r["hosts"] == f"id:{ui.alpha_id}"
        ]
        card = page.locator(f".rollout[data-rollout='{started['id']}']")
        expect(card).to_have_attribute("data-status", "completed", timeout=30_000)
        expect(card.locator(".rollout-waves tr[data-wave='0']")).to_contain_text("1 current")
        expect(card.locator(f".rollout-host[data-host='{ui.alpha_id}']")).to_have_attribute(
            "data-state", "current"
        )
        expect(card.locator(".rollout-waves tr[data-wave='1']")).to_contain_text("no hosts")
        expect(card.locator(".rollout-cancel")).to_have_count(0)
    finally:
        artifact.unlink(missing_ok=True)
        api.call("PUT", "/api/v1/upgrades/policy", {"policy": "automatic"})
