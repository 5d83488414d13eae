"""Certificate identity helpers: fingerprints, names, encodings."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class CertInfo:
    """Summary of a certificate for display and storage."""

    serial: str
    not_before: datetime
    not_after: datetime
    fingerprint: str


def fingerprint(cert: x509.Certificate | bytes) -> str:
    """SHA-256 of the certificate DER as lower-case hex; bytes are taken as DER."""
    der = cert if isinstance(cert, bytes) else cert.public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def common_name(cert: x509.Certificate) -> str | None:
    """The first subject CN, or None if there is none."""
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        return None
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def cert_to_pem(cert: x509.Certificate) -> bytes:
    """Encode a certificate as PEM."""
    return cert.public_bytes(serialization.Encoding.PEM)


def load_cert(pem_or_der: bytes) -> x509.Certificate:
    """Load a certificate from PEM or DER, sniffing which."""
    if pem_or_der.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(pem_or_der)
    return x509.load_der_x509_certificate(pem_or_der)


def cert_info(cert: x509.Certificate) -> CertInfo:
    """Extract serial, validity window (UTC-aware) and fingerprint."""
    return CertInfo(
        serial=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        fingerprint=fingerprint(cert),
    )
