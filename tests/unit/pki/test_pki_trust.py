"""Publicly trusted or not: the chain checked against a root store, the way curl would."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from dockmesh.pki.ca import CertificateAuthority
from dockmesh.pki.keys import generate_key
from dockmesh.pki.trust import publicly_trusted


def test_our_private_ca_is_not_publicly_trusted(ca: CertificateAuthority) -> None:
    leaf = ca.issue_listener_cert(generate_key().public_key(), ["ui.example.com"], "ui")
    assert not publicly_trusted([leaf], "ui.example.com")  # the system roots


def test_a_chain_to_a_root_in_the_store_is_trusted_for_its_names_only(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    leaf = ca.issue_listener_cert(generate_key().public_key(), ["ui.example.com"], "ui")
    bundle = tmp_path / "roots.pem"
    bundle.write_bytes(ca.ca_pem)
    assert publicly_trusted([leaf], "ui.example.com", bundle)
    assert publicly_trusted([leaf], "127.0.0.1", bundle)  # the CA adds loopback to every listener cert
    assert not publicly_trusted([leaf], "other.example.com", bundle)
    assert not publicly_trusted([], "ui.example.com", bundle)
    assert not publicly_trusted([leaf], "ui.example.com", tmp_path / "missing.pem")


def test_a_self_signed_leaf_is_not_trusted(ca: CertificateAuthority, tmp_path: Path) -> None:
    bundle = tmp_path / "roots.pem"
    bundle.write_bytes(ca.ca_pem)
    other = CertificateAuthority.load_or_create(tmp_path / "other")
    leaf = other.issue_listener_cert(generate_key().public_key(), ["ui.example.com"], "ui")
    assert isinstance(leaf, x509.Certificate)
    assert not publicly_trusted([leaf], "ui.example.com", bundle)
