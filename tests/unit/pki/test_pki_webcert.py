"""The UI listener's self-issued certificate: its names, and a key that outlives re-issues."""

from __future__ import annotations

import ipaddress
import socket
import stat
from datetime import timedelta
from pathlib import Path

from cryptography import x509

from dockmesh.pki.ca import CertificateAuthority
from dockmesh.pki.identity import cert_to_pem
from dockmesh.pki.keys import load_key
from dockmesh.pki.spki import spki_pin
from dockmesh.pki.webcert import ensure_web_cert


def names(cert_path: Path) -> set[str]:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(n.value) for n in san}


def test_cert_carries_the_public_name_the_hostname_and_loopback(ca: CertificateAuthority) -> None:
    crt, key, _ = ensure_web_cert(ca, ["dockmesh.example.com", "10.1.2.3"])
    got = names(crt)
    assert {"dockmesh.example.com", "localhost", "127.0.0.1", "10.1.2.3"} <= got
    assert socket.gethostname().lower() in got
    cert = x509.load_pem_x509_certificate(crt.read_bytes())
    cert.verify_directly_issued_by(ca.ca_cert)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert ipaddress.ip_address("10.1.2.3") in {
        n.value for n in cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    }


def test_key_survives_restarts_and_name_changes(ca_dir: Path) -> None:
    ca = CertificateAuthority.load_or_create(ca_dir)
    crt, key, issued = ensure_web_cert(ca, ["one.example"])
    assert issued
    first_pin = spki_pin(load_key(key.read_bytes()).public_key())
    first_cert = crt.read_bytes()
    # Same names after a restart: nothing is re-issued.
    again = CertificateAuthority.load_or_create(ca_dir)
    assert ensure_web_cert(again, ["one.example"])[2] is False
    assert crt.read_bytes() == first_cert
    # A new name: a new certificate, the same key, so every pin handed out stays valid.
    assert ensure_web_cert(again, ["one.example", "two.example"])[2] is True
    assert crt.read_bytes() != first_cert
    assert "two.example" in names(crt)
    assert spki_pin(x509.load_pem_x509_certificate(crt.read_bytes())) == first_pin


def test_cert_near_expiry_is_reissued_on_the_same_key(ca: CertificateAuthority) -> None:
    crt, key_path, _ = ensure_web_cert(ca, [])
    key = load_key(key_path.read_bytes())
    cert = x509.load_pem_x509_certificate(crt.read_bytes())
    # Replace it with one that lapses in a week: the next start must renew it.
    short = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(cert.issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(cert.not_valid_before_utc)
        .not_valid_after(cert.not_valid_before_utc + timedelta(days=7))
    )
    for ext in cert.extensions:
        short = short.add_extension(ext.value, ext.critical)
    crt.write_bytes(cert_to_pem(short.sign(ca._key, cert.signature_hash_algorithm)))  # type: ignore[arg-type]
    assert ensure_web_cert(ca, [])[2] is True
    renewed = x509.load_pem_x509_certificate(crt.read_bytes())
    # A year or so, below what browsers accept for server certificates.
    assert (
        timedelta(days=300)
        < renewed.not_valid_after_utc - renewed.not_valid_before_utc
        <= timedelta(days=398)
    )
    assert renewed.public_key() == key.public_key()


def test_a_foreign_or_broken_cert_is_replaced(ca: CertificateAuthority, tmp_path: Path) -> None:
    crt, _key, _ = ensure_web_cert(ca, [])
    crt.write_text("garbage")
    ensure_web_cert(ca, [])
    x509.load_pem_x509_certificate(crt.read_bytes()).verify_directly_issued_by(ca.ca_cert)
    other = CertificateAuthority.load_or_create(tmp_path / "other")
    crt.write_bytes(ensure_web_cert(other, [])[0].read_bytes())
    ensure_web_cert(ca, [])
    x509.load_pem_x509_certificate(crt.read_bytes()).verify_directly_issued_by(ca.ca_cert)
