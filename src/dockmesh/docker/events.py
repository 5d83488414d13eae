"""The engine's event stream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiodocker

from dockmesh.docker._api import iter_json_lines, open_stream
from dockmesh.docker.errors import bad_request, docker_errors

__all__ = ["engine_events"]


def _filters(filters: Mapping[str, Any] | None) -> str:
    normalized: dict[str, list[str]] = {}
    for key, value in (filters or {}).items():
        values = value if isinstance(value, (list, tuple, set, frozenset)) else [value]
        if not isinstance(key, str) or not all(isinstance(v, str) for v in values):
            raise bad_request("event filters map names to strings or lists of strings")
        normalized[key] = list(values)
    return json.dumps(normalized)


async def engine_events(
    docker: aiodocker.Docker,
    filters: dict[str, Any] | None = None,
    *,
    since: float | None = None,
    until: float | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Engine events as they happen (raw event JSON), until the engine ends the stream.

    ``filters`` as in ``docker events --filter``: e.g. ``{"type": "container",
    "label": ["com.docker.compose.project=web"]}``.  Close the iterator (``aclose``)
    to stop listening.  ``since``/``until`` (UNIX times) replay past events; with
    ``until`` the stream ends there.
    """
    params: dict[str, str] = {"filters": _filters(filters)} if filters else {}
    if since is not None:
        params["since"] = f"{float(since):.9f}"
    if until is not None:
        params["until"] = f"{float(until):.9f}"
    with docker_errors():
        async with open_stream(docker, "events", params=params) as resp:
            async for event in iter_json_lines(resp):
                yield event
