"""The CLI's pinned HTTPS: the key is checked after the handshake and before the request leaves."""

from __future__ import annotations

import socket
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from dockmesh.cli.tls import PinMismatch, opener
from dockmesh.pki.ca import CertificateAuthority
from dockmesh.pki.keys import generate_key
from dockmesh.pki.spki import spki_pin
from dockmesh.pki.webcert import ensure_web_cert


class Listener:
    """A one-shot TLS server on 127.0.0.1 that records what the client sent after the handshake."""

    def __init__(self, pki: Path) -> None:
        crt, key, _ = ensure_web_cert(CertificateAuthority.load_or_create(pki), [])
        self.pin = spki_pin(x509.load_pem_x509_certificate(crt.read_bytes()))
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(crt, key)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                tls.settimeout(5)
                self.received = tls.recv(65536)
                if self.received:
                    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        except (OSError, ssl.SSLError):
            pass

    def close(self) -> None:
        self.sock.close()
        self.thread.join(5)


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    server = Listener(tmp_path / "pki")
    yield server
    server.close()


def test_the_pinned_key_is_accepted_without_a_trusted_chain(listener: Listener) -> None:
    with opener(listener.pin).open(f"https://127.0.0.1:{listener.port}/api/v1/health", timeout=5) as resp:
        assert resp.read() == b"ok"
    assert listener.received.startswith(b"GET /api/v1/health")


def test_another_key_is_refused_before_the_request_is_sent(listener: Listener) -> None:
    request = urllib.request.Request(
        f"https://127.0.0.1:{listener.port}/x", headers={"Authorization": "Bearer s3"}
    )
    with pytest.raises(urllib.error.URLError) as caught:
        opener(spki_pin(generate_key().public_key())).open(request, timeout=5)
    assert isinstance(caught.value.reason, PinMismatch)
    listener.thread.join(5)
    assert b"s3" not in listener.received  # the bearer token never left this machine
    assert listener.received == b""


def test_without_a_pin_the_system_roots_decide(listener: Listener) -> None:
    with pytest.raises(urllib.error.URLError) as caught:
        opener(None).open(f"https://127.0.0.1:{listener.port}/x", timeout=5)
    assert isinstance(caught.value.reason, ssl.SSLCertVerificationError)
