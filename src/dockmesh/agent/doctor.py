"""`dockmesh-agent doctor`: each step of getting online, checked in order, the first failure explained."""

from __future__ import annotations

import asyncio
import email.utils
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from cryptography.hazmat.primitives.serialization import Encoding

from dockmesh.agent.config import AgentConfig
from dockmesh.agent.enrol import unverified_context
from dockmesh.agent.state import StateDir
from dockmesh.docker.engine import EngineUnavailable, connect, engine_info
from dockmesh.pki.identity import load_cert
from dockmesh.pki.pin import pem_sha256
from dockmesh.pki.tls import client_context
from dockmesh.proto import CloseCode


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


async def diagnose(config: AgentConfig) -> list[Check]:
    checks: list[Check] = []
    state = StateDir(config.state_dir)
    identity = state.identity()
    url = config.enroll_url or (identity.enroll_url if identity else None)
    if not url:
        return [Check("config", False, "DOCKMESH_ENROLL_URL is not set and the agent is not enrolled")]
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    checks.append(Check("config", True, f"server {url}, state {config.state_dir}"))

    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        checks.append(Check("dns", True, f"{host} → {infos[0][4][0]}"))
    except OSError as exc:
        checks.append(Check("dns", False, f"cannot resolve {host}: {exc}"))
        return [*checks, await _docker(config)]

    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
        writer.close()
        checks.append(Check("tcp", True, f"{host}:{port} accepts connections"))
    except (asyncio.TimeoutError, OSError) as exc:
        checks.append(Check("tcp", False, f"cannot connect to {host}:{port}: {exc or 'timeout'}"))
        return [*checks, await _docker(config)]

    checks.append(await _pin(url, config, state))
    if identity is not None:
        checks.append(_cert(state))
        checks.append(await _link(identity.connect_url, state))
    checks.append(await _docker(config))
    return checks


async def _pin(url: str, config: AgentConfig, state: StateDir) -> Check:
    unverified = unverified_context()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            async with http.get(f"{url}/ca.crt", ssl=unverified) as resp:
                body = await resp.content.read(64 * 1024)
                date = resp.headers.get("Date")
    except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
        return Check("tls", False, f"TLS to {url} failed: {exc}")
    try:
        served = pem_sha256(load_cert(body).public_bytes(Encoding.DER))
    except ValueError:
        return Check("tls", False, f"{url}/ca.crt is not a certificate (is this a dockmesh agent listener?)")
    expected = config.ca_sha256
    if expected is None and state.ca.exists():
        expected = pem_sha256(load_cert(state.ca.read_bytes()).public_bytes(Encoding.DER))
    if expected is not None and served != expected:
        return Check(
            "tls", False, f"CA pin mismatch: server presents {served[:16]}…, expected {expected[:16]}…"
        )
    skew = ""
    if date:
        parsed = email.utils.parsedate_to_datetime(date)
        delta = abs(parsed.timestamp() - time.time())
        if delta > 60:
            return Check("clock", False, f"clock differs from the server's by {delta:.0f}s; fix NTP")
        skew = f", clock skew {delta:.0f}s"
    return Check("tls", True, f"server CA {served[:16]}… matches{skew}")


def _cert(state: StateDir) -> Check:
    try:
        not_before, not_after = state.cert_window()
    except (OSError, ValueError) as exc:
        return Check("certificate", False, f"cannot read {state.cert}: {exc}")
    now = time.time()
    if not_after <= now:
        return Check("certificate", False, "expired: rotate the enrolment token on the server and re-enrol")
    if not_before > now:
        return Check("certificate", False, "not valid yet: this host's clock is behind")
    return Check("certificate", True, f"valid for {(not_after - now) / 86400:.1f} more days")


async def _link(connect_url: str, state: StateDir) -> Check:
    try:
        ctx = client_context(state.ca.read_bytes(), state.cert, state.key)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            async with http.ws_connect(connect_url, ssl=ctx) as ws:
                msg = await ws.receive(timeout=1.0)
                if msg.type == aiohttp.WSMsgType.CLOSE and msg.data == CloseCode.UNAUTHORIZED:
                    return Check("link", False, "the server refuses this agent: revoked or unknown; re-enrol")
                return Check("link", True, "WebSocket + mTLS link accepted")
    except asyncio.TimeoutError:
        return Check("link", True, "WebSocket + mTLS link accepted")
    except aiohttp.WSServerHandshakeError as exc:
        return Check(
            "link", False, f"the WebSocket upgrade was refused (HTTP {exc.status}); a proxy in between?"
        )
    except (aiohttp.ClientError, OSError, ssl.SSLError) as exc:
        return Check("link", False, f"link failed: {exc}")


async def _docker(config: AgentConfig) -> Check:
    docker = connect(config.docker_host)
    try:
        info = await engine_info(docker)
        return Check("docker", True, f"engine {info.version} reachable")
    except EngineUnavailable as exc:
        return Check("docker", False, f"Docker engine unreachable ({docker.docker_host}): {exc}")
    finally:
        await docker.close()
