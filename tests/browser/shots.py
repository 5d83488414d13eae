"""Screenshots of the main pages for the README, from a real little fleet (run by scripts/screenshots).

    python -m tests.browser.shots --out docs/screenshots

Starts three engines, a server (with `local`), two agents and some containers, then saves
dashboard, agents, agent-new, hosts, containers, container, stacks, stack and deploy PNGs at 1280x800
(the container page full length). Needs what the integration tests need: root, docker.io,
busybox-static, chromium.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

from tests.browser.conftest import DESKTOP, IMAGE, SLEEPER, Console, launch, login_token
from tests.fleet import Fleet, short_tmpdir, wait_for
from tests.integration.harness import AgentProc, ServerProc
from tests.integration.spine import wait_online

NAMES = ("dashboard", "agents", "agent-new", "hosts", "containers", "container", "stacks", "stack", "deploy")
STORE = """services:
  db:
    image: {image}
    command: ["sh", "-c", "echo db ready; trap 'exit 0' TERM; while true; do sleep 1; done"]
    volumes: [data:/data]
    networks: [back]
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
  api:
    image: {image}
    command: ["sh", "-c", "echo api listening on :8080; trap 'exit 0' TERM; while true; do sleep 1; done"]
    environment:
      LOG_LEVEL: ${{LOG_LEVEL:-info}}
    networks: [back]
    depends_on:
      db: {{condition: service_healthy}}
volumes:
  data:
networks:
  back:
"""
TICKER = [
    "sh",
    "-c",
    'i=0; while true; do echo "GET /api/orders/$i 200 $((i % 7 + 3))ms"; i=$((i+1)); sleep 1; done',
]


@contextmanager
def demo_fleet(fleet: Fleet) -> Iterator[tuple[ServerProc, dict[str, str]]]:
    """A server with `local` (engine 0) and agents web-1 (engine 1), db-1 (engine 2); yields host ids."""
    dirs = [short_tmpdir("s")]
    server = ServerProc(dirs[0], docker_host=fleet.engine(0).docker_host)
    agents: list[AgentProc] = []
    try:
        server.start()
        ids = {"local": "local"}
        for name, engine, tags in (("web-1", 1, ["prod", "eu-west-1"]), ("db-1", 2, ["prod"])):
            created = server.create_agent(name)
            dirs.append(short_tmpdir("a"))
            agent = AgentProc(
                dirs[-1], server, fleet.engine(engine).docker_host, created["token"], created["id"]
            )
            agents.append(agent.start())
            wait_online(server, created["id"])
            server.api.call("PUT", f"/api/v1/hosts/{created['id']}/tags", {"tags": tags})
            ids[name] = created["id"]
        server.create_agent("edge-7")  # pending: its install command was never run
        shop = {"com.docker.compose.project": "shop"}
        plan = {
            0: [("registry-cache", None, SLEEPER)],
            1: [("shop-web-1", "web", TICKER), ("shop-web-2", "web", SLEEPER), ("worker", None, SLEEPER)],
            2: [("shop-db-1", "db", SLEEPER), ("nightly-backup", None, ["true"])],
        }
        for engine, containers in plan.items():
            for name, service, cmd in containers:
                args = ["run", "-d", "--network", "none", "--name", name]
                if service:
                    args += ["--label", f"com.docker.compose.project={shop['com.docker.compose.project']}"]
                    args += ["--label", f"com.docker.compose.service={service}"]
                fleet.engine(engine).docker(*args, IMAGE, *cmd)
        fleet.engine(2).docker(
            "volume", "create", "--label", "com.docker.compose.project=shop", "shop-db-data"
        )
        wait_for(lambda: server.api.get("/api/v1/dashboard")["totals"]["containers_running"] >= 5, 15)
        yield server, ids
    finally:
        for agent in agents:
            agent.stop()
        server.stop()
        for path in dirs:
            shutil.rmtree(path, ignore_errors=True)


def capture(page: Page, ids: dict[str, str], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []

    def shot(name: str, full_page: bool = False) -> None:
        path = out / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        saved.append(path)

    page.goto("/")
    page.locator("#fleet-cpu-chart").wait_for()
    page.wait_for_function("() => Number(document.querySelector('#fleet-cpu-chart').dataset.samples) >= 3")
    shot("dashboard")
    page.goto("/agents")
    shot("agents")
    page.goto("/agents/new")
    page.fill("input[name=name]", "web-2")
    page.get_by_role("button", name="Create agent").click()
    page.locator("#install-command").wait_for()
    shot("agent-new")
    page.goto("/hosts")
    shot("hosts")
    page.goto("/containers")
    shot("containers")
    page.goto(f"/containers/{ids['web-1']}/shop-web-1")
    page.wait_for_function(
        "() => Number(document.querySelector('#stats-chart').dataset.samples) >= 5", timeout=30_000
    )
    page.get_by_role("button", name="Open terminal").click()
    page.locator("#terminal .xterm-rows").wait_for()
    page.wait_for_function("() => document.querySelector('#term-status').textContent === 'connected'")
    page.keyboard.type("ps")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelector('#terminal .xterm-rows').innerText.includes('PID')")
    shot("container", full_page=True)

    # A stack deployed to web-1, then edited (a revision with its diff) and redeployed.
    api = page.request
    headers = {"X-CSRF-Token": page.locator("meta[name=csrf-token]").get_attribute("content") or ""}
    store = STORE.format(image=IMAGE)
    for env in ("", "LOG_LEVEL=debug\n"):
        api.put("/api/v1/stacks/store", data={"compose": store, "env": env}, headers=headers)
        deployed = api.post(
            "/api/v1/stacks/store/deploy", data={"host": ids["web-1"]}, headers=headers
        ).json()
        page.goto(f"/deploys/{deployed['id']}")
        page.wait_for_function("() => document.querySelector('#deploy-live').textContent === 'ended'")
    shot("deploy")
    page.goto("/stacks")
    shot("stacks")
    page.goto("/stacks/store")
    page.wait_for_function("() => document.querySelector('#stack-logs').textContent.includes('listening')")
    shot("stack")
    return saved


def generate(out: Path, fleet: Fleet, browser: Browser) -> list[Path]:
    """Build the demo fleet on `fleet`'s engines 0-2 and save the screenshots into `out`."""
    console = Console()
    with demo_fleet(fleet) as (server, ids):
        context = browser.new_context(viewport=DESKTOP, base_url=server.url)  # type: ignore[arg-type]
        try:
            context.on("page", console.attach)
            cookie = {"name": "dockmesh_session", "value": login_token(server), "url": server.url}
            context.add_cookies([cookie])  # type: ignore[list-item]
            saved = capture(context.new_page(), ids, out)
        finally:
            context.close()
    if console.errors:
        raise RuntimeError("pages logged errors:\n" + "\n".join(console.errors))
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args(argv)
    fleet = Fleet()
    try:
        with sync_playwright() as pw:
            browser = launch(pw)
            try:
                for path in generate(args.out, fleet, browser):
                    print(path)
            finally:
                browser.close()
    finally:
        fleet.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
