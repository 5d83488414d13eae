"""Tests for the private CA and certificate issuance."""

from __future__ import annotations

import ipaddress
import socket
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dockmesh.pki.ca import CertificateAuthority
from dockmesh.pki.csr import CsrError
from dockmesh.pki.identity import common_name, load_cert
from dockmesh.pki.keys import generate_key, key_to_pem, make_csr


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _sans(cert: x509.Certificate) -> x509.SubjectAlternativeName:
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def _hostile_csr(key: ec.EllipticCurvePrivateKey) -> bytes:
    """A CSR asking for everything an agent must never get."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "other")]))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("evil.example")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def test_creates_files_with_modes(ca: CertificateAuthority, ca_dir: Path) -> None:
    assert sorted(p.name for p in ca_dir.iterdir()) == ["ca.crt", "ca.key", "server.crt", "server.key"]
    assert _mode(ca_dir) == 0o700
    assert _mode(ca_dir / "ca.key") == 0o400
    assert _mode(ca_dir / "server.key") == 0o600
    assert ca.ca_cert_path == ca_dir / "ca.crt"
    assert ca.server_cert_path == ca_dir / "server.crt"
    assert ca.server_key_path == ca_dir / "server.key"
    assert ca.ca_cert_path.read_bytes() == ca.ca_pem


def test_ca_certificate_shape(ca: CertificateAuthority) -> None:
    cert = ca.ca_cert
    assert cert.subject == cert.issuer
    cn = common_name(cert) or ""
    assert cn.startswith("dockmesh CA ")
    suffix = cn.removeprefix("dockmesh CA ")
    assert len(suffix) == 8
    int(suffix, 16)
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert isinstance(cert.public_key().curve, ec.SECP256R1)  # type: ignore[union-attr]
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical
    assert bc.value.ca
    assert bc.value.path_length == 0
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical
    assert ku.value.key_cert_sign
    assert ku.value.crl_sign
    assert not ku.value.digital_signature
    cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert timedelta(days=3650) <= lifetime <= timedelta(days=3653)
    cert.verify_directly_issued_by(cert)


def test_server_certificate_shape(ca: CertificateAuthority) -> None:
    cert = load_cert(ca.server_cert_path.read_bytes())
    cert.verify_directly_issued_by(ca.ca_cert)
    assert common_name(cert) == "dockmesh agent listener"
    sans = _sans(cert)
    assert "localhost" in sans.get_values_for_type(x509.DNSName)
    assert socket.gethostname().lower() in sans.get_values_for_type(x509.DNSName)
    ips = sans.get_values_for_type(x509.IPAddress)
    assert ipaddress.ip_address("127.0.0.1") in ips
    assert ipaddress.ip_address("::1") in ips
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical
    assert not bc.value.ca
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert timedelta(days=1825) <= lifetime <= timedelta(days=1827)


def test_load_twice_keeps_everything(ca: CertificateAuthority, ca_dir: Path) -> None:
    server_pem = ca.server_cert_path.read_bytes()
    again = CertificateAuthority.load_or_create(ca_dir)
    assert again.ca_sha256 == ca.ca_sha256
    assert again.ca_pem == ca.ca_pem
    assert again.server_cert_path.read_bytes() == server_pem


def test_new_san_reissues_server_cert_and_keeps_ca(ca: CertificateAuthority, ca_dir: Path) -> None:
    old_server = ca.server_cert_path.read_bytes()
    old_key = ca.server_key_path.read_bytes()
    again = CertificateAuthority.load_or_create(
        ca_dir, sans=["Fleet.Example.com", "10.1.2.3", " ", "fe80::1"]
    )
    assert again.ca_sha256 == ca.ca_sha256
    new_server = again.server_cert_path.read_bytes()
    assert new_server != old_server
    assert again.server_key_path.read_bytes() != old_key
    assert _mode(again.server_key_path) == 0o600
    cert = load_cert(new_server)
    cert.verify_directly_issued_by(ca.ca_cert)
    sans = _sans(cert)
    assert "fleet.example.com" in sans.get_values_for_type(x509.DNSName)
    assert "localhost" in sans.get_values_for_type(x509.DNSName)
    ips = sans.get_values_for_type(x509.IPAddress)
    assert ipaddress.ip_address("10.1.2.3") in ips
    assert ipaddress.ip_address("fe80::1") in ips
    # Same SANs again (any case): nothing to do.
    third = CertificateAuthority.load_or_create(ca_dir, sans=["10.1.2.3", "fleet.example.COM"])
    assert third.server_cert_path.read_bytes() == new_server


def test_bracketed_ipv6_and_odd_hostname(ca_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "h\u00f6st")
    ca = CertificateAuthority.load_or_create(ca_dir, sans=["[2001:db8::5]"])
    sans = _sans(load_cert(ca.server_cert_path.read_bytes()))
    assert ipaddress.ip_address("2001:db8::5") in sans.get_values_for_type(x509.IPAddress)
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]


def test_server_cert_from_foreign_ca_is_replaced(
    ca: CertificateAuthority, ca_dir: Path, tmp_path: Path
) -> None:
    other = CertificateAuthority.load_or_create(tmp_path / "other")
    ca.server_cert_path.write_bytes(other.server_cert_path.read_bytes())
    ca.server_key_path.write_bytes(other.server_key_path.read_bytes())
    again = CertificateAuthority.load_or_create(ca_dir)
    load_cert(again.server_cert_path.read_bytes()).verify_directly_issued_by(ca.ca_cert)


def test_mismatched_server_key_is_replaced(ca: CertificateAuthority, ca_dir: Path) -> None:
    ca.server_key_path.write_bytes(key_to_pem(generate_key()))
    again = CertificateAuthority.load_or_create(ca_dir)
    key = serialization.load_pem_private_key(again.server_key_path.read_bytes(), password=None)
    assert key.public_key() == load_cert(again.server_cert_path.read_bytes()).public_key()


def test_orphan_ca_key_is_replaced(ca_dir: Path) -> None:
    ca_dir.mkdir()
    (ca_dir / "ca.key").write_bytes(key_to_pem(generate_key()))
    ca = CertificateAuthority.load_or_create(ca_dir)
    assert _mode(ca_dir / "ca.key") == 0o400
    key = serialization.load_pem_private_key((ca_dir / "ca.key").read_bytes(), password=None)
    assert key.public_key() == ca.ca_cert.public_key()


def test_missing_ca_key_is_an_error(ca: CertificateAuthority, ca_dir: Path) -> None:
    (ca_dir / "ca.key").unlink()
    with pytest.raises(ValueError, match="missing"):
        CertificateAuthority.load_or_create(ca_dir)


def test_mismatched_ca_key_is_an_error(ca: CertificateAuthority, ca_dir: Path) -> None:
    (ca_dir / "ca.key").chmod(0o600)
    (ca_dir / "ca.key").write_bytes(key_to_pem(generate_key()))
    with pytest.raises(ValueError, match="does not match"):
        CertificateAuthority.load_or_create(ca_dir)


def test_agent_cert_ignores_everything_in_csr(ca: CertificateAuthority) -> None:
    key = generate_key()
    before = datetime.now(UTC)
    cert = ca.issue_agent_cert(_hostile_csr(key), "agent-123", timedelta(seconds=90))
    after = datetime.now(UTC)

    cert.verify_directly_issued_by(ca.ca_cert)
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    assert cert.public_key() == key.public_key()
    assert cert.subject == x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agent-123")])
    assert cert.issuer == ca.ca_cert.subject
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical
    assert not bc.value.ca
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical
    assert ku.value.digital_signature
    assert not ku.value.key_cert_sign
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = ca.ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest

    slack = timedelta(seconds=2)
    nb = cert.not_valid_before_utc
    na = cert.not_valid_after_utc
    assert before - timedelta(seconds=60) - slack <= nb <= after - timedelta(seconds=60) + slack
    assert before + timedelta(seconds=90) - slack <= na <= after + timedelta(seconds=90) + slack


def test_agent_serials_are_random(ca: CertificateAuthority) -> None:
    csr = make_csr(generate_key(), "x")
    serials = {ca.issue_agent_cert(csr, "a", timedelta(hours=1)).serial_number for _ in range(5)}
    assert len(serials) == 5


def test_issue_rejects_bad_csr(ca: CertificateAuthority) -> None:
    with pytest.raises(CsrError):
        ca.issue_agent_cert(b"garbage", "a", timedelta(hours=1))


def test_issue_rejects_non_positive_lifetime(ca: CertificateAuthority) -> None:
    with pytest.raises(ValueError, match="lifetime"):
        ca.issue_agent_cert(make_csr(generate_key(), "x"), "a", timedelta(0))


def test_server_cert_near_expiry_is_renewed(
    ca: CertificateAuthority, ca_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dockmesh.pki.ca as ca_module

    old = ca.server_cert_path.read_bytes()
    monkeypatch.setattr(ca_module, "SERVER_RENEW_BEFORE", timedelta(days=4000))
    again = CertificateAuthority.load_or_create(ca_dir)
    assert again.server_cert_path.read_bytes() != old
    assert again.ca_sha256 == ca.ca_sha256
