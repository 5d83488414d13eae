"""Stacks in the browser: issue 10's "done when" through the pages — create (a refused save shows the error
at its line and saves nothing), deploy to the remote host `alpha` (real agent, real engine), the Stacks
list, edit and redeploy (the unchanged service keeps its container), logs, remove — and the progress page
reopened after its tab was closed."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import DESKTOP, PHONE, Ui
from tests.fleet import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.docker]

LOOP = "trap 'exit 0' TERM; while true; do sleep 1; done"
GOOD = f"""services:
  db:
    image: local/busybox:1
    command: ["sh", "-c", "{LOOP}"]
    volumes:
      - data:/data
    networks: [back]
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
      timeout: 5s
      retries: 3
  web:
    image: local/busybox:1
    command: ["sh", "-c", "echo web-says-${{GREETING}}; {LOOP}"]
    networks: [back]
    depends_on:
      db:
        condition: service_healthy
volumes:
  data:
networks:
  back:
"""
# The same file with `build:` in web: refused, naming the key and its line.
WEB = "  web:\n    image: local/busybox:1\n"
BAD = GOOD.replace(WEB, WEB + "    build: .\n")
BAD_LINE = BAD.splitlines().index("    build: .") + 1
# Only web changes: db's config hash, and so its container, stays.
EDITED = GOOD.replace("echo web-says-", "echo web-v2-says-")
ENGINE = 1  # alpha's engine


def stack_name() -> str:
    return f"shop-{secrets.token_hex(3)}"


def project_containers(ui: Ui, name: str) -> dict[str, str]:
    """service → container id, straight from alpha's engine (as `docker ps --filter label=…` lists them)."""
    out = ui.fleet.engine(ENGINE).docker(
        "ps",
        "--filter",
        f"label=com.docker.compose.project={name}",
        "--format",
        '{{.ID}} {{.Label "com.docker.compose.service"}}',
    )
    return {service: cid for cid, service in (line.split() for line in out.stdout.splitlines())}


def create(page: Page, name: str, compose: str, env: str = "") -> None:
    page.goto("/stacks")
    page.get_by_role("link", name="New stack").click()
    page.wait_for_url("**/stacks/_new")
    page.fill("#stack-name", name)
    page.fill("#compose", compose)
    page.fill("#env", env)
    page.get_by_role("button", name="Create stack").click()


def deploy(page: Page, ui: Ui) -> str:
    """Deploy from the stack page to alpha; waits on the progress page for `done`; the deploy id."""
    page.locator("#deploy-host").select_option(ui.alpha_id)
    page.get_by_role("button", name="Deploy revision").click()
    page.wait_for_url("**/deploys/*")
    expect(page.locator("#deploy-state")).to_have_text("done", timeout=90_000)
    return page.url.rsplit("/", 1)[1]


