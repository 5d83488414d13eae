"""Admission control on the agents' port: real TLS over loopback, a trivial protocol behind it."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from dockmesh.pki.ca import CertificateAuthority
from dockmesh.pki.tls import server_context
from dockmesh.server.admission import Admission
from dockmesh.server.listen import bind


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.load_or_create(tmp_path / "pki", sans=["127.0.0.1"])


def client_ctx(ca: CertificateAuthority) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=ca.ca_pem.decode())
    ctx.check_hostname = False
    return ctx


async def echo_once(port: int, ctx: ssl.SSLContext) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
    try:
        writer.write(b"ping")
        return await reader.readexactly(4)
    finally:
        writer.close()


async def test_a_storm_is_served_at_most_slots_handshakes_at_a_time(ca: CertificateAuthority) -> None:
    admission = Admission(bind("127.0.0.1", 0), Echo, server_context(ca), slots=3)
    admission.start()
    try:
        ctx = client_ctx(ca)
        answers = await asyncio.gather(*(echo_once(admission.port, ctx) for _ in range(60)))
    finally:
        await admission.close()
    assert answers == [b"ping"] * 60
    # Every connection went through a slot, never more than three at once, and all were given back.
    assert 1 <= admission.peak <= 3
    assert admission.admitted == 0


async def test_a_silent_peer_holds_its_slot_only_for_the_budget(ca: CertificateAuthority) -> None:
    admission = Admission(bind("127.0.0.1", 0), Echo, server_context(ca), slots=1, budget=0.2)
    admission.start()
    try:
        # Opens TCP and never says hello: with one slot, a slot held for the whole handshake timeout
        # (10 s) would lock the agent below out until then; the test's own timeout is shorter.
        _, silent = await asyncio.open_connection("127.0.0.1", admission.port)
        answer = await asyncio.wait_for(echo_once(admission.port, client_ctx(ca)), timeout=5.0)
        silent.close()
    finally:
        await admission.close()
    assert answer == b"ping"


async def test_a_failed_handshake_gives_its_slot_back(ca: CertificateAuthority, tmp_path: Path) -> None:
    admission = Admission(bind("127.0.0.1", 0), Echo, server_context(ca), slots=1)
    admission.start()
    try:
        stranger = CertificateAuthority.load_or_create(tmp_path / "other", sans=["127.0.0.1"])
        with pytest.raises(ssl.SSLError):
            await echo_once(admission.port, client_ctx(stranger))  # does not trust our CA: aborts
        assert await echo_once(admission.port, client_ctx(ca)) == b"ping"
    finally:
        await admission.close()
    assert admission.admitted == 0


async def test_close_stops_accepting(ca: CertificateAuthority) -> None:
    admission = Admission(bind("127.0.0.1", 0), Echo, server_context(ca))
    admission.start()
    port = admission.port
    await admission.close()
    with pytest.raises(ConnectionRefusedError):
        await echo_once(port, client_ctx(ca))


def test_slots_must_be_positive(ca: CertificateAuthority) -> None:
    sock = bind("127.0.0.1", 0)
    try:
        with pytest.raises(ValueError, match="slots"):
            Admission(sock, Echo, server_context(ca), slots=0)
    finally:
        sock.close()
