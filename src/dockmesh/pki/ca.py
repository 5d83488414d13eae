"""The server's private certificate authority and agent-listener certificate."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import socket
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Union

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dockmesh.pki.csr import parse_csr
from dockmesh.pki.files import write_atomic
from dockmesh.pki.identity import cert_to_pem, fingerprint
from dockmesh.pki.keys import generate_key, key_to_pem, load_key

CA_LIFETIME = timedelta(days=3652)
SERVER_LIFETIME = timedelta(days=1826)
# Re-issue the listener cert on restart well before it lapses; agents cannot connect past expiry.
SERVER_RENEW_BEFORE = timedelta(days=30)
# Back-date every certificate so peers with slightly slow clocks accept it immediately.
CLOCK_SKEW = timedelta(seconds=60)
SERVER_CN = "dockmesh agent listener"

_CA_KEY = "ca.key"
_CA_CRT = "ca.crt"
_SERVER_KEY = "server.key"
_SERVER_CRT = "server.crt"

_SanName = Union[x509.DNSName, x509.IPAddress]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _parse_san(entry: str) -> _SanName:
    """Interpret a SAN entry as an IP address if it parses as one, else a DNS name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(entry.removeprefix("[").removesuffix("]")))
    except ValueError:
        # DNS names compare case-insensitively; normalising keeps the "already present" check exact.
        return x509.DNSName(entry.lower())


