"""Tests for key generation, serialisation and CSRs."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from dockmesh.pki.keys import generate_key, key_to_pem, load_key, make_csr


def test_generate_key_is_p256() -> None:
    key = generate_key()
    assert isinstance(key.curve, ec.SECP256R1)


def test_pem_round_trip_is_unencrypted_pkcs8() -> None:
    key = generate_key()
    pem = key_to_pem(key)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert load_key(pem).private_numbers() == key.private_numbers()


def test_load_key_rejects_non_ec() -> None:
    rsa_pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="EC private key"):
        load_key(rsa_pem)


def test_make_csr() -> None:
    key = generate_key()
    csr = x509.load_pem_x509_csr(make_csr(key, "agent-hint"))
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "agent-hint"
    assert csr.public_key() == key.public_key()