def test_stack_from_editor_to_removal(page: Page, ui: Ui) -> None:
    name = stack_name()
    create(page, name, BAD, "GREETING=hello\n")

    # The refused save: the error names the key, the editor marks and selects its line; nothing saved.
    error = page.locator("#save-error")
    expect(error).to_contain_text("build")
    expect(error).to_have_attribute("data-line", str(BAD_LINE))
    expect(page.locator("#compose-gutter .error-line")).to_have_text(str(BAD_LINE))
    selected = page.evaluate(
        "() => { const a = document.getElementById('compose');"
        " return a.value.slice(0, a.selectionStart).split('\\n').length; }"
    )
    assert selected == BAD_LINE
    assert page.locator("#compose").input_value() == BAD  # the text is kept for fixing
    status, _body = ui.server.api.call("GET", f"/api/v1/stacks/{name}")
    assert status == 404

    page.fill("#compose", GOOD)
    page.get_by_role("button", name="Create stack").click()
    expect(page).to_have_url(f"{ui.server.url}/stacks/{name}?done=saved")
    expect(page.locator("#stack-revision")).to_have_text("revision 1")
    expect(page.locator("#no-hosts")).to_be_visible()

    first_deploy = deploy(page, ui)
    rows = page.locator("#deploy-services tbody tr")
    expect(rows.filter(has_text="db")).to_contain_text("running")
    expect(rows.filter(has_text="web")).to_contain_text("running")
    expect(page.locator("#deploy-events")).to_contain_text("health")
    first = project_containers(ui, name)
    assert set(first) == {"db", "web"}

    # The Stacks list: the stack on alpha, both services running, the revision deployed.
    page.goto("/stacks")
    row = page.locator(f"#stacks-table tr[data-stack='{name}']")
    expect(row).to_have_count(1)
    expect(row.locator("td.host-cell")).to_have_attribute("data-host-id", ui.alpha_id)
    expect(row.locator("td.host-cell")).to_have_text("alpha")
    expect(row.locator("td.running")).to_have_text("2 / 2")
    expect(row.locator("td.revision")).to_have_text("r1")
    expect(row.locator("td.deploy-state")).to_contain_text("Done")
    expect(row).not_to_contain_text("external")

    # The stack page: containers per host link to their pages; the merged logs carry the service names.
    row.get_by_role("link", name=name).click()
    host_card = page.locator(f".stack-host[data-host-id='{ui.alpha_id}']")
    expect(host_card.locator("tr[data-service='db'] a")).to_have_attribute(
        "href", f"/containers/{ui.alpha_id}/{name}-db-1"
    )
    expect(page.locator("#stack-logs")).to_contain_text("web | web-says-hello", timeout=15_000)
    expect(page.locator("#history-table tr[data-deploy]")).to_have_count(1)

    # Stop and start on alpha: the same containers, stopped then running again.
    host_card.get_by_role("button", name="Stop").click()
    expect(page.locator("#done")).to_have_text("Stopped.")
    assert project_containers(ui, name) == {}  # `docker ps` lists running containers only
    expect(host_card.locator(".running")).to_have_text("0 / 2 running")
    host_card.get_by_role("button", name="Start").click()
    expect(page.locator("#done")).to_have_text("Started.")
    assert project_containers(ui, name) == first

    # Edit one service and redeploy from the host's card: db keeps its container, web gets a new one.
    page.get_by_role("link", name="Edit").click()
    page.fill("#compose", EDITED)
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#stack-revision")).to_have_text("revision 2")
    expect(host_card.locator(".revision")).to_contain_text("current is r2")
    expect(page.locator("details.revision[data-revision='2'] pre.diff .add")).to_contain_text("web-v2-says")
    host_card.get_by_role("button", name="Redeploy").click()
    page.wait_for_url("**/deploys/*")
    expect(page.locator("#deploy-state")).to_have_text("done", timeout=90_000)
    assert page.url.rsplit("/", 1)[1] != first_deploy
    second = project_containers(ui, name)
    assert second["db"] == first["db"]
    assert second["web"] != first["web"]

    page.goto(f"/stacks/{name}")
    expect(page.locator("#history-table tr[data-deploy]")).to_have_count(2)
    expect(page.locator("#stack-logs")).to_contain_text("web | web-v2-says-hello", timeout=15_000)

    # Remove from alpha with its volumes: nothing of the project is left on the engine.
    host_card.locator("input[name=volumes]").check()
    # The host cards refresh in place (the containers' "Up n seconds" changes): the choice survives it.
    page.evaluate(
        "() => new Promise(done => document.getElementById('stack-hosts')"
        ".addEventListener('fragment:swapped', done, { once: true }))"
    )
    expect(host_card.locator("input[name=volumes]")).to_be_checked()
    host_card.get_by_role("button", name="Remove").click()
    page.locator("dialog#confirm").get_by_role("button", name="Remove").click()
    expect(page.locator("#done")).to_have_text("Removed from the host.")
    expect(page.locator("#no-hosts")).to_be_visible()
    engine = ui.fleet.engine(ENGINE)
    label = f"label=com.docker.compose.project={name}"
    assert engine.docker("ps", "-aq", "--filter", label).stdout.strip() == ""
    assert engine.docker("volume", "ls", "-q", "--filter", label).stdout.strip() == ""
    assert engine.docker("network", "ls", "-q", "--filter", label).stdout.strip() == ""

    page.get_by_role("button", name="Delete").click()
    page.locator("dialog#confirm").get_by_role("button", name="Delete").click()
    expect(page).to_have_url(f"{ui.server.url}/stacks")
    assert ui.server.api.call("GET", f"/api/v1/stacks/{name}")[0] == 404


