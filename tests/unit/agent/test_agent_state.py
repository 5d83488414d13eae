"""The agent's state directory: enrolment, identity, crash-safe renewal swap, token and status."""

from __future__ import annotations

import json
import stat
from datetime import timedelta
from pathlib import Path

import pytest

from dockmesh.agent.state import Identity, StateDir, token_sha256
from dockmesh.pki.ca import CertificateAuthority
from dockmesh.pki.identity import cert_info, cert_to_pem
from dockmesh.pki.keys import generate_key, key_to_pem, make_csr

IDENTITY = Identity(
    agent_id="7b0c5c1e-0000-4000-8000-000000000001",
    connect_url="wss://server.example.com:8443/agent/connect",
    enroll_url="https://server.example.com:8443",
    token_sha256="ab" * 32,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def state(tmp_path: Path) -> StateDir:
    directory = StateDir(tmp_path / "state")
    directory.ensure()
    return directory


@pytest.fixture
def enrolled(state: StateDir) -> StateDir:
    state.save_enrolment(IDENTITY, b"KEY-1", b"CERT-1", b"CA")
    return state


def next_files(state: StateDir) -> tuple[Path, Path]:
    return state.path / "agent.key.next", state.path / "agent.crt.next"


def test_ensure_creates_a_private_directory(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "a" / "b")
    state.ensure()
    assert state.path.is_dir()
    assert mode(state.path) == 0o700
    state.path.chmod(0o755)
    state.ensure()  # idempotent, and repairs the mode
    assert mode(state.path) == 0o700


def test_enrolment_round_trip(enrolled: StateDir) -> None:
    assert enrolled.identity() == IDENTITY
    assert enrolled.key.read_bytes() == b"KEY-1"
    assert enrolled.cert.read_bytes() == b"CERT-1"
    assert enrolled.ca.read_bytes() == b"CA"
    assert mode(enrolled.key) == 0o600
    assert mode(enrolled.identity_file) == 0o600
    assert mode(enrolled.cert) == 0o644
    assert json.loads(enrolled.identity_file.read_text())["agent_id"] == IDENTITY.agent_id


def test_identity_survives_a_new_state_dir_object(enrolled: StateDir) -> None:
    assert StateDir(enrolled.path).identity() == IDENTITY


def test_no_identity_before_enrolment(state: StateDir) -> None:
    assert state.identity() is None


@pytest.mark.parametrize("name", ["agent.key", "agent.crt", "ca.crt", "agent.json"])
def test_identity_none_when_a_file_is_missing(enrolled: StateDir, name: str) -> None:
    (enrolled.path / name).unlink()
    assert enrolled.identity() is None


@pytest.mark.parametrize(
    "content",
    ["", "not json", "[]", '"text"', "{}", json.dumps({"agent_id": "x", "connect_url": "y"})],
)
def test_identity_none_when_the_identity_file_is_bad(enrolled: StateDir, content: str) -> None:
    enrolled.identity_file.write_text(content)
    assert enrolled.identity() is None


def test_identity_ignores_extra_keys(enrolled: StateDir) -> None:
    data = json.loads(enrolled.identity_file.read_text())
    data["future_field"] = 1
    enrolled.identity_file.write_text(json.dumps(data))
    assert enrolled.identity() == IDENTITY


def test_swap_in_replaces_key_and_cert(enrolled: StateDir) -> None:
    enrolled.swap_in(b"KEY-2", b"CERT-2")
    assert enrolled.key.read_bytes() == b"KEY-2"
    assert enrolled.cert.read_bytes() == b"CERT-2"
    assert mode(enrolled.key) == 0o600
    assert mode(enrolled.cert) == 0o644
    key_next, cert_next = next_files(enrolled)
    assert not key_next.exists()
    assert not cert_next.exists()
    assert enrolled.identity() == IDENTITY


def test_crash_with_both_staged_is_finished_by_ensure(enrolled: StateDir) -> None:
    key_next, cert_next = next_files(enrolled)
    key_next.write_bytes(b"KEY-2")
    cert_next.write_bytes(b"CERT-2")
    StateDir(enrolled.path).ensure()
    assert enrolled.key.read_bytes() == b"KEY-2"
    assert enrolled.cert.read_bytes() == b"CERT-2"
    assert not key_next.exists()
    assert not cert_next.exists()


def test_crash_after_key_replaced_is_finished_by_ensure(enrolled: StateDir) -> None:
    _, cert_next = next_files(enrolled)
    enrolled.key.write_bytes(b"KEY-2")  # the key rename already happened
    cert_next.write_bytes(b"CERT-2")
    StateDir(enrolled.path).ensure()
    assert enrolled.key.read_bytes() == b"KEY-2"
    assert enrolled.cert.read_bytes() == b"CERT-2"
    assert not cert_next.exists()


def test_crash_before_cert_staged_keeps_the_old_pair(enrolled: StateDir) -> None:
    key_next, cert_next = next_files(enrolled)
    key_next.write_bytes(b"KEY-2")  # the cert was never staged: the renewal did not happen
    StateDir(enrolled.path).ensure()
    assert enrolled.key.read_bytes() == b"KEY-1"
    assert enrolled.cert.read_bytes() == b"CERT-1"
    assert not key_next.exists()
    assert not cert_next.exists()


def test_ensure_without_staged_files_changes_nothing(enrolled: StateDir) -> None:
    enrolled.ensure()
    assert enrolled.key.read_bytes() == b"KEY-1"
    assert enrolled.cert.read_bytes() == b"CERT-1"


def test_token_file(state: StateDir) -> None:
    assert state.stored_token() is None
    state.token_file.write_text("  the-token \n")
    assert state.stored_token() == "the-token"
    state.drop_token()
    assert not state.token_file.exists()
    assert state.stored_token() is None
    state.drop_token()  # dropping twice is fine


def test_blank_token_file_means_no_token(state: StateDir) -> None:
    state.token_file.write_text("\n\n")
    assert state.stored_token() is None


def test_status_round_trip(state: StateDir) -> None:
    assert state.read_status() is None
    status = {"phase": "online", "online": True, "last_error": None, "n": 3}
    state.write_status(status)
    assert state.read_status() == status
    state.write_status({"phase": "backoff"})
    assert state.read_status() == {"phase": "backoff"}
    assert mode(state.status_file) == 0o644


@pytest.mark.parametrize("content", ["", "{", "[1, 2]", "42"])
def test_bad_status_file_reads_as_none(state: StateDir, content: str) -> None:
    state.status_file.write_text(content)
    assert state.read_status() is None


def test_cert_window_of_a_real_certificate(state: StateDir, tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "pki")
    key = generate_key()
    cert = ca.issue_agent_cert(make_csr(key, IDENTITY.agent_id), IDENTITY.agent_id, timedelta(days=2))
    state.save_enrolment(IDENTITY, key_to_pem(key), cert_to_pem(cert), ca.ca_pem)
    info = cert_info(cert)
    assert state.read_cert() == cert
    not_before, not_after = state.cert_window()
    assert not_before == info.not_before.timestamp()
    assert not_after == info.not_after.timestamp()
    assert not_after - not_before == pytest.approx(2 * 86400, abs=600)


def test_cert_window_is_remembered_for_that_certificate_only(state: StateDir, tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "pki")
    key = generate_key()
    short = ca.issue_agent_cert(make_csr(key, IDENTITY.agent_id), IDENTITY.agent_id, timedelta(days=2))
    state.save_enrolment(IDENTITY, key_to_pem(key), cert_to_pem(short), ca.ca_pem)
    first = state.cert_window()
    cached = json.loads(state.window_file.read_text())
    assert (cached["not_before"], cached["not_after"]) == first
    # A forged cache for the same certificate is what a later start reads (no cryptography needed)...
    state.window_file.write_text(json.dumps({**cached, "not_after": 1.0}))
    assert state.cert_window() == (first[0], 1.0)
    # ...but a renewed certificate does not match it: recomputed, and remembered again.
    longer = ca.issue_agent_cert(make_csr(key, IDENTITY.agent_id), IDENTITY.agent_id, timedelta(days=9))
    state.swap_in(key_to_pem(key), cert_to_pem(longer))
    assert state.cert_window()[1] == cert_info(longer).not_after.timestamp()
    state.window_file.write_text("{not json")
    assert state.cert_window()[1] == cert_info(longer).not_after.timestamp()


def test_token_sha256() -> None:
    assert token_sha256("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
