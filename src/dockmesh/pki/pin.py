"""Enrolment tokens that carry the CA pin: URL + token are enough for a verified first contact."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32,64}(\.[0-9a-f]{64})?$")


def make_token(ca_sha256: str) -> str:
    """256 random bits, then '.', then the SHA-256 of the CA certificate."""
    return f"{secrets.token_urlsafe(32)}.{ca_sha256}"


def well_formed(token: str) -> bool:
    return bool(_TOKEN.fullmatch(token))


def token_pin(token: str) -> str | None:
    """The CA fingerprint a token carries, if it carries one."""
    _, dot, pin = token.partition(".")
    return pin if dot and len(pin) == 64 else None


def pem_sha256(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def pin_matches(der: bytes, pin: str) -> bool:
    return hmac.compare_digest(pem_sha256(der), pin.lower())
