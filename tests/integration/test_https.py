"""The UI/API listener on HTTPS by default, the pinned install one-liner, plain HTTP only when asked for."""

from __future__ import annotations

import contextlib
import http.client
import http.server
import os
import signal
import socket
import ssl
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509

from dockmesh.pki.ca import CertificateAuthority
from dockmesh.pki.identity import cert_to_pem
from dockmesh.pki.keys import generate_key, key_to_pem
from dockmesh.pki.spki import spki_pin
from dockmesh.pki.webcert import ensure_web_cert
from tests.fleet import short_tmpdir, wait_for
from tests.integration.harness import ServerProc


def served_pin(port: int) -> str:
    """The pin of the key the listener on 127.0.0.1:port presents (no verification: we only look)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw) as sock:
            der = sock.getpeercert(binary_form=True)
    assert der
    return spki_pin(x509.load_der_x509_certificate(der))


def shell(command: str, marker_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run an install one-liner as a user would (as root already here, so `sudo bash` → `bash`)."""
    assert command.endswith("| sudo bash")
    line = "set -o pipefail; " + command[: -len("sudo bash")] + "bash -s -- --skip-docker"
    env = {"PATH": os.environ["PATH"], "DOCKMESH_INSTALL_PREFIX": str(marker_dir / "prefix")}
    return subprocess.run(
        ["bash", "-c", line], env=env, capture_output=True, text=True, timeout=60, check=False
    )


