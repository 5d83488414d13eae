"""Tests for certificate identity helpers."""

from __future__ import annotations

import hashlib
from datetime import UTC, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from dockmesh.pki.ca import CertificateAuthority
from dockmesh.pki.identity import cert_info, cert_to_pem, common_name, fingerprint, load_cert


def test_fingerprint_of_cert_and_der_agree(ca: CertificateAuthority) -> None:
    der = ca.ca_cert.public_bytes(serialization.Encoding.DER)
    expected = hashlib.sha256(der).hexdigest()
    assert fingerprint(ca.ca_cert) == expected
    assert fingerprint(der) == expected
    assert expected == expected.lower()
    assert ca.ca_sha256 == expected


def test_common_name(ca: CertificateAuthority) -> None:
    assert (common_name(ca.ca_cert) or "").startswith("dockmesh CA ")
    server = load_cert(ca.server_cert_path.read_bytes())
    assert common_name(server) == "dockmesh agent listener"


def test_common_name_missing(ca: CertificateAuthority) -> None:
    from cryptography.hazmat.primitives import hashes

    from dockmesh.pki.keys import generate_key

    key = generate_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca.ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(ca.ca_cert.not_valid_before_utc)
        .not_valid_after(ca.ca_cert.not_valid_after_utc)
        .sign(key, hashes.SHA256())
    )
    assert common_name(cert) is None


def test_load_cert_pem_and_der(ca: CertificateAuthority) -> None:
    pem = cert_to_pem(ca.ca_cert)
    assert pem.startswith(b"-----BEGIN CERTIFICATE-----")
    assert load_cert(pem) == ca.ca_cert
    assert load_cert(ca.ca_cert.public_bytes(serialization.Encoding.DER)) == ca.ca_cert


def test_cert_info(ca: CertificateAuthority) -> None:
    info = cert_info(ca.ca_cert)
    assert int(info.serial, 16) == ca.ca_cert.serial_number
    assert info.serial == info.serial.lower()
    assert info.not_before.utcoffset() == timedelta(0)
    assert info.not_after.tzinfo is not None
    assert info.not_after.astimezone(UTC) == ca.ca_cert.not_valid_after_utc
    assert info.fingerprint == ca.ca_sha256
