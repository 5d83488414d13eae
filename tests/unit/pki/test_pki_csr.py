"""Tests for CSR vetting."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID

from dockmesh.pki.ca import CertificateAuthority
from dockmesh.pki.csr import MAX_CSR_BYTES, CsrError, parse_csr
from dockmesh.pki.identity import cert_to_pem
from dockmesh.pki.keys import generate_key, make_csr


def _csr_for(key: CertificateIssuerPrivateKeyTypes, cn: str = "agent") -> bytes:
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, algorithm)
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def test_accepts_p256() -> None:
    key = generate_key()
    assert parse_csr(make_csr(key, "a")).public_key() == key.public_key()


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(lambda: ec.generate_private_key(ec.SECP384R1()), id="p384"),
        pytest.param(lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), id="rsa2048"),
    ],
)
def test_accepts_other_allowed_keys(key: Callable[[], CertificateIssuerPrivateKeyTypes]) -> None:
    parse_csr(_csr_for(key()))


def test_rejects_garbage() -> None:
    with pytest.raises(CsrError, match="not a PEM certificate request"):
        parse_csr(b"\x00\xffnot a csr at all")


def test_rejects_certificate_instead_of_csr(ca: CertificateAuthority) -> None:
    with pytest.raises(CsrError, match="not a PEM certificate request"):
        parse_csr(cert_to_pem(ca.ca_cert))


def test_rejects_oversize() -> None:
    csr = make_csr(generate_key(), "a")
    padded = csr + b"\n" * (MAX_CSR_BYTES + 1 - len(csr))
    assert len(padded) == MAX_CSR_BYTES + 1
    with pytest.raises(CsrError, match="too large"):
        parse_csr(padded)


def test_rejects_tampered_signature() -> None:
    pem = make_csr(generate_key(), "aaaa")
    der = x509.load_pem_x509_csr(pem).public_bytes(serialization.Encoding.DER)
    # Change the signed subject without re-signing: structure stays valid, signature does not.
    tampered_der = der.replace(b"aaaa", b"aaab", 1)
    assert tampered_der != der
    tampered = (
        b"-----BEGIN CERTIFICATE REQUEST-----\n"
        + base64.encodebytes(tampered_der)
        + b"-----END CERTIFICATE REQUEST-----\n"
    )
    with pytest.raises(CsrError, match="signature is invalid"):
        parse_csr(tampered)


def test_rejects_rsa_1024() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(CsrError, match="1024 bits"):
        parse_csr(_csr_for(key))


def test_rejects_p521() -> None:
    with pytest.raises(CsrError, match="curve"):
        parse_csr(_csr_for(ec.generate_private_key(ec.SECP521R1())))


def test_rejects_ed25519() -> None:
    with pytest.raises(CsrError, match="key type is not allowed"):
        parse_csr(_csr_for(ed25519.Ed25519PrivateKey.generate()))


def test_csr_error_is_value_error() -> None:
    assert issubclass(CsrError, ValueError)


def test_accepts_rsa_4096_the_upper_bound() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    parse_csr(_csr_for(key))


def test_rejects_rsa_above_4096_bits() -> None:
    # Past the cap the key is refused before its signature is checked: big keys cost the CA CPU.
    key = rsa.generate_private_key(public_exponent=65537, key_size=4160)
    with pytest.raises(CsrError, match="4160 bits; 2048 to 4096"):
        parse_csr(_csr_for(key))


def test_rejects_rsa_with_an_unusual_exponent() -> None:
    key = rsa.generate_private_key(public_exponent=3, key_size=2048)
    with pytest.raises(CsrError, match="exponent 65537"):
        parse_csr(_csr_for(key))