class _Impostor(http.server.BaseHTTPRequestHandler):
    """Answers every GET with a script that leaves a marker: what a man in the middle would send."""

    marker = Path("/nonexistent")
    seen: list[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        body = f"#!/bin/bash\ntouch {self.marker}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def impostor(port: int, marker: Path, pki: Path, seen: list[str]) -> Iterator[str]:
    """An HTTPS server on 127.0.0.1:port with a certificate of its own (a different key); yields its pin.

    The paths it was asked for land in ``seen``.
    """
    crt, key, _ = ensure_web_cert(CertificateAuthority.load_or_create(pki), [])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    handler = type("Handler", (_Impostor,), {"marker": marker, "seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield spki_pin(x509.load_pem_x509_certificate(crt.read_bytes()))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def scratch() -> Iterator[Path]:
    path = short_tmpdir("h")
    yield path
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def test_the_one_liner_refuses_a_server_whose_key_does_not_match_the_pin(
    server_factory: Callable[..., ServerProc], scratch: Path
) -> None:
    server = server_factory(https=True, bind="0.0.0.0")  # bound wide; only 127.0.0.1 is dialled
    command = server.create_agent("target")["install_command"]
    assert "--pinnedpubkey" in command
    port = server.http_port
    server.stop()
    marker = scratch / "pwned"
    # Someone else now answers at the server's address, with another key but a certificate for the name.
    seen: list[str] = []
    with impostor(port, marker, scratch / "impostor-pki", seen) as impostor_pin:
        result = shell(command, scratch)
        assert result.returncode == 90, result.stderr  # curl: SSL public key does not match pinned key
        assert not marker.exists()  # the script never ran: nothing at all was executed
        assert not (scratch / "prefix").exists()  # and nothing was installed
        assert seen == []  # curl hung up before sending the request: the token never reached it
        # Control: the same command pinned to the impostor's key runs its script. --insecure accepted the
        # impostor's chain; only the pin stood between it and a root shell.
        hijacked = shell(command.replace(server_pin_of(command), impostor_pin), scratch)
        assert hijacked.returncode == 0, hijacked.stderr
        assert marker.exists()
        assert len(seen) == 1


def server_pin_of(command: str) -> str:
    return command.split("--pinnedpubkey ", 1)[1].split()[0].strip('"')


def test_the_ui_answers_on_https_with_the_pinned_key(
    server_factory: Callable[..., ServerProc], scratch: Path
) -> None:
    server = server_factory(https=True, bind="0.0.0.0")  # bound wide; only 127.0.0.1 is dialled
    # A real TLS request, verified against the server's CA and its name (127.0.0.1 is in the certificate).
    ctx = server.ssl_context()
    with urllib.request.urlopen(f"{server.url}/login", timeout=10, context=ctx) as resp:
        assert resp.status == 200
        cookies = resp.headers.get_all("Set-Cookie") or []
        page = resp.read().decode()
    assert cookies
    assert all("Secure" in c for c in cookies)  # TLS on: cookies are Secure
    assert 'id="insecure-http"' not in page
    created = server.create_agent("h")
    pin = created["https_pin"]
    assert pin == served_pin(server.http_port)
    assert created["install_command_plain"] is None  # our own CA is not publicly trusted
    assert f'--pinnedpubkey "{pin}"' in created["install_command"]
    assert f'"{server.url}/install/agent.sh?token={created["token"]}"' in created["install_command"]
    # curl without --insecure: the chain is refused (no public CA signed it) ...
    url = f"{server.url}/api/v1/health"
    refused = subprocess.run(["curl", "-fsS", url], capture_output=True, text=True, timeout=30, check=False)
    assert refused.returncode == 60, refused.stderr
    # ... with the pin it is accepted, and with the CA and the pin as well.
    for extra in (["--insecure"], ["--cacert", str(server.ca_path)]):
        ok = subprocess.run(
            ["curl", "-fsS", *extra, "--pinnedpubkey", pin, url], capture_output=True, text=True, timeout=30
        )
        assert ok.returncode == 0, ok.stderr
    # The key is kept across restarts: the pin handed out above stays valid.
    server.stop()
    server.start()
    assert served_pin(server.http_port) == pin


def test_plain_http_to_the_https_port_is_refused(server_factory: Callable[..., ServerProc]) -> None:
    server = server_factory(https=True, bind="0.0.0.0")  # bound wide; only 127.0.0.1 is dialled

    def plain_get() -> int:
        conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
        try:
            conn.request("GET", "/api/v1/health")
            return conn.getresponse().status
        finally:
            conn.close()

    # The TLS listener drops a plaintext request: no HTTP answer at all, let alone a redirect.
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        plain_get()


def test_plain_http_only_when_explicitly_enabled(server_factory: Callable[..., ServerProc]) -> None:
    server = server_factory(bind="0.0.0.0", args=["--insecure-http"])  # only 127.0.0.1 is dialled
    with urllib.request.urlopen(f"{server.url}/login", timeout=10) as resp:
        assert resp.status == 200
        page = resp.read().decode()
        cookies = resp.headers.get_all("Set-Cookie") or []
    assert 'id="insecure-http"' in page  # a banner on every page
    assert not any("Secure" in c for c in cookies)
    assert "serves PLAIN HTTP" in server.log_text()
    created = server.create_agent("h")
    assert created["https_pin"] is None
    assert created["install_command"].startswith(f'curl -fsSL "{server.url}/install/agent.sh')
    # On loopback only (the harness default) plain HTTP needs no flag and shows no banner.
    local = server_factory()
    with urllib.request.urlopen(f"{local.url}/login", timeout=10) as resp:
        assert 'id="insecure-http"' not in resp.read().decode()
    assert "PLAIN HTTP" not in local.log_text()


def write_operator_pair(directory: Path, issuer: CertificateAuthority) -> tuple[Path, Path, str]:
    key = generate_key()
    cert = issuer.issue_listener_cert(key.public_key(), ["ui.example.test"], "operator ui")
    crt_path, key_path = directory / "ui.crt", directory / "ui.key"
    crt_path.write_bytes(cert_to_pem(cert))
    key_path.write_bytes(key_to_pem(key))
    return crt_path, key_path, spki_pin(key.public_key())


def test_an_operator_certificate_means_https_even_on_loopback_and_reloads_on_sighup(
    server_factory: Callable[..., ServerProc], scratch: Path
) -> None:
    issuer = CertificateAuthority.load_or_create(scratch / "operator-ca")
    crt, key, pin = write_operator_pair(scratch, issuer)
    server = server_factory(
        https=True, args=["--tls-cert", str(crt), "--tls-key", str(key)], cafile=issuer.ca_cert_path
    )
    assert server.bind == "127.0.0.1"
    assert served_pin(server.http_port) == pin
    created = server.create_agent("h")
    assert created["https_pin"] == pin
    assert created["install_command_plain"] is None  # the operator's CA is not in the system store
    # The operator renews (a new key), then SIGHUP: new handshakes present the new certificate.
    _, _, new_pin = write_operator_pair(scratch, issuer)
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGHUP)
    wait_for(
        lambda: served_pin(server.http_port) == new_pin, 10, message="the new certificate was not loaded"
    )
    assert server.proc.alive
    assert server.create_agent("h2")["https_pin"] == new_pin
    with pytest.raises(urllib.error.URLError):
        # Verification stays on: a client that does not trust the operator's CA is refused.
        urllib.request.urlopen(
            f"{server.url}/api/v1/health", timeout=10, context=ssl.create_default_context()
        )


def test_websocket_origin_is_checked_against_the_public_url_behind_a_proxy(
    server_factory: Callable[..., ServerProc],
) -> None:
    # A TLS-terminating proxy in front: the listener is loopback HTTP, users know it as the public URL.
    server = server_factory(args=["--public-url", "https://dockmesh.example.test"])
    token = server.api.token

    def status(origin: str) -> int:
        req = urllib.request.Request(
            f"{server.url}/api/v1/hosts/nope/containers/c/stats",
            headers={"Authorization": f"Bearer {token}", "Origin": origin},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    # The public origin passes the check (and the unknown host is then a 404) ...
    assert status("https://dockmesh.example.test") == 404
    # ... while the origin that merely matches the Host header (the backend address) is refused.
    assert status(server.url) == 403
    assert status("https://evil.example") == 403
