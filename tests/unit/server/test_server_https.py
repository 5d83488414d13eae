"""The UI listener's TLS: which certificate, its pin, SIGHUP reloads."""

from __future__ import annotations

import contextlib
import ssl
from datetime import UTC
from pathlib import Path

import pytest
from cryptography import x509

from dockmesh.pki.ca import CertificateAuthority
from dockmesh.pki.identity import cert_to_pem
from dockmesh.pki.keys import generate_key, key_to_pem
from dockmesh.pki.spki import spki_pin
from dockmesh.server.config import ConfigError, ServerConfig
from dockmesh.server.https import WebTls, web_names, web_tls


def config(tmp_path: Path, **env: str) -> ServerConfig:
    return ServerConfig.from_env({"DOCKMESH_DATA_DIR": str(tmp_path), **env})


def operator_pair(tmp_path: Path, name: str) -> tuple[Path, Path, str]:
    """A certificate from a CA of the operator's (not ours), written as the operator would."""
    issuer = CertificateAuthority.load_or_create(tmp_path / f"operator-ca-{name}")
    key = generate_key()
    cert = issuer.issue_listener_cert(key.public_key(), ["ui.example.com"], "ui")
    crt_path, key_path = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    crt_path.write_bytes(cert_to_pem(cert) + issuer.ca_pem)
    key_path.write_bytes(key_to_pem(key))
    return crt_path, key_path, spki_pin(key.public_key())


def handshake_pin(tls: WebTls) -> str:
    """The pin of the key a client sees in a real (in-memory) handshake."""
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out)
    server = tls.context.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(20):
        for obj, out, peer_in in ((client, c_out, s_in), (server, s_out, c_in)):
            with contextlib.suppress(ssl.SSLWantReadError):
                obj.do_handshake()
            peer_in.write(out.read())
    der = client.getpeercert(binary_form=True)
    assert der
    return spki_pin(x509.load_der_x509_certificate(der))


def test_no_tls_on_loopback_or_with_insecure_http(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "pki")
    assert web_tls(config(tmp_path, DOCKMESH_HTTP_ADDR="127.0.0.1:8080"), ca) is None
    assert web_tls(config(tmp_path, DOCKMESH_INSECURE_HTTP="1"), ca) is None


def test_self_issued_by_default_with_a_stable_pin(tmp_path: Path) -> None:
    cfg = config(tmp_path, DOCKMESH_BASE_URL="https://ui.example.com:8080")
    ca = CertificateAuthority.load_or_create(cfg.pki_dir)
    tls = web_tls(cfg, ca)
    assert tls is not None
    assert not tls.operator
    assert not tls.served.publicly_trusted
    assert handshake_pin(tls) == tls.served.pin
    cert = x509.load_pem_x509_certificate(tls.cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "ui.example.com" in san.get_values_for_type(x509.DNSName)
    again = web_tls(cfg, CertificateAuthority.load_or_create(cfg.pki_dir))
    assert again is not None
    assert again.served.pin == tls.served.pin


def test_web_names_come_from_the_public_url_the_bind_address_and_extra_sans(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        DOCKMESH_BASE_URL="https://ui.example.com",
        DOCKMESH_HTTP_ADDR="10.0.0.5:443",
        DOCKMESH_AGENT_SANS="alias.example.com",
    )
    assert set(web_names(cfg)) >= {"ui.example.com", "10.0.0.5", "alias.example.com"}
    assert "0.0.0.0" not in web_names(config(tmp_path, DOCKMESH_BASE_URL="https://x.example"))


def test_operator_certificate_is_served_and_reloaded(tmp_path: Path) -> None:
    crt, key, pin = operator_pair(tmp_path, "one")
    cfg = config(tmp_path, DOCKMESH_TLS_CERT=str(crt), DOCKMESH_TLS_KEY=str(key))
    tls = web_tls(cfg, CertificateAuthority.load_or_create(cfg.pki_dir))
    assert tls is not None
    assert tls.operator
    assert tls.served.pin == pin == handshake_pin(tls)
    assert not tls.served.publicly_trusted  # the operator's CA is not in the system store
    # The operator renews (new key), then SIGHUP: the same context now presents the new pair.
    new_crt, new_key, new_pin = operator_pair(tmp_path, "two")
    crt.write_bytes(new_crt.read_bytes())
    key.write_bytes(new_key.read_bytes())
    tls.reload()
    assert tls.served.pin == new_pin == handshake_pin(tls)


def test_a_broken_renewal_keeps_the_old_certificate(tmp_path: Path) -> None:
    crt, key, pin = operator_pair(tmp_path, "one")
    cfg = config(tmp_path, DOCKMESH_TLS_CERT=str(crt), DOCKMESH_TLS_KEY=str(key))
    tls = web_tls(cfg, CertificateAuthority.load_or_create(cfg.pki_dir))
    assert tls is not None
    _, other_key, _ = operator_pair(tmp_path, "two")
    key.write_bytes(other_key.read_bytes())  # half-way through a renewal: key and cert disagree
    tls.reload()
    assert tls.served.pin == pin == handshake_pin(tls)


def test_a_missing_operator_certificate_stops_the_start(tmp_path: Path) -> None:
    cfg = config(
        tmp_path, DOCKMESH_TLS_CERT=str(tmp_path / "no.crt"), DOCKMESH_TLS_KEY=str(tmp_path / "no.key")
    )
    with pytest.raises(ConfigError, match=r"--tls-cert/--tls-key: cannot load .*no\.crt"):
        web_tls(cfg, CertificateAuthority.load_or_create(cfg.pki_dir))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    cfg = config(tmp_path, DOCKMESH_TLS_CERT=str(garbage), DOCKMESH_TLS_KEY=str(garbage))
    with pytest.raises(ConfigError, match="garbage"):
        web_tls(cfg, CertificateAuthority.load_or_create(cfg.pki_dir))


def test_a_self_issued_certificate_near_expiry_is_renewed_in_place(tmp_path: Path) -> None:
    from datetime import datetime, timedelta
    from unittest import mock

    cfg = config(tmp_path, DOCKMESH_BASE_URL="https://ui.example.com:8080")
    tls = web_tls(cfg, CertificateAuthority.load_or_create(cfg.pki_dir))
    assert tls is not None
    before = tls.cert_path.read_bytes()
    tls.refresh()  # still fresh: nothing happens
    assert tls.cert_path.read_bytes() == before
    # 380 days on (within 30 days of expiry) the daily check re-issues it on the same key.
    later = datetime.now(UTC) + timedelta(days=380)
    with mock.patch("dockmesh.pki.ca._now", return_value=later):
        tls.refresh()
    assert tls.cert_path.read_bytes() != before
    assert handshake_pin(tls) == tls.served.pin
    renewed = x509.load_pem_x509_certificate(tls.cert_path.read_bytes())
    assert renewed.not_valid_after_utc > later