def _wanted_sans(extra: Sequence[str]) -> list[_SanName]:
    """Default listener names plus user-supplied ones, de-duplicated in order."""
    names: list[_SanName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    hostname = socket.gethostname().strip()
    # A non-ASCII hostname is not a valid DNS SAN; it must not stop the server starting.
    with contextlib.suppress(ValueError):
        if hostname:
            names.append(_parse_san(hostname))
    # User-supplied entries are not guarded: a typo there should fail loudly.
    names.extend(_parse_san(entry.strip()) for entry in extra if entry.strip())
    unique: list[_SanName] = []
    for name in names:
        if name not in unique:
            unique.append(name)
    return unique


def _ski(cert: x509.Certificate) -> x509.SubjectKeyIdentifier:
    return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value


class CertificateAuthority:
    """Private CA that signs the agent-listener certificate and enrolled agents' client certificates."""

    def __init__(self, directory: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        """Wrap an already-loaded CA; use ``load_or_create`` instead."""
        self._directory = directory
        self._key = key
        self._cert = cert
        self._pem = cert_to_pem(cert)
        self._sha256 = fingerprint(cert)

    @classmethod
    def load_or_create(cls, directory: Path, *, sans: Sequence[str] = ()) -> CertificateAuthority:
        """Load the CA from ``directory`` (creating it on first run) and ensure a valid listener cert."""
        directory = Path(directory)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # The directory holds the CA key; mkdir's mode is subject to umask and ignored if it existed.
        os.chmod(directory, 0o700)
        key_path, crt_path = directory / _CA_KEY, directory / _CA_CRT
        if crt_path.exists():
            if not key_path.exists():
                raise ValueError(f"{crt_path} exists but {key_path} is missing; cannot sign without it")
            key = load_key(key_path.read_bytes())
            cert = x509.load_pem_x509_certificate(crt_path.read_bytes())
            if key.public_key() != cert.public_key():
                raise ValueError(f"{key_path} does not match {crt_path}")
        else:
            # No ca.crt means nobody can have pinned this CA yet, so a stray ca.key left by a
            # crash mid-creation is safe to replace.
            key, cert = _create_ca()
            write_atomic(key_path, key_to_pem(key), mode=0o400)
            write_atomic(crt_path, cert_to_pem(cert), mode=0o644)
        ca = cls(directory, key, cert)
        ca._ensure_server_cert(sans)
        return ca

    @property
    def ca_cert(self) -> x509.Certificate:
        """The CA certificate."""
        return self._cert

    @property
    def ca_pem(self) -> bytes:
        """The CA certificate as PEM."""
        return self._pem

    @property
    def ca_sha256(self) -> str:
        """SHA-256 of the CA certificate DER, lower-case hex (what agents pin)."""
        return self._sha256

    @property
    def directory(self) -> Path:
        """The directory holding the CA and the certificates it issued for this server."""
        return self._directory

    @property
    def ca_cert_path(self) -> Path:
        """Path of the CA certificate PEM."""
        return self._directory / _CA_CRT

    @property
    def server_cert_path(self) -> Path:
        """Path of the agent-listener certificate PEM."""
        return self._directory / _SERVER_CRT

    @property
    def server_key_path(self) -> Path:
        """Path of the agent-listener private key PEM."""
        return self._directory / _SERVER_KEY

    def issue_agent_cert(self, csr_pem: bytes, agent_id: str, lifetime: timedelta) -> x509.Certificate:
        """Sign a client certificate for ``agent_id``, trusting only the CSR's public key."""
        if lifetime <= timedelta(0):
            raise ValueError("lifetime must be positive")
        csr = parse_csr(csr_pem)
        # Everything else in the CSR (subject, SANs, extensions) is attacker-controlled and ignored.
        public_key = csr.public_key()
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, agent_id)]))
            .issuer_name(self._cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(self._aki(), critical=False)
        )
        return builder.sign(self._key, hashes.SHA256())

    def _aki(self) -> x509.AuthorityKeyIdentifier:
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(_ski(self._cert))

    def issue_listener_cert(
        self,
        public_key: ec.EllipticCurvePublicKey,
        names: Sequence[str],
        common_name: str,
        lifetime: timedelta = SERVER_LIFETIME,
    ) -> x509.Certificate:
        """A serverAuth certificate for ``public_key``, valid for the default names plus ``names``."""
        return self._issue_server_cert(public_key, _wanted_sans(names), common_name, lifetime)

    def listener_cert_usable(
        self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, names: Sequence[str]
    ) -> bool:
        """Whether ``cert`` is ours, matches ``key``, covers the names and is not about to expire."""
        return _usable(cert, key, self._cert, _wanted_sans(names))

    def _ensure_server_cert(self, sans: Sequence[str]) -> None:
        """Keep the listener cert if still good for this CA and SAN set, else re-issue it."""
        wanted = _wanted_sans(sans)
        if self._server_cert_usable(wanted):
            return
        key = generate_key()
        cert = self._issue_server_cert(key.public_key(), wanted, SERVER_CN)
        # Key first: a crash in between leaves a mismatched pair, which the next start re-issues.
        write_atomic(self.server_key_path, key_to_pem(key), mode=0o600)
        write_atomic(self.server_cert_path, cert_to_pem(cert), mode=0o644)

    def _server_cert_usable(self, wanted: Sequence[_SanName]) -> bool:
        if not (self.server_cert_path.exists() and self.server_key_path.exists()):
            return False
        try:
            cert = x509.load_pem_x509_certificate(self.server_cert_path.read_bytes())
            key = load_key(self.server_key_path.read_bytes())
        except (ValueError, TypeError, OSError):
            # Anything unreadable is simply replaced; it is derived state.
            return False
        return _usable(cert, key, self._cert, wanted)

    def _issue_server_cert(
        self,
        public_key: ec.EllipticCurvePublicKey,
        sans: Sequence[_SanName],
        common_name: str,
        lifetime: timedelta = SERVER_LIFETIME,
    ) -> x509.Certificate:
        now = _now()
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self._cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(self._aki(), critical=False)
            .sign(self._key, hashes.SHA256())
        )


def _usable(
    cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    wanted: Sequence[_SanName],
) -> bool:
    """A listener cert is kept only if ours, for this key, still well within its life, for every name."""
    try:
        cert.verify_directly_issued_by(ca_cert)
        present = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    if key.public_key() != cert.public_key():
        return False
    if cert.not_valid_after_utc - _now() < SERVER_RENEW_BEFORE:
        return False
    have = {
        _parse_san(name.value) if isinstance(name, x509.DNSName) else name
        for name in present
        if isinstance(name, (x509.DNSName, x509.IPAddress))
    }
    return all(name in have for name in wanted)


def _key_usage(*, digital_signature: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _create_ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """Generate a new self-signed CA key and certificate."""
    key = generate_key()
    # A random suffix keeps distinct installs' CAs distinguishable in trust stores and logs.
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"dockmesh CA {secrets.token_hex(4)}")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert
