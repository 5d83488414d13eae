"""SSL contexts for the agent listener (server) and agents (client), both pinned to our CA."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the agent imports this module; it must not load cryptography for it
    from cryptography import x509

    from dockmesh.pki.ca import CertificateAuthority


def _harden(ctx: ssl.SSLContext, ca_pem: bytes) -> None:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # Only our CA is trusted; cadata must be str for PEM (bytes would be parsed as DER).
    ctx.load_verify_locations(cadata=ca_pem.decode("ascii"))
    # Strict RFC 5280 checks (Python 3.13's default) so malformed certs fail here, not in the field.
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT


def server_context(ca: CertificateAuthority) -> ssl.SSLContext:
    """TLS context for the agent listener; client certs are optional but must chain to our CA."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _harden(ctx, ca.ca_pem)
    ctx.load_cert_chain(certfile=ca.server_cert_path, keyfile=ca.server_key_path)
    # OPTIONAL: enrolment and /ca.crt are reached without a client cert; /connect insists on one
    # itself. A presented cert that does not verify still aborts the handshake.
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def client_context(
    ca_pem: bytes, cert_path: Path | None = None, key_path: Path | None = None
) -> ssl.SSLContext:
    """TLS context for an agent: trusts only ``ca_pem`` and presents its client cert if given."""
    if key_path is not None and cert_path is None:
        raise ValueError("key_path given without cert_path")
    # PROTOCOL_TLS_CLIENT loads no system roots, so the pinned CA is the only trust anchor.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _harden(ctx, ca_pem)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    if cert_path is not None:
        ctx.load_cert_chain(certfile=cert_path, keyfile=key_path)
    return ctx


def peer_certificate(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> x509.Certificate | None:
    """The peer's verified certificate, or None if it presented none or the handshake is not done."""
    if ssl_object is None:
        return None
    try:
        der = ssl_object.getpeercert(binary_form=True)
    except ValueError:
        # Handshake not (successfully) completed: there is no verified peer, which callers
        # must treat exactly like an absent certificate.
        return None
    if not der:
        return None
    from cryptography import x509

    return x509.load_der_x509_certificate(der)
