"""Agents: empty state, New agent → install command → Online by itself, detail, revoke, rotate."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import Ui
from tests.fleet import wait_for
from tests.integration.harness import ServerProc
from tests.integration.spine import wait_online

pytestmark = [pytest.mark.browser, pytest.mark.docker]

COMMAND = re.compile(
    r'curl -fsSL "(?P<url>http://[^"/]+)/install/agent\.sh\?token=(?P<token>[A-Za-z0-9_.-]+)" \| sudo bash'
)


def test_a_new_server_tells_the_user_to_add_a_first_host(
    make_context: Callable[..., BrowserContext], server_factory: Callable[..., ServerProc]
) -> None:
    bare = server_factory()  # no agents, no local engine
    page = make_context(server=bare).new_page()
    for path in ("/", "/agents", "/hosts", "/containers"):
        page.goto(path)
        cta = page.get_by_role("link", name="Add your first host")
        expect(cta).to_be_visible()
    cta.click()
    expect(page).to_have_url(f"{bare.url}/agents/new")
    page.goto("/volumes")
    expect(page.locator("#empty-hint")).to_contain_text("No volumes")


def create_agent_in_the_ui(page: Page, name: str) -> tuple[str, str]:
    """Agents → New agent → name → the install command; returns (install command, token)."""
    page.goto("/agents")
    page.get_by_role("link", name="New agent").click()
    form = page.locator("form[action='/agents/new']")
    # Only the name is asked (tags come later, on the host page).
    assert form.locator("input:not([type=hidden])").count() == 1
    form.locator("input[name=name]").fill(name)
    form.get_by_role("button", name="Create agent").click()
    command = page.locator("#install-command").inner_text().strip()
    match = COMMAND.fullmatch(command)
    assert match, command
    return command, match["token"]


def test_new_agent_shows_the_install_command_and_turns_online_by_itself(
    make_context: Callable[..., BrowserContext], ui: Ui
) -> None:
    context = make_context()
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=ui.server.url)
    page = context.new_page()
    command, token = create_agent_in_the_ui(page, "web-1")
    assert COMMAND.fullmatch(command)["url"] == ui.server.url  # type: ignore[index]
    flags = page.locator("#enrol").inner_text()
    assert "| sudo bash -s --" in flags
    assert "--as-root" in flags
    assert "--skip-docker" in flags
    assert (
        page.locator("#install-command-flags").inner_text().strip()
        == f"{command} -s -- --as-root --skip-docker"
    )
    manual = page.locator("#manual-command").inner_text()
    assert f"DOCKMESH_ENROLL_URL={ui.server.agent_url}" in manual
    assert f"DOCKMESH_TOKEN={token}" in manual

    copy = page.locator("button[data-copy=install-command]")
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == command

    expect(page.locator("#enrol-status")).to_have_text("Pending")
    listing = context.new_page()
    listing.goto("/agents")
    row = listing.locator("#agents-table tr", has_text="web-1")
    expect(row.locator(".status")).to_have_text("Pending")
    for p in (page, listing):
        p.evaluate("window.__stillTheSamePage = true")

    agent = ui.start_agent(token)
    expect(page.locator("#enrol-status")).to_have_text("Online", timeout=20_000)
    expect(row.locator(".status")).to_have_text("Online", timeout=20_000)
    expect(row).to_contain_text(ui.server.api.get("/api/v1/health")["version"])
    for p in (page, listing):
        assert p.evaluate("window.__stillTheSamePage") is True  # no reload happened
    assert agent.proc is not None
    assert agent.proc.alive
    page.get_by_role("link", name="open the host").click()
    expect(page.locator("h1")).to_have_text("web-1")


def test_agent_detail_revoke_then_rotate_and_re_enrol(page: Page, ui: Ui) -> None:
    agent = ui.add_agent("doomed")
    assert agent.agent_id
    page.goto("/agents")
    page.locator("#agents-table tr", has_text="doomed").get_by_role("link", name="doomed").click()
    expect(page.locator("#agent-status")).to_have_text("Online")
    record = ui.server.api.agent(agent.agent_id)
    expect(page.locator("#cert-serial")).to_have_text(record["cert"]["serial"])
    expect(page.locator("#cert-issued")).to_contain_text(record["cert"]["not_before"][:10])
    expect(page.locator("#cert-expires")).to_contain_text(record["cert"]["not_after"][:10])
    expect(page.locator("#agent-last-error")).to_have_text("none")

    page.get_by_role("button", name="Revoke").click()
    dialog = page.locator("dialog#confirm")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Revoke doomed?")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert ui.server.api.agent(agent.agent_id)["status"] == "online"  # cancelled: nothing happened

    page.get_by_role("button", name="Revoke").click()
    dialog.get_by_role("button", name="Revoke").click()
    expect(page.locator("#agent-status")).to_have_text("Revoked")
    assert agent.proc is not None
    assert agent.proc.wait(15) == 0  # the agent exits cleanly, for good
    expect(page.get_by_role("button", name="Revoke")).to_have_count(0)

    page.get_by_role("button", name="Rotate enrolment token").click()
    dialog.get_by_role("button", name="Rotate token").click()
    expect(page.locator("h1")).to_have_text("New enrolment token for doomed")
    match = COMMAND.fullmatch(page.locator("#install-command").inner_text().strip())
    assert match
    expect(page.locator("#enrol-status")).to_have_text("Pending")
    again = ui.start_agent(match["token"])
    expect(page.locator("#enrol-status")).to_have_text("Online", timeout=20_000)
    wait_online(ui.server, agent.agent_id)
    assert ui.server.api.agent(agent.agent_id)["cert"]["serial"] != record["cert"]["serial"]
    again.stop()
    wait_for(lambda: ui.server.api.agent(agent.agent_id)["status"] == "offline", 10)
    ui.server.api.post(f"/api/v1/agents/{agent.agent_id}/revoke")  # leave no offline host behind


PINNED = re.compile(
    r'curl -fsSL --insecure --pinnedpubkey "(?P<pin>sha256//[A-Za-z0-9+/=]{44})" '
    r'"(?P<url>https://[^"/]+)/install/agent\.sh\?token=(?P<token>[A-Za-z0-9_.-]+)" \| sudo bash'
)


def test_on_https_the_page_shows_the_pinned_command_the_api_gives(
    make_context: Callable[..., BrowserContext], server_factory: Callable[..., ServerProc]
) -> None:
    secure = server_factory(https=True, bind="0.0.0.0")  # bound wide; only 127.0.0.1 is dialled
    page = make_context(server=secure).new_page()
    page.goto("/agents/new")
    page.locator("input[name=name]").fill("pinned")
    page.get_by_role("button", name="Create agent").click()
    command = page.locator("#install-command").inner_text().strip()
    match = PINNED.fullmatch(command)
    assert match, command
    assert match["url"] == secure.url
    # Byte for byte what the API answers for the same token (the CLI prints the API's field).
    rotated = secure.api.post(
        f"/api/v1/agents/{secure.api.get('/api/v1/agents')['items'][0]['id']}/rotate-token"
    )
    assert rotated["install_command"] == command.replace(match["token"], rotated["token"])
    assert match["pin"] == rotated["https_pin"]
    expect(page.locator("#https-pin")).to_have_text(match["pin"])
    expect(page.locator("#install-command-plain")).to_have_count(0)  # our CA is not publicly trusted
    expect(page.locator("#insecure-http")).to_have_count(0)


def test_plain_http_on_the_network_shows_a_banner_on_every_page(
    make_context: Callable[..., BrowserContext], server_factory: Callable[..., ServerProc]
) -> None:
    exposed = server_factory(bind="0.0.0.0", args=["--insecure-http"])  # only 127.0.0.1 is dialled
    page = make_context(server=exposed).new_page()
    for path in ("/", "/agents", "/hosts", "/login"):
        page.goto(path)
        expect(page.locator("#insecure-http")).to_contain_text("--insecure-http")