GATED = """services:
  web:
    image: local/busybox:1
    command: ["sleep", "600"]
    network_mode: none
    stop_grace_period: 1s
    depends_on:
      gate: {{condition: service_healthy}}
  gate:
    image: local/busybox:1
    command: ["sleep", "600"]
    network_mode: none
    stop_grace_period: 1s
    volumes: ["{gate}:/gate"]
    healthcheck:
      test: ["CMD", "test", "-f", "/gate/open"]
      interval: 1s
      timeout: 1s
      retries: 600
"""


def start_gated(page: Page, ui: Ui, gate: Path) -> tuple[str, str]:
    """A stack whose deploy waits (gate's health) until `gate/open` exists; deployed from its page to
    alpha; (stack name, deploy id) once the progress page shows it waiting."""
    gate.mkdir()
    name = stack_name()
    assert ui.server.api.call("PUT", f"/api/v1/stacks/{name}", {"compose": GATED.format(gate=gate)})[0] == 200
    page.goto(f"/stacks/{name}")
    page.locator("#deploy-host").select_option(ui.alpha_id)
    page.get_by_role("button", name="Deploy revision").click()
    page.wait_for_url("**/deploys/*")
    expect(page.locator("#deploy-events")).to_contain_text("gate: health waiting", timeout=60_000)
    expect(page.locator("#deploy-state")).to_have_text("running")
    expect(page.locator("#deploy-services tr[data-service='gate'] .phase")).to_have_text("health")
    return name, page.url.rsplit("/", 1)[1]


def test_progress_page_reopened_after_its_tab_was_closed(page: Page, ui: Ui, tmp_path: Path) -> None:
    name, deploy_id = start_gated(page, ui, tmp_path / "gate")
    context: BrowserContext = page.context
    page.close()  # the tab goes away mid-deploy; the deploy is the server's task and carries on

    again = context.new_page()
    again.goto(f"/deploys/{deploy_id}")
    expect(again.locator("#deploy-state")).to_have_text("running")
    expect(again.locator("#deploy-live")).to_have_text("live")
    events = again.locator("#deploy-events")
    # What happened while no page watched is replayed: the server keeps the deploy's events.
    for text in ("validate done", "gate: create creating", "gate: health waiting"):
        expect(events).to_contain_text(text)
    expect(again.get_by_role("button", name="Cancel deploy")).to_be_visible()

    (tmp_path / "gate" / "open").touch()  # the health check passes: the deploy goes on, live on the page
    expect(again.locator("#deploy-state")).to_have_text("done", timeout=60_000)
    expect(again.locator("#deploy-live")).to_have_text("ended")
    expect(events).to_contain_text("gate: health healthy")
    expect(events).to_contain_text("web: start started")
    rows = again.locator("#deploy-services tbody tr")
    expect(rows.filter(has_text="gate")).to_contain_text("running (healthy)")
    expect(rows.filter(has_text="web")).to_contain_text("running")
    expect(again.get_by_role("button", name="Cancel deploy")).to_be_hidden()
    assert ui.server.api.get(f"/api/v1/deploys/{deploy_id}")["state"] == "done"
    assert set(project_containers(ui, name)) == {"gate", "web"}

    ui.server.api.call("DELETE", f"/api/v1/stacks/{name}?host={ui.alpha_id}")
    ui.server.api.call("DELETE", f"/api/v1/stacks/{name}")


def test_cancel_from_the_progress_page_rolls_back(page: Page, ui: Ui, tmp_path: Path) -> None:
    name, deploy_id = start_gated(page, ui, tmp_path / "gate")
    page.get_by_role("button", name="Cancel deploy").click()
    page.locator("dialog#confirm").get_by_role("button", name="Cancel deploy").click()
    expect(page.locator("#deploy-state")).to_have_text("cancelled", timeout=60_000)
    expect(page.locator("#deploy-events")).to_contain_text("rollback done")
    expect(page.get_by_role("button", name="Cancel deploy")).to_be_hidden()
    assert ui.server.api.get(f"/api/v1/deploys/{deploy_id}")["state"] == "cancelled"
    label = f"label=com.docker.compose.project={name}"
    assert ui.fleet.engine(ENGINE).docker("ps", "-aq", "--filter", label).stdout.strip() == ""
    ui.server.api.call("DELETE", f"/api/v1/stacks/{name}?host={ui.alpha_id}")
    ui.server.api.call("DELETE", f"/api/v1/stacks/{name}")


