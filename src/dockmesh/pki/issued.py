"""The agent's check of a certificate the server hands it, before it replaces anything on disk.

A certificate for another key would lock the agent out at the next connect (it cannot prove possession),
and one not signed by the pinned CA would be refused by the server: either way the agent must keep the
certificate it has and say why, instead of swapping in a pair that cannot work.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

# The CA backdates NotBefore by a minute; a few minutes more absorb clock skew between the two hosts.
SKEW = timedelta(minutes=5)


class IssuedCertError(ValueError):
    """The certificate from the server is not one this agent can use; the message says why."""


def _spki(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def check_issued(
    cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, now: datetime
) -> None:
    """Raise IssuedCertError unless `cert` is for `key`, signed by `ca`, and valid at `now`."""
    if _spki(cert.public_key()) != _spki(key.public_key()):
        raise IssuedCertError("the server's certificate is for another key than the one this agent made")
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise IssuedCertError(f"the server's certificate is not signed by the pinned CA ({exc!r})") from None
    now = now.astimezone(timezone.utc)
    if cert.not_valid_after_utc <= now:
        raise IssuedCertError(f"the server's certificate expired at {cert.not_valid_after_utc.isoformat()}")
    if cert.not_valid_before_utc > now + SKEW:
        raise IssuedCertError(
            f"the server's certificate is valid only from {cert.not_valid_before_utc.isoformat()}; "
            "check the clocks of the server and this host"
        )


def utcnow(clock_seconds: float) -> datetime:
    return datetime.fromtimestamp(clock_seconds, tz=timezone.utc)
