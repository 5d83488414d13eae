"""Enrolment: pin-check the server's CA, then trade the one-time token and a CSR for a certificate.

The private key is generated here and never leaves the host; only the CSR is sent.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from typing import Any

import aiohttp

from dockmesh.agent.config import AgentConfig
from dockmesh.agent.state import Identity, StateDir, token_sha256
from dockmesh.pki.pin import pem_sha256, pin_matches, token_pin
from dockmesh.pki.tls import client_context

TIMEOUT = aiohttp.ClientTimeout(total=20)
_REPLY_KEYS = ("agent_id", "cert", "ca", "connect_url")


class EnrolError(Exception):
    """Enrolment failed; `fatal` means retrying cannot help."""

    def __init__(self, message: str, *, fatal: bool) -> None:
        super().__init__(message)
        self.fatal = fatal


def resolve_pin(config: AgentConfig, token: str) -> str:
    carried = token_pin(token)
    if config.ca_sha256 and carried and config.ca_sha256 != carried:
        raise EnrolError("DOCKMESH_CA_SHA256 disagrees with the CA pin inside the token", fatal=True)
    pin = config.ca_sha256 or carried
    if pin is None:
        raise EnrolError(
            "no CA pin: set DOCKMESH_CA_SHA256 (shown with the token) so first contact is verified",
            fatal=True,
        )
    return pin


def unverified_context() -> ssl.SSLContext:
    """A client context that verifies nothing, for fetching the CA whose pin the caller then checks.

    Not create_default_context(): that loads the system's CA bundle (measured: most of an enrolment's
    CPU) only for verification to be switched off.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def fetch_pinned_ca(enroll_url: str, pin: str) -> bytes:
    """GET /ca.crt without verification, then accept it only if its SHA-256 equals the pin."""
    # cryptography is imported by enrolment and renewal only: it is a quarter of an idle agent's
    # memory budget (docs/artifact.md "Footprint").
    from cryptography.hazmat.primitives.serialization import Encoding

    from dockmesh.pki.identity import cert_to_pem, load_cert

    unverified = unverified_context()
    try:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            async with session.get(f"{enroll_url}/ca.crt", ssl=unverified) as resp:
                if resp.status != 200:
                    raise EnrolError(f"{enroll_url}/ca.crt answered HTTP {resp.status}", fatal=False)
                body = await resp.content.read(64 * 1024)
    except aiohttp.ClientError as exc:
        raise EnrolError(f"cannot reach {enroll_url}: {exc}", fatal=False) from exc
    try:
        cert = load_cert(body)
    except ValueError:
        raise EnrolError(f"{enroll_url}/ca.crt is not a certificate", fatal=True) from None
    der = cert.public_bytes(Encoding.DER)
    if not pin_matches(der, pin):
        raise EnrolError(
            f"CA pin mismatch: {enroll_url} presented CA {pem_sha256(der)[:16]}…, expected {pin[:16]}… "
            "(wrong server, or someone in between); nothing was sent",
            fatal=True,
        )
    return cert_to_pem(cert)


def _refusal(status: int, data: Any) -> EnrolError:
    """Only 401 says the token itself is bad (invalid, used or expired): that one is for good.

    A 400, 429 or 5xx may come from a proxy, a restarting server or a body cut in transit while
    the token is still good, so those are retried with backoff until the token's own answer comes.
    """
    error = data.get("error") if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    text = str(message)[:300] if message else f"HTTP {status}"
    if status == 401:
        return EnrolError(
            f"enrolment refused: {text} (create a new token on the server: rotate-token)", fatal=True
        )
    return EnrolError(f"enrolment failed, will retry: {text}", fatal=False)


async def enrol(config: AgentConfig, state: StateDir, token: str, facts: dict[str, Any]) -> Identity:
    if not config.enroll_url:
        raise EnrolError("DOCKMESH_ENROLL_URL is not set (the server's https:// agent URL)", fatal=True)
    from cryptography.hazmat.primitives.serialization import Encoding  # lazily: see fetch_pinned_ca

    from dockmesh.pki.identity import cert_to_pem, load_cert
    from dockmesh.pki.issued import IssuedCertError, check_issued, utcnow
    from dockmesh.pki.keys import generate_key, key_to_pem, make_csr

    pin = resolve_pin(config, token)
    ca_pem = await fetch_pinned_ca(config.enroll_url, pin)
    key = generate_key()
    csr = make_csr(key, str(facts.get("hostname", "dockmesh-agent")))
    verified = client_context(ca_pem)
    payload = {"token": token, "csr": csr.decode(), "host": facts}
    try:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            async with session.post(f"{config.enroll_url}/enroll", json=payload, ssl=verified) as resp:
                status = resp.status
                raw = await resp.content.read(256 * 1024)
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
        raise EnrolError(
            f"enrolment request failed, will retry: {exc or type(exc).__name__}", fatal=False
        ) from exc
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if status != 200:
        raise _refusal(status, data)
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in _REPLY_KEYS):
        raise EnrolError("enrolment answer is malformed, will retry", fatal=False)
    try:
        returned_ca = load_cert(data["ca"].encode()).public_bytes(Encoding.DER)
        cert = load_cert(data["cert"].encode())
    except ValueError:
        raise EnrolError("enrolment answer holds no readable certificate, will retry", fatal=False) from None
    if not pin_matches(returned_ca, pin):
        raise EnrolError("the server returned a CA that does not match the pin", fatal=True)
    try:
        check_issued(cert, key, load_cert(ca_pem), utcnow(time.time()))
    except IssuedCertError as exc:
        # The token is spent by now: say so, and keep nothing of this answer.
        raise EnrolError(f"{exc}; nothing was saved. Rotate the token and enrol again", fatal=True) from None
    identity = Identity(
        agent_id=str(data["agent_id"]),
        connect_url=str(data["connect_url"]),
        enroll_url=config.enroll_url,
        token_sha256=token_sha256(token),
    )
    state.save_enrolment(identity, key_to_pem(key), cert_to_pem(cert), ca_pem)
    state.learn_upgrade_key(data.get("upgrade_public_key"))
    return identity
