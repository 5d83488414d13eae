"""Whether a certificate chain verifies against the system's public trust store."""

from __future__ import annotations

import ipaddress
import ssl
import warnings
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.x509 import verification

SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def system_bundle() -> Path:
    cafile = ssl.get_default_verify_paths().cafile
    return Path(cafile) if cafile else SYSTEM_BUNDLE


def publicly_trusted(chain: Sequence[x509.Certificate], host: str, bundle: Path | None = None) -> bool:
    """True if ``chain`` (leaf first) verifies for ``host`` against ``bundle`` (default: the system roots).

    Decides whether the plain `curl -fsSL https://…` install command is offered: curl verifies against the
    same roots, so the answer here must be the one curl would give on a stock host.
    """
    if not chain or not host:
        return False
    try:
        with warnings.catch_warnings():
            # Stock bundles hold a few old roots cryptography warns about (e.g. negative serials).
            warnings.simplefilter("ignore")
            roots = x509.load_pem_x509_certificates((bundle or system_bundle()).read_bytes())
    except (OSError, ValueError):
        return False
    try:
        subject: x509.DNSName | x509.IPAddress = x509.IPAddress(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        subject = x509.DNSName(host)
    verifier = verification.PolicyBuilder().store(verification.Store(roots)).build_server_verifier(subject)
    try:
        verifier.verify(chain[0], list(chain[1:]))
    except (verification.VerificationError, ValueError):
        return False
    return True
