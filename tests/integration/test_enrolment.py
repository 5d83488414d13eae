"""Enrolment over the real agent listener: tokens, CSRs, pins, races."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from datetime import datetime
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dockmesh.pki.identity import load_cert
from dockmesh.pki.keys import generate_key, make_csr
from dockmesh.pki.tls import client_context
from tests.fleet import wait_for
from tests.integration.harness import ServerProc

pytestmark = pytest.mark.both_engines


def ca_pem(server: ServerProc) -> bytes:
    return (server.data_dir / "pki" / "ca.crt").read_bytes()


async def post_enroll(server: ServerProc, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    ctx = client_context(ca_pem(server))
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.agent_url}/enroll", json=body, ssl=ctx) as resp:
            return resp.status, await resp.json(content_type=None)


def enroll(server: ServerProc, token: str, csr: str | None = None) -> tuple[int, dict[str, Any]]:
    if csr is None:
        csr = make_csr(generate_key(), "host").decode()
    return asyncio.run(post_enroll(server, {"token": token, "csr": csr, "host": {"hostname": "h"}}))


def test_create_agent_returns_token_and_install_command(server: ServerProc) -> None:
    created = server.create_agent("web-1")
    assert created["status"] == "pending"
    assert created["name"] == "web-1"
    token = created["token"]
    assert len(token.split(".")[0]) >= 43  # 256 random bits
    assert created["ca_sha256"] in token  # the token carries the CA pin
    assert created["enroll_url"] == server.agent_url
    assert f"{server.url}/install/agent.sh?token={token}" in created["install_command"]
    assert created["install_command"].endswith("| sudo bash")
    listed = server.api.get("/api/v1/agents")["items"]
    assert [a["id"] for a in listed] == [created["id"]]
    assert "token" not in listed[0]


def test_enrol_issues_server_chosen_identity_despite_hostile_csr(server: ServerProc) -> None:
    created = server.create_agent("h")
    key = generate_key()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "admin")]))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    from cryptography.hazmat.primitives.serialization import Encoding

    status, body = enroll(server, created["token"], csr.public_bytes(Encoding.PEM).decode())
    assert status == 200, body
    cert = load_cert(body["cert"].encode())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == created["id"]
    assert body["agent_id"] == created["id"]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert body["connect_url"] == f"{server.agent_url}/connect"
    assert body["ca"].encode() == ca_pem(server)
    after = server.api.agent(created["id"])
    assert after["status"] == "offline"
    assert after["cert"]["serial"] == format(cert.serial_number, "x")


def test_used_token_is_refused_and_changes_nothing(server: ServerProc) -> None:
    created = server.create_agent("h")
    assert enroll(server, created["token"])[0] == 200
    before = server.api.agent(created["id"])
    status, body = enroll(server, created["token"])
    assert status == 401
    assert body["error"]["code"] == "invalid_token"
    assert server.api.agent(created["id"]) == before
    assert len(server.api.get("/api/v1/agents")["items"]) == 1


def test_twenty_concurrent_enrolments_with_one_token_exactly_one_wins(server: ServerProc) -> None:
    created = server.create_agent("h")
    csrs = [make_csr(generate_key(), f"h{i}").decode() for i in range(20)]

    async def race() -> list[tuple[int, dict[str, Any]]]:
        return await asyncio.gather(
            *(post_enroll(server, {"token": created["token"], "csr": c, "host": {}}) for c in csrs)
        )

    results = asyncio.run(race())
    statuses = [s for s, _ in results]
    assert statuses.count(200) == 1, statuses
    # Losers are refused; past ten failures the limiter answers 429 instead of 401.
    assert set(statuses) - {200} <= {401, 429}, statuses
    winner = next(b for s, b in results if s == 200)
    assert server.api.agent(created["id"])["cert"]["serial"] == format(
        load_cert(winner["cert"].encode()).serial_number, "x"
    )


def test_expired_token_is_refused(server_factory: Any) -> None:
    server = server_factory(env={"DOCKMESH_TOKEN_TTL": "1s"})
    created = server.create_agent("h")
    expires = datetime.fromisoformat(created["token_expires_at"]).timestamp()
    # Wait for the moment the token expires (the server shares this machine's clock), not a fixed time.
    wait_for(lambda: time.time() > expires + 0.05, 10, message="token never expired")
    status, body = enroll(server, created["token"])
    assert status == 401, body
    assert server.api.agent(created["id"])["status"] == "pending"


def test_bad_csrs_are_400_and_keep_the_token_usable(server: ServerProc) -> None:
    created = server.create_agent("h")
    status, body = enroll(server, created["token"], "not a csr at all")
    assert status == 400
    assert body["error"]["code"] == "bad_csr"
    oversize = "-----BEGIN CERTIFICATE REQUEST-----\n" + "A" * 20000 + "\n-----END CERTIFICATE REQUEST-----\n"
    status, body = enroll(server, created["token"], oversize)
    assert status == 400
    assert body["error"]["code"] == "bad_csr"
    assert server.api.agent(created["id"])["status"] == "pending"
    assert enroll(server, created["token"])[0] == 200


def test_bad_token_shapes_and_rate_limit(server: ServerProc) -> None:
    for token in ["", "short", "$(touch /tmp/x)", "a" * 500]:
        status, _body = enroll(server, token)
        assert status in (401, 429), (token, status)
    statuses = [enroll(server, "x" * 43)[0] for _ in range(12)]
    assert statuses[-1] == 429
    # Even a valid token is refused while this address is blocked: failures cost the attacker, not the check.
    created = server.create_agent("h")
    assert enroll(server, created["token"])[0] == 429


def test_ca_cert_endpoint_serves_the_pinned_ca(server: ServerProc) -> None:
    created = server.create_agent("h")

    async def fetch() -> bytes:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.agent_url}/ca.crt", ssl=ctx) as resp:
                return await resp.read()

    import hashlib

    from cryptography.hazmat.primitives.serialization import Encoding

    der = load_cert(asyncio.run(fetch())).public_bytes(Encoding.DER)
    assert hashlib.sha256(der).hexdigest() == created["ca_sha256"]


def test_api_needs_auth_and_errors_are_json(server: ServerProc) -> None:
    from tests.integration.harness import Api

    anon = Api(server.url)
    status, body = anon.call("GET", "/api/v1/agents")
    assert status == 401
    assert body["error"]["code"] == "unauthorized"
    status, body = anon.call("POST", "/api/v1/auth/login", {"username": "admin", "password": "wrong"})
    assert status == 401
    assert body["error"]["code"] == "bad_credentials"
    status, body = server.api.call("GET", "/api/v1/agents/nope")
    assert status == 404
    assert body["error"]["code"] == "agent_not_found"
    status, body = server.api.call("POST", "/api/v1/agents", {"name": ""})
    assert status == 400
    assert "name" in body["error"]["message"]
    status, _raw = server.api.call("POST", "/api/v1/agents", raw=True)
    status, body = server.api.call("GET", "/api/v1/nothing-here")
    assert status == 404
    assert body["error"]["code"] == "not_found"
    req_status, payload = server.api.call("POST", "/api/v1/agents", body=None, raw=True)
    assert req_status == 400
    assert json.loads(payload)["error"]["code"] == "invalid_field"
