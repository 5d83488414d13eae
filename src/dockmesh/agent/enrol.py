"""Enrolment: pin-check the server's CA, then trade the one-time token and a CSR for a certificate.

The private key is generated here and never leaves the host; only the CSR is sent.
"""

from __future__ import annotations

import ssl
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.serialization import Encoding

from dockmesh.agent.config import AgentConfig
from dockmesh.agent.state import Identity, StateDir, token_sha256
from dockmesh.pki.identity import cert_to_pem, load_cert
from dockmesh.pki.keys import generate_key, key_to_pem, make_csr
from dockmesh.pki.pin import pem_sha256, pin_matches, token_pin
from dockmesh.pki.tls import client_context

TIMEOUT = aiohttp.ClientTimeout(total=20)


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


async def fetch_pinned_ca(enroll_url: str, pin: str) -> bytes:
    """GET /ca.crt without verification, then accept it only if its SHA-256 equals the pin."""
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
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


async def enrol(config: AgentConfig, state: StateDir, token: str, facts: dict[str, Any]) -> Identity:
    if not config.enroll_url:
        raise EnrolError("DOCKMESH_ENROLL_URL is not set (the server's https:// agent URL)", fatal=True)
    pin = resolve_pin(config, token)
    ca_pem = await fetch_pinned_ca(config.enroll_url, pin)
    key = generate_key()
    csr = make_csr(key, str(facts.get("hostname", "dockmesh-agent")))
    verified = client_context(ca_pem)
    payload = {"token": token, "csr": csr.decode(), "host": facts}
    try:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            async with session.post(f"{config.enroll_url}/enroll", json=payload, ssl=verified) as resp:
                data = await resp.json(content_type=None)
                status = resp.status
    except (aiohttp.ClientError, ValueError) as exc:
        raise EnrolError(f"enrolment request failed: {exc}", fatal=False) from exc
    if status != 200:
        message = (data or {}).get("error", {}).get("message", f"HTTP {status}")
        raise EnrolError(f"enrolment refused: {message}", fatal=status in (400, 401, 403))
    returned_ca = load_cert(data["ca"].encode()).public_bytes(Encoding.DER)
    if not pin_matches(returned_ca, pin):
        raise EnrolError("the server returned a CA that does not match the pin", fatal=True)
    identity = Identity(
        agent_id=str(data["agent_id"]),
        connect_url=str(data["connect_url"]),
        enroll_url=config.enroll_url,
        token_sha256=token_sha256(token),
    )
    state.save_enrolment(identity, key_to_pem(key), data["cert"].encode(), ca_pem)
    return identity
