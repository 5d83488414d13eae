"""Browser tests: Debian's chromium driven by Playwright against a real server, real agents and engines.

One server per session (`ui`): `local` on engine 0 and the agent `alpha` on engine 1; tests that create
agents run them against engine 2. Each test gets a fresh browser context, logged in through a cookie
from a fresh API login, and fails if any page logged a console error or threw.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright, sync_playwright

from tests.fleet import Fleet, short_tmpdir, wait_for
from tests.integration.harness import ADMIN_PASSWORD, AgentProc, Api, ServerProc
from tests.integration.spine import wait_online

T = TypeVar("T")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
IMAGE = "local/busybox:1"
# PID 1 ignores SIGTERM unless it traps it: this container stops at once instead of after 10 s.
SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]


def login_token(server: ServerProc) -> str:
    """A fresh API token (the session cookie holds one), so a test's logout ends only its own."""
    status, body = Api(server.url, context=server.ssl_context()).call(
        "POST", "/api/v1/auth/login", {"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert status == 200, body
    return str(body["token"])


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run in a thread: Playwright's sync API keeps an event loop running in this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def launch(pw: Playwright) -> Browser:
    assert CHROMIUM.exists(), f"{CHROMIUM} missing: scripts/test installs Debian's chromium"
    return pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    # Package scope, not session: Playwright's sync API keeps an event loop running in this thread
    # until it stops, and every async test after the browser tests needs the thread back.
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    b = launch(playwright)
    try:
        yield b
    finally:
        b.close()


@dataclass
class Ui:
    """The session's server with `local` (engine 0) and agent `alpha` (engine 1)."""

    fleet: Fleet
    server: ServerProc
    alpha: AgentProc
    extra: list[tuple[AgentProc, Path]] = field(default_factory=list)

    @property
    def alpha_id(self) -> str:
        assert self.alpha.agent_id
        return self.alpha.agent_id

    def start_agent(self, token: str, engine: int = 2, agent_id: str | None = None) -> AgentProc:
        """`dockmesh-agent` with the token a page showed, as the harness runs it (env, own state dir)."""
        base = short_tmpdir("a")
        agent = AgentProc(base, self.server, self.fleet.engine(engine).docker_host, token, agent_id)
        self.extra.append((agent, base))
        return agent.start()

    def add_agent(self, name: str, engine: int = 2) -> AgentProc:
        created = self.server.create_agent(name)
        agent = self.start_agent(created["token"], engine, created["id"])
        wait_online(self.server, created["id"])
        return agent

    def login_token(self) -> str:
        return login_token(self.server)

    def run(self, engine: int, name: str, *cmd: str, labels: dict[str, str] | None = None) -> str:
        args = ["run", "-d", "--network", "none", "--name", name]
        for key, value in (labels or {}).items():
            args += ["--label", f"{key}={value}"]
        cid = self.fleet.engine(engine).docker(*args, IMAGE, *(cmd or SLEEPER)).stdout.strip()
        # Started behind the server's back: its lists show it once the host's inventory has the event.
        wait_for(
            lambda: cid[:12] in {r["id"] for r in self.server.api.get("/api/v1/containers")["items"]},
            20,
            message=f"container {name} never reached the server's inventory",
        )
        return cid

    def state(self, engine: int, name: str) -> str:
        return self.fleet.engine(engine).docker("inspect", "-f", "{{.State.Status}}", name).stdout.strip()


@pytest.fixture(scope="session")
def ui(fleet: Fleet) -> Iterator[Ui]:
    base = short_tmpdir("s")
    server = ServerProc(base, docker_host=fleet.engine(0).docker_host).start()
    agent_base = short_tmpdir("a")
    created = server.create_agent("alpha")
    alpha = AgentProc(agent_base, server, fleet.engine(1).docker_host, created["token"], created["id"])
    session = Ui(fleet, server, alpha)
    try:
        alpha.start()
        wait_online(server, created["id"])
        wait_for(lambda: server.api.host("local"), 15, message="local host never appeared")
        yield session
    finally:
        for agent, path in session.extra:
            agent.stop()
            shutil.rmtree(path, ignore_errors=True)
        alpha.stop()
        server.stop()
        shutil.rmtree(agent_base, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(autouse=True)
def alpha_online(request: pytest.FixtureRequest) -> None:
    """Tests may stop `alpha` (reconnect flows): it is back online before the next test."""
    if "ui" not in request.fixturenames:
        return
    ui: Ui = request.getfixturevalue("ui")
    if ui.alpha.proc is None or not ui.alpha.proc.alive:
        ui.alpha.start()
    wait_online(ui.server, ui.alpha_id)


@dataclass
class Console:
    """Console errors and uncaught exceptions of every page of a context."""

    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        def on_console(msg: ConsoleMessage) -> None:
            if msg.type == "error":
                where = msg.location.get("url", "")
                self.errors.append(f"{page.url}: console error {msg.text!r} at {where}")

        page.on("console", on_console)
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: uncaught {exc}"))

    def allow(self, pattern: str) -> None:
        """An error this test provokes on purpose (matched against the recorded line)."""
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


@pytest.fixture
def console() -> Console:
    return Console()


def new_context(
    browser: Browser,
    server: ServerProc,
    console: Console,
    *,
    viewport: dict[str, int] | None = None,
    login: bool = True,
) -> BrowserContext:
    # A server on HTTPS uses its own CA, which chromium does not know: the test accepts its certificate the
    # way a user would once (the pinned install command and the CLI verify the key themselves).
    context = browser.new_context(
        viewport=viewport or DESKTOP,  # type: ignore[arg-type]
        base_url=server.url,
        ignore_https_errors=server.https,
    )
    context.on("page", console.attach)
    if login:
        context.add_cookies(
            [
                {
                    "name": "dockmesh_session",
                    "value": login_token(server),
                    "url": server.url,
                    "httpOnly": True,
                    "sameSite": "Strict",
                    "secure": server.https,
                }
            ]
        )
    return context


@pytest.fixture
def make_context(
    browser: Browser, console: Console, request: pytest.FixtureRequest
) -> Iterator[Callable[..., BrowserContext]]:
    """`make_context(server=None, viewport=None, login=True)`: a context on `ui`'s server by default."""
    made: list[BrowserContext] = []

    def make(server: ServerProc | None = None, **kwargs: Any) -> BrowserContext:
        if server is None:
            server = request.getfixturevalue("ui").server
        context = new_context(browser, server, console, **kwargs)
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()
    unexpected = console.unexpected()
    if unexpected and "ui" in request.fixturenames:
        unexpected.append("server log:\n" + request.getfixturevalue("ui").server.log_tail())
    assert not unexpected, "pages logged errors:\n" + "\n".join(unexpected)


@pytest.fixture
def page(make_context: Callable[..., BrowserContext]) -> Page:
    """A logged-in page at 1280x800."""
    return make_context().new_page()
