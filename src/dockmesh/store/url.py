"""Database URLs as the operator writes them, mapped to the async drivers we ship.

SQLAlchemy is imported only where a URL is turned into an engine's: the client commands read the
server's configuration too, and must not pay its import time (~0.4 s).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    import sqlalchemy as sa

# The operator names the database, not the driver: one async driver per engine is all we support.
_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


class UrlError(ValueError):
    """A --database-url we cannot use; the message says why."""


def default_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'dockmesh.db'}"


def check(url: str) -> str:
    """The engine a URL names (`sqlite` or `postgresql`), or UrlError saying what is wrong."""
    scheme, _, rest = url.partition("://")
    backend, _, driver = scheme.partition("+")
    target = _DRIVERS.get(backend)
    if not rest or target is None or (driver and scheme not in _DRIVERS.values()):
        raise UrlError(f"--database-url must start with sqlite:/// or postgresql:// (got {redact(url)!r})")
    if target.startswith("sqlite") and not rest.lstrip("/"):
        raise UrlError("--database-url sqlite:/// needs a file path (an in-memory database would be lost)")
    return target.partition("+")[0]


def async_url(url: str) -> sa.URL:
    """`sqlite:///path` → sqlite+aiosqlite, `postgresql://…` → postgresql+asyncpg."""
    import sqlalchemy as sa

    check(url)
    parsed = sa.make_url(url)
    return parsed.set(drivername=_DRIVERS[parsed.drivername.partition("+")[0]])


def redact(url: str) -> str:
    """The URL without its password, for logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
