"""One error type for everything that goes wrong talking to a Docker engine.

Callers of :mod:`dockmesh.docker` only ever see :class:`DockerFailure`: aiodocker's
``DockerError`` (mapped by its HTTP status), socket errors and aiohttp client errors
are translated by :func:`translate`, which :func:`docker_errors` applies.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager

import aiodocker
import aiohttp

__all__ = [
    "DockerFailure",
    "bad_request",
    "docker_errors",
    "from_engine",
    "translate",
]

#: aiodocker reports "cannot connect" as a DockerError with this pseudo status.
_AIODOCKER_CONNECT_STATUS = 900

_CODES = {400: "bad_request", 404: "not_found", 409: "conflict"}

# Registry authentication failures reach us as HTTP 500 or as an in-band error of the
# pull progress stream (status 0); recognise them by the engine's wording.
_AUTH_PATTERNS = re.compile(
    r"no basic auth credentials|unauthorized|authentication required|"
    r"incorrect username or password|access to the resource is denied|\b401\b|\bforbidden\b",
    re.IGNORECASE,
)

_NOT_FOUND_PATTERNS = re.compile(r"manifest unknown|not found|does not exist", re.IGNORECASE)


class DockerFailure(Exception):
    """A Docker operation failed.

    ``status`` is an HTTP-like status for the caller's response (404, 409, 400, 401/403,
    503 engine unreachable, 502 any other engine error), ``code`` a stable machine word,
    ``message`` the engine's human readable explanation (never a traceback).
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"DockerFailure({self.status}, {self.code!r}, {self.message!r})"

    def __str__(self) -> str:
        return f"{self.code} ({self.status}): {self.message}"


def bad_request(message: str) -> DockerFailure:
    return DockerFailure(400, "bad_request", message)


def _clean(message: object) -> str:
    text = str(message).strip()
    return text or "unknown Docker engine error"


def from_engine(status: int, message: str) -> DockerFailure:
    """The failure for an engine answer with HTTP ``status`` (0: an in-band stream error)."""
    message = _clean(message)
    if status == _AIODOCKER_CONNECT_STATUS:
        return DockerFailure(503, "engine_unavailable", message)
    if status == 401 or (status == 403 and _AUTH_PATTERNS.search(message)):
        return DockerFailure(status, "unauthorized", message)
    if status == 403:
        # The engine's "forbidden" is a refused operation on an object in use
        # (e.g. removing a network with active endpoints): a conflict for callers.
        return DockerFailure(409, "conflict", message)
    if status in (400, 404, 409):
        return DockerFailure(status, _CODES[status], message)
    if 400 <= status < 500:
        return DockerFailure(400, "bad_request", message)
    if _AUTH_PATTERNS.search(message):
        return DockerFailure(401, "unauthorized", message)
    if status == 0 and _NOT_FOUND_PATTERNS.search(message):
        return DockerFailure(404, "not_found", message)
    return DockerFailure(502, "engine_error", message)


def translate(exc: BaseException) -> DockerFailure:
    """Map an exception raised while talking to an engine to a :class:`DockerFailure`."""
    if isinstance(exc, DockerFailure):
        return exc
    if isinstance(exc, aiodocker.DockerError):
        return from_engine(int(exc.status), str(exc.message))
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return DockerFailure(503, "engine_unavailable", "the Docker engine did not answer in time")
    if isinstance(exc, (OSError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)):
        return DockerFailure(503, "engine_unavailable", f"cannot reach the Docker engine: {_clean(exc)}")
    if isinstance(exc, aiohttp.ClientError):
        return DockerFailure(502, "engine_error", f"bad answer from the Docker engine: {_clean(exc)}")
    return DockerFailure(502, "engine_error", _clean(exc))


@contextmanager
def docker_errors() -> Iterator[None]:
    """Re-raise engine/transport exceptions raised in the block as :class:`DockerFailure`.

    A plain (synchronous) context manager, so it also works inside coroutines and
    async generators: ``with docker_errors(): ...``.
    """
    try:
        yield
    except DockerFailure:
        raise
    except (asyncio.TimeoutError, aiodocker.DockerError, OSError, aiohttp.ClientError) as exc:
        raise translate(exc) from exc
