"""Public-key pins in curl's ``--pinnedpubkey sha256//…`` form.

A pin names the key, not the certificate: the server may re-issue its certificate (new names, renewal)
and every install command already handed out keeps working, as long as the key stays.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

PREFIX = "sha256//"


def spki_pin(key: PublicKeyTypes | x509.Certificate) -> str:
    """``sha256//`` + base64 of the SHA-256 of the DER SubjectPublicKeyInfo (what curl compares)."""
    public = key.public_key() if isinstance(key, x509.Certificate) else key
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return PREFIX + base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")


def well_formed_pin(pin: str) -> bool:
    """``sha256//`` and 44 base64 characters encoding 32 bytes; nothing else reaches a shell line."""
    if not pin.startswith(PREFIX) or len(pin) != len(PREFIX) + 44:
        return False
    try:
        return len(base64.b64decode(pin[len(PREFIX) :], validate=True)) == 32
    except ValueError:
        return False


def cert_matches_pin(der: bytes, pin: str) -> bool:
    """Whether the DER certificate carries the pinned key (constant-time compare)."""
    return hmac.compare_digest(spki_pin(x509.load_der_x509_certificate(der)), pin)