def set_cordoned(ui: Ui, host_id: str, cordoned: bool) -> None:
    action = "cordon" if cordoned else "uncordon"
    assert ui.server.api.call("POST", f"/api/v1/hosts/{host_id}/{action}")[0] == 200


def test_cordoned_host_is_disabled_and_refused_with_the_service_s_error(page: Page, ui: Ui) -> None:
    name = stack_name()
    assert (
        ui.server.api.call("PUT", f"/api/v1/stacks/{name}", {"compose": GOOD, "env": "GREETING=x\n"})[0]
        == 200
    )
    set_cordoned(ui, ui.alpha_id, True)
    try:
        page.goto(f"/stacks/{name}")
        option = page.locator(f"#deploy-host option[value='{ui.alpha_id}']")
        expect(option).to_have_text("alpha (cordoned)")
        expect(option).to_be_disabled()
        expect(page.locator("#deploy-host option[value='local']")).to_be_enabled()
        # A page opened before the cordon still offers the host: the service refuses it, in its words.
        option.evaluate("o => { o.disabled = false; o.selected = true; }")
        page.get_by_role("button", name="Deploy revision").click()
        expect(page.locator("#action-error")).to_contain_text("is cordoned and takes no new deploys")
        expect(page).to_have_url(f"{ui.server.url}/stacks/{name}/deploy")
        assert ui.server.api.get(f"/api/v1/stacks/{name}")["deployments"] == []
        assert project_containers(ui, name) == {}
    finally:
        set_cordoned(ui, ui.alpha_id, False)
    ui.server.api.call("DELETE", f"/api/v1/stacks/{name}")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
def test_stack_pages_fit_the_window(
    make_context: Callable[..., BrowserContext], ui: Ui, viewport: dict[str, int]
) -> None:
    name = stack_name()
    long_line = "    labels: {note: " + "x" * 300 + "}\n"
    compose = GOOD.replace(
        "  db:\n    image: local/busybox:1\n", "  db:\n    image: local/busybox:1\n" + long_line
    )
    assert (
        ui.server.api.call("PUT", f"/api/v1/stacks/{name}", {"compose": compose, "env": "GREETING=x\n"})[0]
        == 200
    )
    deployed = ui.server.api.post(f"/api/v1/stacks/{name}/deploy", {"host": ui.alpha_id}, expect=202)
    wait_for(lambda: ui.server.api.get(f"/api/v1/deploys/{deployed['id']}")["state"] == "done", 90)
    page = make_context(viewport=viewport).new_page()
    for path in (
        "/stacks",
        "/stacks/_new",
        f"/stacks/{name}",
        f"/stacks/{name}/edit",
        f"/deploys/{deployed['id']}",
    ):
        page.goto(path)
        expect(page.locator("h1").first).to_be_visible()
        assert int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth")) <= 0, path
    ui.server.api.call("DELETE", f"/api/v1/stacks/{name}?host={ui.alpha_id}&volumes=1")
    ui.server.api.call("DELETE", f"/api/v1/stacks/{name}")


