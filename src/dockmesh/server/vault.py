"""The key that encrypts registry passwords at rest (Fernet: AES-128-CBC + HMAC-SHA256, from `cryptography`).

The key lives in the data dir (`registries.key`, mode 0600), never in the database: a copy of the database
(a backup, a PostgreSQL replica) holds only ciphertext. Several servers on one PostgreSQL need the same key
file (copy it with the rest of the data dir).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

KEY_FILE = "registries.key"


class VaultError(RuntimeError):
    """A ciphertext this key cannot open (the key file was replaced or the row edited)."""


def _create(path: Path) -> bytes:
    """Write a new key atomically: a reader sees no file or a whole one, never a partial key."""
    key = Fernet.generate_key()
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails if another process made the key first: theirs wins
    except FileExistsError:
        pass
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return path.read_bytes().strip()


class Vault:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def load_or_create(cls, data_dir: Path) -> Vault:
        path = data_dir / KEY_FILE
        try:
            key = path.read_bytes().strip()
        except FileNotFoundError:
            key = _create(path)
        path.chmod(0o600)
        try:
            return cls(key)
        except ValueError:
            raise VaultError(
                f"{path} is not a registry key (32 url-safe base64 bytes); restore it from a backup"
            ) from None

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode("ascii")

    def open(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except (InvalidToken, UnicodeError):
            raise VaultError("the stored credential cannot be decrypted with this server's key") from None
