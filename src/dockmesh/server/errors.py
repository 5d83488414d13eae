"""API errors and the middleware that renders every failure as {"error": {"code", "message"}}."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """The one base of every failure a caller sees: (status, code, message), plus fields that locate it.

    `details` go into the error object next to code and message (e.g. a compose error's `key` and `line`).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers  # e.g. Retry-After on a 429 or 503
        self.details = details or {}


def error_response(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    details: dict[str, Any] | None = None,
) -> web.Response:
    body = {**(details or {}), "code": code, "message": message}
    return web.json_response({"error": body}, status=status, headers=headers)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    429: "too_many_requests",
}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, headers=exc.headers, details=exc.details)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        message = exc.text if exc.text and not exc.text.startswith(str(exc.status)) else exc.reason
        return error_response(exc.status, code, message or exc.reason, headers=_allow(exc))
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.rel_url.path)
        return error_response(500, "internal", "internal server error; see the server log")


def _allow(exc: web.HTTPException) -> dict[str, str] | None:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else None


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, however many TCP segments it came in; 413 as soon as it passes `limit`."""
    too_large = ApiError(413, "too_large", f"request body larger than {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    # `content.read(n)` returns what has arrived so far, not n bytes: loop until EOF.
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: web.Request, limit: int = 1 << 20) -> dict[str, Any]:
    """The request's JSON object, or a 400 that says what is wrong with it."""
    raw = await read_body(request, limit)
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise ApiError(400, "invalid_json", "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "request body must be a JSON object")
    return body


def field_str(body: dict[str, Any], name: str, *, max_len: int = 200, required: bool = True) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "invalid_field", f"'{name}' must be a non-empty string")
    value = value.strip()
    if len(value) > max_len:
        raise ApiError(400, "invalid_field", f"'{name}' must be at most {max_len} characters")
    return value


_REMOTE_STATUS = {
    "not_found": 404,
    "conflict": 409,
    "in_use": 409,
    "bad_request": 400,
    "engine_unavailable": 503,
    "deadline": 504,
}


def from_remote(code: str, message: str, host_name: str) -> ApiError:
    """A host's error as an API error; the status follows the Docker outcome, the message names the host."""
    return ApiError(_REMOTE_STATUS.get(code, 502), code, f"{host_name}: {message}")
