"""Key pins in curl's --pinnedpubkey form."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from dockmesh.pki.ca import CertificateAuthority
from dockmesh.pki.keys import generate_key
from dockmesh.pki.spki import cert_matches_pin, spki_pin, well_formed_pin


def test_pin_matches_the_recipe_in_curls_documentation(ca: CertificateAuthority, tmp_path: Path) -> None:
    # curl's man page: openssl x509 -pubkey | openssl pkey -pubin -outform der | openssl dgst -sha256
    # -binary | openssl enc -base64. The pin must be byte-for-byte what that pipeline prints.
    recipe = (
        f"openssl x509 -in {ca.server_cert_path} -pubkey -noout | openssl pkey -pubin -outform der"
        " | openssl dgst -sha256 -binary | openssl enc -base64"
    )
    expected = subprocess.run(["sh", "-c", recipe], capture_output=True, text=True, check=True).stdout.strip()
    cert = ca.server_cert_path.read_bytes()
    from cryptography import x509

    assert spki_pin(x509.load_pem_x509_certificate(cert)) == f"sha256//{expected}"


def test_pin_names_the_key_not_the_certificate(ca: CertificateAuthority) -> None:
    key = generate_key()
    one = ca.issue_listener_cert(key.public_key(), ["a.example"], "x")
    two = ca.issue_listener_cert(key.public_key(), ["b.example"], "x")
    assert spki_pin(one) == spki_pin(two) == spki_pin(key.public_key())
    assert spki_pin(generate_key().public_key()) != spki_pin(one)
    assert cert_matches_pin(one.public_bytes(serialization.Encoding.DER), spki_pin(two))
    assert not cert_matches_pin(
        one.public_bytes(serialization.Encoding.DER), spki_pin(generate_key().public_key())
    )


def test_well_formed_pin() -> None:
    good = spki_pin(generate_key().public_key())
    assert well_formed_pin(good)
    assert not well_formed_pin(good[:-2])
    assert not well_formed_pin(good.replace("sha256//", "sha1//"))
    assert not well_formed_pin("sha256//" + base64.b64encode(b"x" * 31).decode() + "A")
    assert not well_formed_pin(good[:-1] + "$")
    assert not well_formed_pin(good + ";id")
