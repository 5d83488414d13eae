"""The agent's check of an issued certificate: its own key, the pinned CA, a current validity window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dockmesh.pki.ca import CertificateAuthority
from dockmesh.pki.issued import IssuedCertError, check_issued, utcnow
from dockmesh.pki.keys import generate_key, make_csr


@pytest.fixture
def now() -> datetime:
    # Taken when the test runs, not at collection: a long suite must not age it past the certificates.
    return datetime.now(UTC)


def test_accepts_a_certificate_for_our_key_from_our_ca(ca: CertificateAuthority, now: datetime) -> None:
    key = generate_key()
    cert = ca.issue_agent_cert(make_csr(key, "a"), "agent-1", timedelta(days=1))
    check_issued(cert, key, ca.ca_cert, now)


def test_refuses_a_certificate_for_another_key(ca: CertificateAuthority, now: datetime) -> None:
    cert = ca.issue_agent_cert(make_csr(generate_key(), "a"), "agent-1", timedelta(days=1))
    with pytest.raises(IssuedCertError, match="another key"):
        check_issued(cert, generate_key(), ca.ca_cert, now)


def test_refuses_a_certificate_from_another_ca(
    ca: CertificateAuthority, tmp_path: Path, now: datetime
) -> None:
    rogue = CertificateAuthority.load_or_create(tmp_path / "rogue")
    key = generate_key()
    cert = rogue.issue_agent_cert(make_csr(key, "a"), "agent-1", timedelta(days=1))
    with pytest.raises(IssuedCertError, match="not signed by the pinned CA"):
        check_issued(cert, key, ca.ca_cert, now)


def test_refuses_an_expired_certificate(ca: CertificateAuthority, now: datetime) -> None:
    key = generate_key()
    cert = ca.issue_agent_cert(make_csr(key, "a"), "agent-1", timedelta(hours=1))
    with pytest.raises(IssuedCertError, match="expired"):
        check_issued(cert, key, ca.ca_cert, now + timedelta(hours=2))


def test_refuses_a_certificate_from_the_future_beyond_skew(ca: CertificateAuthority, now: datetime) -> None:
    key = generate_key()
    cert = ca.issue_agent_cert(make_csr(key, "a"), "agent-1", timedelta(days=1))
    check_issued(cert, key, ca.ca_cert, now - timedelta(minutes=5))  # inside the allowed skew
    with pytest.raises(IssuedCertError, match="clocks"):
        check_issued(cert, key, ca.ca_cert, now - timedelta(hours=1))


def test_utcnow_is_aware() -> None:
    assert utcnow(0.0) == datetime(1970, 1, 1, tzinfo=UTC)
