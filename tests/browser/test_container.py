"""The container page: live logs (with reconnect), live stats chart, exec terminal in xterm.js."""

from __future__ import annotations

import secrets

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Ui
from tests.integration.spine import wait_online

pytestmark = [pytest.mark.browser, pytest.mark.docker]

CHATTER = ["sh", "-c", "echo started; trap 'exit 0' TERM; while true; do sleep 1; done"]


def say(ui: Ui, engine: int, container: str, text: str) -> None:
    """Make the container write a line to its own stdout, now."""
    ui.fleet.engine(engine).docker("exec", container, "sh", "-c", f"echo {text} > /proc/1/fd/1")


def open_container(page: Page, ui: Ui, name: str) -> None:
    page.goto(f"/containers?host={ui.alpha_id}")
    page.locator("#containers-table").get_by_role("link", name=name).click()
    expect(page.locator("h1")).to_contain_text(name)


def test_logs_show_a_line_the_container_just_wrote_and_survive_a_dropped_link(page: Page, ui: Ui) -> None:
    ui.run(1, "chatter", *CHATTER)
    open_container(page, ui, "chatter")
    logs = page.locator("#logs")
    expect(logs).to_contain_text("started")
    expect(page.locator("#logs-status")).to_have_text("live")
    first = f"first-{secrets.token_hex(4)}"
    say(ui, 1, "chatter", first)
    expect(logs).to_contain_text(first)

    ui.alpha.stop()  # the agent's link drops; the page keeps following on its own
    expect(page.locator("#logs-status")).to_contain_text("reconnecting", timeout=10_000)
    ui.alpha.start()
    wait_online(ui.server, ui.alpha_id)
    expect(page.locator("#logs-status")).to_have_text("live", timeout=20_000)
    second = f"second-{secrets.token_hex(4)}"
    say(ui, 1, "chatter", second)
    expect(logs).to_contain_text(second, timeout=10_000)
    text = logs.inner_text()
    assert text.count(first) == 1  # the reconnect did not repeat what was already shown
    assert text.count("started") == 1

    page.check("#logs-timestamps")
    expect(logs.locator(".ts").first).to_be_visible()
    page.uncheck("#logs-follow")
    expect(page.locator("#logs-status")).to_have_text("paused")
    third = f"third-{secrets.token_hex(4)}"
    say(ui, 1, "chatter", third)
    page.wait_for_timeout(1500)
    expect(logs).not_to_contain_text(third)
    page.check("#logs-follow")
    expect(logs).to_contain_text(third)  # resuming catches up without duplicates
    assert logs.inner_text().count(second) == 1


def test_stats_chart_draws_live_samples(page: Page, ui: Ui) -> None:
    ui.run(1, "busy", "sh", "-c", "while true; do :; done")
    open_container(page, ui, "busy")
    expect(page.locator("#stats-status")).to_have_text("live", timeout=15_000)
    chart = page.locator("#stats-chart")
    expect(chart).to_have_attribute("data-samples", "3", timeout=15_000)
    path = chart.locator("path.cpu").get_attribute("d") or ""
    assert path.count("L") >= 2  # a line through several samples
    expect(page.locator("#stats-cpu")).not_to_have_text("—")
    cpu = float(page.locator("#stats-cpu").inner_text().rstrip("%"))
    assert cpu > 5  # a busy loop shows up


def terminal_lines(page: Page) -> list[str]:
    return [line.strip() for line in page.locator("#terminal .xterm-rows").inner_text().splitlines()]


def test_exec_terminal_runs_echo_and_follows_the_window_size(page: Page, ui: Ui) -> None:
    ui.run(1, "shell")
    open_container(page, ui, "shell")
    page.get_by_role("button", name="Open terminal").click()
    expect(page.locator("#term-status")).to_have_text("connected")
    expect(page.locator("#terminal .xterm-rows")).to_contain_text("#")  # the shell's prompt
    page.locator("#terminal").click()
    page.keyboard.type("echo hi")
    page.keyboard.press("Enter")
    rows_text = "document.querySelector('#terminal .xterm-rows').innerText"
    page.wait_for_function(f"() => {rows_text}.split('\\n').some(l => l.trim() === 'hi')")
    assert "hi" in terminal_lines(page)  # the output line, not just the echoed command

    term = page.locator("#terminal")
    cols, rows = term.get_attribute("data-cols"), term.get_attribute("data-rows")
    page.keyboard.type("stty size")
    page.keyboard.press("Enter")
    expect(page.locator("#terminal .xterm-rows")).to_contain_text(f"{rows} {cols}")

    page.set_viewport_size({"width": 900, "height": 700})
    expect(term).not_to_have_attribute("data-cols", cols or "")
    new_cols, new_rows = term.get_attribute("data-cols"), term.get_attribute("data-rows")
    assert new_cols is not None
    assert int(new_cols) < int(cols or 0)
    page.keyboard.type("clear; stty size")
    page.keyboard.press("Enter")
    expect(page.locator("#terminal .xterm-rows")).to_contain_text(f"{new_rows} {new_cols}")

    page.keyboard.type("exit 3")
    page.keyboard.press("Enter")
    expect(page.locator("#terminal .xterm-rows")).to_contain_text("[process exited with code 3]")
    expect(page.locator("#term-status")).to_have_text("closed")


def test_actions_on_the_container_page(page: Page, ui: Ui) -> None:
    ui.run(1, "solo")
    open_container(page, ui, "solo")
    expect(page.locator("#container-state")).to_contain_text("Running")
    page.locator("#detail-actions").get_by_role("button", name="Stop").click()
    expect(page.locator("#container-state")).to_contain_text("Exited", timeout=15_000)
    expect(page.locator("#stats-status")).to_have_text("not running", timeout=10_000)
    page.locator("#detail-actions").get_by_role("button", name="Start").click()
    expect(page.locator("#container-state")).to_contain_text("Running", timeout=15_000)
    page.locator("#detail-actions").get_by_role("button", name="Remove").click()
    page.locator("dialog#confirm").get_by_role("button", name="Remove").click()
    expect(page).to_have_url(f"{ui.server.url}/containers?host={ui.alpha_id}")
    expect(page.locator("#containers-table tr[data-container='solo']")).to_have_count(0)
