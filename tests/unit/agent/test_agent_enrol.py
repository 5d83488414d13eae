"""Enrolment against a fake agent listener: transient failures are retried, only 401 is fatal, and an
issued certificate is checked against the agent's own key and the pinned CA before anything is saved."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from dockmesh.agent import enrol as enrol_module
from dockmesh.agent.backoff import Backoff
from dockmesh.agent.config import AgentConfig
from dockmesh.agent.runner import Agent
from dockmesh.pki.ca import CertificateAuthority
from dockmesh.pki.identity import cert_to_pem, load_cert
from dockmesh.pki.keys import generate_key, load_key, make_csr
from dockmesh.pki.pin import make_token
from dockmesh.pki.tls import server_context

AGENT_ID = "agent-1"


class FakeListener:
    """/ca.crt and /enroll; `/enroll` plays the scripted answers in order, then issues for real."""

    def __init__(self, ca: CertificateAuthority, rogue: CertificateAuthority, answers: list[Any]) -> None:
        self.ca = ca
        self.rogue = rogue
        self.answers = answers
        self.calls = 0
        self.url = ""

    async def ca_crt(self, request: web.Request) -> web.Response:
        return web.Response(body=self.ca.ca_pem)

    async def enroll(self, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        answer = self.answers.pop(0) if self.answers else "issue"
        if answer == "html":
            return web.Response(status=502, text="<html>bad gateway</html>", content_type="text/html")
        if isinstance(answer, int):
            error = {"code": "x", "message": f"scripted {answer}"}
            return web.json_response({"error": error}, status=answer)
        body = await request.json()
        csr = body["csr"].encode()
        if answer == "other-key":
            csr = make_csr(generate_key(), "someone-else")
        issuer = self.rogue if answer == "rogue-ca" else self.ca
        cert = issuer.issue_agent_cert(csr, AGENT_ID, timedelta(days=1))
        return web.json_response(
            {
                "agent_id": AGENT_ID,
                "cert": cert_to_pem(cert).decode(),
                "ca": self.ca.ca_pem.decode(),
                "connect_url": self.url + "/connect",
            }
        )


class FakeHost:
    async def facts(self) -> dict[str, Any]:
        return {"hostname": "h1"}

    async def close(self) -> None:
        return None


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.load_or_create(tmp_path / "pki", sans=("127.0.0.1",))


@pytest.fixture
async def listener(
    ca: CertificateAuthority, tmp_path: Path
) -> AsyncIterator[Callable[[list[Any]], FakeListener]]:
    runners: list[web.AppRunner] = []
    rogue = CertificateAuthority.load_or_create(tmp_path / "rogue")

    async def start(answers: list[Any]) -> FakeListener:
        fake = FakeListener(ca, rogue, answers)
        app = web.Application()
        app.router.add_get("/ca.crt", fake.ca_crt)
        app.router.add_post("/enroll", fake.enroll)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context(ca))
        await site.start()
        fake.url = f"https://127.0.0.1:{runner.addresses[0][1]}"
        return fake

    yield start  # type: ignore[misc]
    for runner in runners:
        await runner.cleanup()


def agent_for(fake: FakeListener, tmp_path: Path) -> Agent:
    config = AgentConfig(
        state_dir=tmp_path / "state", enroll_url=fake.url, token=make_token(fake.ca.ca_sha256)
    )
    return Agent(config, host=FakeHost, backoff=Backoff(base=0.01, cap=0.02))  # type: ignore[arg-type]


@pytest.mark.parametrize("transient", [503, 500, 400, 429, "html"])
async def test_transient_failure_is_retried_until_enrolled(
    listener: Any, tmp_path: Path, transient: Any
) -> None:
    fake = await listener([transient, transient])
    agent = agent_for(fake, tmp_path)
    assert await agent.enroll_only() == 0
    assert fake.calls == 3
    identity = agent.state.identity()
    assert identity is not None
    assert identity.agent_id == AGENT_ID
    cert = load_cert(agent.state.cert.read_bytes())
    assert cert.public_key() == load_key(agent.state.key.read_bytes()).public_key()


async def test_connection_refused_is_retried(
    listener: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = await listener([])
    agent = agent_for(fake, tmp_path)
    real = enrol_module.fetch_pinned_ca
    calls = 0

    async def flaky(url: str, pin: str) -> bytes:
        # The first two attempts dial a port nobody listens on: a connection error, not a verdict.
        nonlocal calls
        calls += 1
        return await real("https://127.0.0.1:1" if calls < 3 else url, pin)

    monkeypatch.setattr(enrol_module, "fetch_pinned_ca", flaky)
    assert await agent.enroll_only() == 0
    assert calls == 3
    assert agent.state.identity() is not None


async def test_401_is_fatal_with_one_clear_line(
    listener: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = await listener([401])
    agent = agent_for(fake, tmp_path)
    with caplog.at_level(logging.ERROR, logger="dockmesh.agent"):
        assert await agent.enroll_only() == 1
    assert fake.calls == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "scripted 401" in errors[0]
    assert "rotate-token" in errors[0]
    assert agent.state.identity() is None


@pytest.mark.parametrize(
    ("answer", "reason"), [("other-key", "another key"), ("rogue-ca", "not signed by the pinned CA")]
)
async def test_issued_certificate_is_checked_before_it_is_saved(
    listener: Any, tmp_path: Path, answer: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake = await listener([answer])
    agent = agent_for(fake, tmp_path)
    with caplog.at_level(logging.ERROR, logger="dockmesh.agent"):
        assert await agent.enroll_only() == 1
    assert reason in caplog.text
    assert fake.calls == 1  # the token is spent: retrying would only earn a 401
    assert agent.state.identity() is None
    assert not agent.state.cert.exists()
    assert not agent.state.key.exists()
