"""The UI listener's own certificate, issued by our CA when the operator gives none.

Its key is created once and kept (0600) across restarts and re-issues: install commands and the CLI pin
that key, so new names or a renewal must not invalidate a pin already handed out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from cryptography import x509

from dockmesh.pki.ca import CertificateAuthority
from dockmesh.pki.files import write_atomic
from dockmesh.pki.identity import cert_to_pem
from dockmesh.pki.keys import generate_key, key_to_pem, load_key

WEB_KEY = "web.key"
WEB_CRT = "web.crt"
WEB_CN = "dockmesh web"
# Browsers cap server certificates near 398 days (Apple at 825 even for private roots); the server
# re-checks daily and re-issues within 30 days of expiry, on the same key.
WEB_LIFETIME = timedelta(days=397)


def ensure_web_cert(ca: CertificateAuthority, names: Sequence[str]) -> tuple[Path, Path, bool]:
    """(cert path, key path, re-issued?) of a certificate for ``names`` on the persistent web key."""
    key_path, crt_path = ca.directory / WEB_KEY, ca.directory / WEB_CRT
    if key_path.exists():
        # A corrupt key is an error the operator must see: silently replacing it breaks every pin.
        key = load_key(key_path.read_bytes())
    else:
        key = generate_key()
        write_atomic(key_path, key_to_pem(key), mode=0o600)
    try:
        cert: x509.Certificate | None = x509.load_pem_x509_certificate(crt_path.read_bytes())
    except (OSError, ValueError):
        cert = None  # derived state: re-issued below
    if cert is not None and ca.listener_cert_usable(cert, key, names):
        return crt_path, key_path, False
    cert = ca.issue_listener_cert(key.public_key(), names, WEB_CN, WEB_LIFETIME)
    write_atomic(crt_path, cert_to_pem(cert), mode=0o644)
    return crt_path, key_path, True
