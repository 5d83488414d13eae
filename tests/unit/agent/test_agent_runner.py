"""The agent's in-band renewal: a renewed certificate is swapped in only if it is for the new key and
from the pinned CA; anything else keeps the current pair on disk."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from dockmesh.agent.config import AgentConfig
from dockmesh.agent.runner import Agent
from dockmesh.agent.state import Identity
from dockmesh.pki.ca import CertificateAuthority
from dockmesh.pki.identity import cert_to_pem, load_cert
from dockmesh.pki.issued import IssuedCertError
from dockmesh.pki.keys import generate_key, key_to_pem, load_key, make_csr


class RenewingLink:
    """Answers `renew` the way a server would, or with a certificate for some other key."""

    def __init__(self, ca: CertificateAuthority, *, other_key: bool = False) -> None:
        self.ca = ca
        self.other_key = other_key

    async def request(self, method: str, params: dict[str, Any], timeout: float) -> Any:
        assert method == "renew"
        csr = make_csr(generate_key(), "x") if self.other_key else params["csr"].encode()
        cert = self.ca.issue_agent_cert(csr, "agent-1", timedelta(days=30))
        return {"cert": cert_to_pem(cert).decode()}


@pytest.fixture
def agent(tmp_path: Path) -> tuple[Agent, CertificateAuthority]:
    ca = CertificateAuthority.load_or_create(tmp_path / "pki")
    agent = Agent(AgentConfig(state_dir=tmp_path / "state"))
    agent.state.ensure()
    key = generate_key()
    cert = ca.issue_agent_cert(make_csr(key, "a"), "agent-1", timedelta(days=30))
    identity = Identity("agent-1", "wss://x/connect", "https://x", "ab" * 32)
    agent.state.save_enrolment(identity, key_to_pem(key), cert_to_pem(cert), ca.ca_pem)
    return agent, ca


async def test_renewal_swaps_in_a_matching_certificate(agent: tuple[Agent, CertificateAuthority]) -> None:
    a, ca = agent
    before = a.state.cert.read_bytes()
    await a._renew(RenewingLink(ca))  # type: ignore[arg-type]
    assert a.state.cert.read_bytes() != before
    cert = load_cert(a.state.cert.read_bytes())
    assert cert.public_key() == load_key(a.state.key.read_bytes()).public_key()


async def test_renewal_refuses_a_certificate_for_another_key(
    agent: tuple[Agent, CertificateAuthority],
) -> None:
    a, ca = agent
    before = (a.state.key.read_bytes(), a.state.cert.read_bytes())
    with pytest.raises(IssuedCertError, match="another key"):
        await a._renew(RenewingLink(ca, other_key=True))  # type: ignore[arg-type]
    assert (a.state.key.read_bytes(), a.state.cert.read_bytes()) == before


async def test_renewal_refuses_a_certificate_from_another_ca(
    agent: tuple[Agent, CertificateAuthority], tmp_path: Path
) -> None:
    a, _ca = agent
    rogue = CertificateAuthority.load_or_create(tmp_path / "rogue")
    before = (a.state.key.read_bytes(), a.state.cert.read_bytes())
    with pytest.raises(IssuedCertError, match="pinned CA"):
        await a._renew(RenewingLink(rogue))  # type: ignore[arg-type]
    assert (a.state.key.read_bytes(), a.state.cert.read_bytes()) == before
