"""Crash-safe file writes for keys, certificates and state."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically, leaving it with exactly ``mode``."""
    path = Path(path)
    directory = path.parent
    # os.urandom, not secrets: this module is in the resident supervisor, and `secrets` pulls in
    # hashlib and OpenSSL (~5 MB RSS) for a name that only has to be unlikely to collide.
    tmp = directory / f".{path.name}.{os.urandom(6).hex()}.tmp"
    # O_EXCL with the final mode means secrets are never readable by others, not even briefly.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode)
    try:
        try:
            # The umask may have narrowed the mode; callers ask for an exact one (e.g. 0644 certs).
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    """Persist the rename itself so a crash cannot resurrect the old file."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