def test_stack_forms_need_the_csrf_token_and_bound_the_text(page: Page, ui: Ui) -> None:
    name = stack_name()
    page.goto("/stacks/_new")
    token = page.locator("input[name=csrf]").first.input_value()
    form = {"name": name, "compose": GOOD, "env": ""}
    refused = page.request.post("/stacks/_new", form={**form, "csrf": "0" * 64}, max_redirects=0)
    assert refused.status == 403
    assert "Form expired" in refused.text()
    assert ui.server.api.call("GET", f"/api/v1/stacks/{name}")[0] == 404

    # Over the service's 1 MiB: the editor again with the error; over the server's body limit: 413.
    big = GOOD + "x-pad: " + "y" * (1 << 20) + "\n"
    shown = page.request.post("/stacks/_new", form={**form, "compose": big, "csrf": token}, max_redirects=0)
    assert shown.status == 200
    assert "exceed 1 MiB" in shown.text()
    huge = page.request.post(
        "/stacks/_new", form={**form, "compose": "#" * (5 << 20), "csrf": token}, max_redirects=0
    )
    assert huge.status == 413
    assert ui.server.api.call("GET", f"/api/v1/stacks/{name}")[0] == 404

    saved = page.request.post("/stacks/_new", form={**form, "csrf": token}, max_redirects=0)
    assert saved.status == 303
    assert saved.headers["location"] == f"/stacks/{name}?done=saved"
    again = page.request.post("/stacks/_new", form={**form, "csrf": token}, max_redirects=0)
    assert "exists already" in again.text()  # New stack never overwrites one
    page.goto("/stacks")  # saved, deployed nowhere: listed below the hosts' rows
    expect(page.locator("#undeployed").get_by_role("link", name=name)).to_have_attribute(
        "href", f"/stacks/{name}"
    )
    expect(page.locator(f"#stacks-table tr[data-stack='{name}']")).to_have_count(0)
    deploy_refused = page.request.post(f"/stacks/{name}/deploy", form={"host": ui.alpha_id}, max_redirects=0)
    assert deploy_refused.status == 403
    assert ui.server.api.get(f"/api/v1/stacks/{name}")["deployments"] == []
    ui.server.api.call("DELETE", f"/api/v1/stacks/{name}")


def test_a_failed_deploy_shows_the_engine_s_message_and_leaves_nothing(page: Page, ui: Ui) -> None:
    name = stack_name()
    missing = "127.0.0.1:1/dm/nope:1"  # loopback, nothing listens: the pull fails at once, offline
    compose = f"services:\n  app:\n    image: {missing}\n    network_mode: none\n"
    assert ui.server.api.call("PUT", f"/api/v1/stacks/{name}", {"compose": compose})[0] == 200
    page.goto(f"/stacks/{name}")
    page.locator("#deploy-host").select_option(ui.alpha_id)
    page.get_by_role("button", name="Deploy revision").click()
    page.wait_for_url("**/deploys/*")
    expect(page.locator("#deploy-state")).to_have_text("failed", timeout=90_000)
    expect(page.locator("#deploy-error")).to_contain_text(missing)
    expect(page.locator("#deploy-services tr[data-service='app'] .phase")).to_have_text("pull")
    expect(page.get_by_role("button", name="Cancel deploy")).to_be_hidden()
    assert project_containers(ui, name) == {}

    page.goto(f"/stacks/{name}")
    expect(page.locator("#history-table tr[data-deploy] .state")).to_have_text("Failed")
    expect(page.locator("#history-table")).to_contain_text(missing)
    page.goto("/stacks")
    row = page.locator(f"#stacks-table tr[data-stack='{name}']")
    expect(row.locator("td.running")).to_have_text("0 / 0")
    expect(row.locator("td.deploy-state")).to_contain_text("Failed")
    ui.server.api.call("DELETE", f"/api/v1/stacks/{name}?host={ui.alpha_id}")
    ui.server.api.call("DELETE", f"/api/v1/stacks/{name}")


def test_a_stack_made_by_hand_is_listed_as_external(page: Page, ui: Ui) -> None:
    name = stack_name()
    ui.run(
        ENGINE,
        f"{name}-app-1",
        labels={"com.docker.compose.project": name, "com.docker.compose.service": "app"},
    )
    page.goto("/stacks")
    row = page.locator(f"#stacks-table tr[data-stack='{name}']")
    expect(row.locator("td.host-cell")).to_have_attribute("data-host-id", ui.alpha_id)
    expect(row.locator("td.name .badge-external")).to_have_text("external")
    expect(row.locator("td.name a")).to_have_count(0)  # no record here: no stack page to open
    expect(row.locator("td.running")).to_have_text("1 / 1")
    expect(row.locator("td.revision")).to_have_text("—")
    expect(row.locator("td.deploy-state")).to_have_text("—")
