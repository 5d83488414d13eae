"""Real in-memory mTLS handshakes between client_context and server_context."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from dockmesh.pki.ca import CertificateAuthority
from dockmesh.pki.identity import cert_to_pem, fingerprint, load_cert
from dockmesh.pki.keys import generate_key, key_to_pem, make_csr
from dockmesh.pki.tls import client_context, peer_certificate, server_context

TLS_VERSIONS = [
    pytest.param(ssl.TLSVersion.TLSv1_2, id="tls1.2"),
    pytest.param(ssl.TLSVersion.TLSv1_3, id="tls1.3"),
]


@dataclass
class Result:
    client: ssl.SSLObject
    server: ssl.SSLObject
    client_error: ssl.SSLError | None
    server_error: ssl.SSLError | None


def _handshake(client_ctx: ssl.SSLContext, server_ctx: ssl.SSLContext, hostname: str = "localhost") -> Result:
    """Pump a handshake between two SSLObjects over memory BIOs until both sides settle."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=hostname)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    errors: dict[str, ssl.SSLError | None] = {"client": None, "server": None}
    for _ in range(50):
        for name, obj in (("client", client), ("server", server)):
            if done[name]:
                continue
            try:
                obj.do_handshake()
                done[name] = True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as exc:
                errors[name] = exc
                done[name] = True
        moved = False
        for src, dst in ((c_out, s_in), (s_out, c_in)):
            data = src.read()
            if data:
                dst.write(data)
                moved = True
        if all(done.values()) and not moved:
            break
    # In TLS 1.3 the client finishes before the server has judged its certificate; a round of
    # application data surfaces any alert the server sent.
    if errors["client"] is None and errors["server"] is None:
        client.write(b"ping")
        s_in.write(c_out.read())
        assert server.read(4) == b"ping"
        server.write(b"pong")
        c_in.write(s_out.read())
        assert client.read(4) == b"pong"
    elif errors["client"] is None and done["client"]:
        c_in.write(s_out.read())
        try:
            client.read(4)
        except ssl.SSLError as exc:
            errors["client"] = exc
    return Result(client, server, errors["client"], errors["server"])


def _agent_files(ca: CertificateAuthority, directory: Path, agent_id: str) -> tuple[Path, Path]:
    key = generate_key()
    cert = ca.issue_agent_cert(make_csr(key, "ignored"), agent_id, timedelta(hours=1))
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "agent.crt", directory / "agent.key"
    cert_path.write_bytes(cert_to_pem(cert))
    key_path.write_bytes(key_to_pem(key))
    return cert_path, key_path


def _client(
    ca_pem: bytes, version: ssl.TLSVersion, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    ctx = client_context(ca_pem, cert, key)
    ctx.maximum_version = version
    return ctx


@pytest.mark.parametrize("version", TLS_VERSIONS)
def test_mutual_tls_handshake(ca: CertificateAuthority, tmp_path: Path, version: ssl.TLSVersion) -> None:
    cert_path, key_path = _agent_files(ca, tmp_path / "agent", "agent-7")
    result = _handshake(_client(ca.ca_pem, version, cert_path, key_path), server_context(ca))
    assert result.client_error is None
    assert result.server_error is None
    assert result.server.version() == ("TLSv1.2" if version is ssl.TLSVersion.TLSv1_2 else "TLSv1.3")
    peer = peer_certificate(result.server)
    assert peer is not None
    assert fingerprint(peer) == fingerprint(load_cert(cert_path.read_bytes()))
    server_cert = peer_certificate(result.client)
    assert server_cert is not None
    assert fingerprint(server_cert) == fingerprint(load_cert(ca.server_cert_path.read_bytes()))


@pytest.mark.parametrize("version", TLS_VERSIONS)
def test_no_client_cert_is_allowed(ca: CertificateAuthority, version: ssl.TLSVersion) -> None:
    result = _handshake(_client(ca.ca_pem, version), server_context(ca))
    assert result.client_error is None
    assert result.server_error is None
    assert peer_certificate(result.server) is None


@pytest.mark.parametrize("hostname", ["127.0.0.1", "::1", "fleet.example.com"])
def test_server_names_verify(ca_dir: Path, hostname: str) -> None:
    ca = CertificateAuthority.load_or_create(ca_dir, sans=["fleet.example.com"])
    result = _handshake(client_context(ca.ca_pem), server_context(ca), hostname=hostname)
    assert result.client_error is None
    assert result.server_error is None


def test_wrong_hostname_fails(ca: CertificateAuthority) -> None:
    result = _handshake(client_context(ca.ca_pem), server_context(ca), hostname="not-us.example")
    assert isinstance(result.client_error, ssl.SSLCertVerificationError)


@pytest.mark.parametrize("version", TLS_VERSIONS)
def test_client_cert_from_foreign_ca_is_refused(
    ca: CertificateAuthority, tmp_path: Path, version: ssl.TLSVersion
) -> None:
    foreign = CertificateAuthority.load_or_create(tmp_path / "foreign")
    cert_path, key_path = _agent_files(foreign, tmp_path / "agent", "agent-7")
    result = _handshake(_client(ca.ca_pem, version, cert_path, key_path), server_context(ca))
    assert isinstance(result.server_error, ssl.SSLCertVerificationError)
    assert result.client_error is not None
    assert peer_certificate(result.server) is None


@pytest.mark.parametrize("version", TLS_VERSIONS)
def test_client_trusting_foreign_ca_rejects_server(
    ca: CertificateAuthority, tmp_path: Path, version: ssl.TLSVersion
) -> None:
    foreign = CertificateAuthority.load_or_create(tmp_path / "foreign")
    result = _handshake(_client(foreign.ca_pem, version), server_context(ca))
    assert isinstance(result.client_error, ssl.SSLCertVerificationError)
    assert result.server_error is not None


def test_contexts_are_pinned_and_modern(ca: CertificateAuthority, tmp_path: Path) -> None:
    server = server_context(ca)
    assert server.minimum_version == ssl.TLSVersion.TLSv1_2
    assert server.verify_mode == ssl.CERT_OPTIONAL
    cert_path, key_path = _agent_files(ca, tmp_path / "agent", "agent-7")
    client = client_context(ca.ca_pem, cert_path, key_path)
    assert client.minimum_version == ssl.TLSVersion.TLSv1_2
    assert client.check_hostname
    assert client.verify_mode == ssl.CERT_REQUIRED
    # Only our CA: no system roots were loaded.
    assert [c["subject"] for c in client.get_ca_certs()] == [c["subject"] for c in server.get_ca_certs()]
    assert len(client.get_ca_certs()) == 1


def test_key_without_cert_is_an_error(ca: CertificateAuthority, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="key_path"):
        client_context(ca.ca_pem, None, tmp_path / "agent.key")


def test_peer_certificate_none() -> None:
    assert peer_certificate(None) is None
