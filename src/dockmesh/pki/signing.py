"""The server's Ed25519 upgrade-signing key, and the agent's check of a detached signature."""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .files import write_atomic

__all__ = ["SigningKey", "public_key_from_b64", "verify"]


class SigningKey:
    """The private key (PKCS#8 PEM, 0600) that signs upgrade manifests; created once, atomically."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def load_or_create(cls, path: Path) -> SigningKey:
        if not path.exists():
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            # Two servers starting on one data dir: link() refuses to replace, so both use the first key.
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            write_atomic(tmp, pem, 0o600)
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink(missing_ok=True)
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
        return cls(loaded)

    def public_b64(self) -> str:
        raw = self._key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode()

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)


def public_key_from_b64(text: str) -> Ed25519PublicKey:
    """Raises ValueError for anything but 32 raw bytes in base64."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError("the upgrade public key is not base64") from None
    if len(raw) != 32:
        raise ValueError("the upgrade public key is not 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def verify(public_key_b64: str, data: bytes, signature: bytes) -> bool:
    try:
        public_key_from_b64(public_key_b64).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True
