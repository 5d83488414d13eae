"""The agent's state directory: key, certificate, CA, identity; every write atomic."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockmesh.pki.files import write_atomic

if TYPE_CHECKING:
    from cryptography import x509


@dataclass(frozen=True)
class Identity:
    agent_id: str
    connect_url: str
    enroll_url: str
    token_sha256: str


class StateDir:
    """Paths and atomic reads/writes under the agent's state directory (mode 0700)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.key = path / "agent.key"
        self.cert = path / "agent.crt"
        self.ca = path / "ca.crt"
        self.identity_file = path / "agent.json"
        self.token_file = path / "token"
        self.status_file = path / "status.json"
        self.upgrade_key = path / "upgrade.pub"
        self.window_file = path / "agent.crt.window"

    def ensure(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path, 0o700)
        self._finish_swap()

    # --- identity ----------------------------------------------------------------------------
    def identity(self) -> Identity | None:
        try:
            data = json.loads(self.identity_file.read_text())
        except (OSError, ValueError):
            return None
        if not (self.key.exists() and self.cert.exists() and self.ca.exists()):
            return None
        try:
            return Identity(**{k: data[k] for k in ("agent_id", "connect_url", "enroll_url", "token_sha256")})
        except (KeyError, TypeError):
            return None

    def save_enrolment(self, identity: Identity, key_pem: bytes, cert_pem: bytes, ca_pem: bytes) -> None:
        write_atomic(self.key, key_pem, 0o600)
        write_atomic(self.cert, cert_pem, 0o644)
        write_atomic(self.ca, ca_pem, 0o644)
        write_atomic(self.identity_file, json.dumps(asdict(identity), indent=2).encode(), 0o600)

    def read_cert(self) -> x509.Certificate:
        from dockmesh.pki.identity import load_cert

        return load_cert(self.cert.read_bytes())

    def cert_window(self) -> tuple[float, float]:
        """The current certificate's validity (not before, not after) in epoch seconds.

        Remembered beside the certificate under its SHA-256, so an agent that starts with its state reads
        it without loading cryptography, which would hold about 8 MiB of its idle memory. A cache that
        does not match the certificate (renewed, replaced, edited) is recomputed.
        """
        pem = self.cert.read_bytes()
        digest = hashlib.sha256(pem).hexdigest()
        try:
            cached = json.loads(self.window_file.read_text())
            if cached["sha256"] == digest:
                return float(cached["not_before"]), float(cached["not_after"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        from dockmesh.pki.identity import cert_info, load_cert

        info = cert_info(load_cert(pem))
        window = info.not_before.timestamp(), info.not_after.timestamp()
        record = {"sha256": digest, "not_before": window[0], "not_after": window[1]}
        with contextlib.suppress(OSError):  # only a cache: a read-only state dir still works
            write_atomic(self.window_file, json.dumps(record).encode(), 0o644)
        return window

    # --- renewal swap --------------------------------------------------------------------------
    def swap_in(self, key_pem: bytes, cert_pem: bytes) -> None:
        """Install a renewed pair: both staged, key replaced first, so a crash is finished on restart."""
        key_next, cert_next = self.key.with_suffix(".key.next"), self.cert.with_suffix(".crt.next")
        write_atomic(key_next, key_pem, 0o600)
        write_atomic(cert_next, cert_pem, 0o644)
        self._finish_swap()

    def _finish_swap(self) -> None:
        key_next, cert_next = self.key.with_suffix(".key.next"), self.cert.with_suffix(".crt.next")
        if not cert_next.exists():
            key_next.unlink(missing_ok=True)
            return
        if key_next.exists():
            os.replace(key_next, self.key)
        os.replace(cert_next, self.cert)

    # --- token and status ---------------------------------------------------------------------
    def stored_token(self) -> str | None:
        try:
            return self.token_file.read_text().strip() or None
        except OSError:
            return None

    def drop_token(self) -> None:
        self.token_file.unlink(missing_ok=True)

    def write_status(self, status: dict[str, Any]) -> None:
        write_atomic(self.status_file, json.dumps(status).encode(), 0o644)

    def read_status(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    # --- the server's upgrade-signing public key ---------------------------------------------------
    def upgrade_public_key(self) -> str | None:
        try:
            return self.upgrade_key.read_text().strip() or None
        except OSError:
            return None

    def learn_upgrade_key(self, key: object) -> bool:
        """Keep the first valid key only: a key this agent has is never replaced over the wire."""
        from dockmesh.pki.signing import public_key_from_b64

        if self.upgrade_public_key() is not None or not isinstance(key, str):
            return False
        try:
            public_key_from_b64(key)
        except ValueError:
            return False
        write_atomic(self.upgrade_key, key.encode(), 0o644)
        return True


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
