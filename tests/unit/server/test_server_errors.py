"""API error helpers: field validation, the error body, and the error middleware."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web

from dockmesh.server.errors import ApiError, error_middleware, error_response, field_str, json_body


def body_of(response: web.StreamResponse) -> Any:
    assert isinstance(response, web.Response)
    assert response.body is not None
    return json.loads(bytes(response.body))  # type: ignore[arg-type]


def test_field_str_returns_the_stripped_value() -> None:
    assert field_str({"name": "  web-1 "}, "name") == "web-1"


@pytest.mark.parametrize(
    "body",
    [{}, {"name": None}, {"name": ""}, {"name": "   "}, {"name": 5}, {"name": ["a"]}, {"name": {"a": 1}}],
)
def test_field_str_missing_empty_or_wrong_type(body: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as info:
        field_str(body, "name")
    assert info.value.status == 400
    assert info.value.code == "invalid_field"
    assert "'name'" in info.value.message


def test_field_str_too_long() -> None:
    assert field_str({"name": "x" * 10}, "name", max_len=10) == "x" * 10
    with pytest.raises(ApiError) as info:
        field_str({"name": "x" * 11}, "name", max_len=10)
    assert (info.value.status, info.value.code) == (400, "invalid_field")
    assert "at most 10" in info.value.message


def test_field_str_default_limit_is_200() -> None:
    assert len(field_str({"n": "y" * 200}, "n")) == 200
    with pytest.raises(ApiError):
        field_str({"n": "y" * 201}, "n")


def test_field_str_length_is_measured_after_stripping() -> None:
    assert field_str({"n": "  " + "y" * 10 + "  "}, "n", max_len=10) == "y" * 10


def test_field_str_optional() -> None:
    assert field_str({}, "note", required=False) == ""
    assert field_str({"note": None}, "note", required=False) == ""
    assert field_str({"note": " hi "}, "note", required=False) == "hi"
    with pytest.raises(ApiError):
        field_str({"note": ""}, "note", required=False)


def test_error_response_shape() -> None:
    response = error_response(409, "conflict", "already exists")
    assert response.status == 409
    assert response.content_type == "application/json"
    assert body_of(response) == {"error": {"code": "conflict", "message": "already exists"}}


def test_error_response_headers() -> None:
    response = error_response(405, "method_not_allowed", "no", headers={"Allow": "GET"})
    assert response.headers["Allow"] == "GET"


def test_api_error_carries_its_fields() -> None:
    exc = ApiError(404, "agent_not_found", "no agent with id 'x'")
    assert (exc.status, exc.code, exc.message) == (404, "agent_not_found", "no agent with id 'x'")
    assert str(exc) == "no agent with id 'x'"


# --- the middleware, called directly with a stand-in request ----------------------------------

REQUEST = SimpleNamespace(method="GET", rel_url=SimpleNamespace(path="/api/v1/x"))


async def run_middleware(exc: BaseException) -> web.StreamResponse:
    async def handler(_request: Any) -> web.StreamResponse:
        raise exc

    return await error_middleware(REQUEST, handler)  # type: ignore[arg-type]


async def test_middleware_passes_responses_through() -> None:
    ok = web.json_response({"ok": True})

    async def handler(_request: Any) -> web.StreamResponse:
        return ok

    assert await error_middleware(REQUEST, handler) is ok  # type: ignore[arg-type]


async def test_middleware_renders_api_errors() -> None:
    response = await run_middleware(ApiError(401, "invalid_token", "bad token"))
    assert response.status == 401
    assert body_of(response) == {"error": {"code": "invalid_token", "message": "bad token"}}


async def test_middleware_renders_http_errors_with_their_reason() -> None:
    response = await run_middleware(web.HTTPNotFound())
    assert response.status == 404
    assert body_of(response) == {"error": {"code": "not_found", "message": "Not Found"}}


async def test_middleware_keeps_custom_http_error_text() -> None:
    response = await run_middleware(web.HTTPRequestEntityTooLarge(100, 200, text="body too big"))
    assert response.status == 413
    assert body_of(response)["error"] == {"code": "too_large", "message": "body too big"}


async def test_middleware_keeps_the_allow_header() -> None:
    response = await run_middleware(web.HTTPMethodNotAllowed("DELETE", ["GET", "POST"]))
    assert response.status == 405
    assert body_of(response)["error"]["code"] == "method_not_allowed"
    assert set(response.headers["Allow"].split(",")) == {"GET", "POST"}


async def test_middleware_hides_unexpected_exceptions() -> None:
    response = await run_middleware(RuntimeError("secret detail"))
    assert response.status == 500
    body = body_of(response)
    assert body["error"]["code"] == "internal"
    assert "secret detail" not in json.dumps(body)


async def test_middleware_reraises_redirects() -> None:
    with pytest.raises(web.HTTPFound):
        await run_middleware(web.HTTPFound("/elsewhere"))


# --- json_body over a real aiohttp server: the body arrives in pieces ------------------------------


class EchoServer:
    """An aiohttp server whose handler echoes json_body; `entered` is set once the handler runs."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.entered.set()
        return web.json_response(await json_body(request, limit=64))


@pytest.fixture
async def echo() -> AsyncIterator[EchoServer]:
    server = EchoServer()
    app = web.Application(middlewares=[error_middleware])
    app.router.add_post("/", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.port = runner.addresses[0][1]
    yield server
    await runner.cleanup()


async def post_in_pieces(server: EchoServer, pieces: list[bytes], chunked: bool = False) -> tuple[int, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    total = sum(len(p) for p in pieces)
    length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}"
    head = f"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{length}\r\n\r\n".encode()

    def frame(piece: bytes) -> bytes:
        return f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece

    writer.write(head + frame(pieces[0]))
    await writer.drain()
    # The handler is running with only the first piece buffered before the rest is sent.
    await asyncio.wait_for(server.entered.wait(), 5)
    for piece in pieces[1:]:
        writer.write(frame(piece))
        await writer.drain()
    if chunked:
        writer.write(b"0\r\n\r\n")
    status_line = await asyncio.wait_for(reader.readline(), 5)
    headers = await reader.readuntil(b"\r\n\r\n")
    length_line = next(h for h in headers.split(b"\r\n") if h.lower().startswith(b"content-length"))
    body = await reader.readexactly(int(length_line.split(b":")[1]))
    writer.close()
    return int(status_line.split()[1]), json.loads(body)


@pytest.mark.parametrize("chunked", [False, True])
async def test_json_body_reads_a_body_sent_in_two_pieces(echo: EchoServer, chunked: bool) -> None:
    status, body = await post_in_pieces(echo, [b'{"name": "we', b'b-1"}'], chunked=chunked)
    assert (status, body) == (200, {"name": "web-1"})


@pytest.mark.parametrize("chunked", [False, True])
async def test_json_body_past_the_limit_is_413_even_in_pieces(echo: EchoServer, chunked: bool) -> None:
    status, body = await post_in_pieces(echo, [b'{"a": "' + b"x" * 40, b"y" * 40 + b'"}'], chunked=chunked)
    assert status == 413
    assert body["error"]["code"] == "too_large"


def test_error_details_sit_next_to_code_and_message_but_never_replace_them() -> None:
    response = error_response(
        400, "unsupported_key", "no", details={"key": "services.web.x", "line": 3, "code": "x"}
    )
    assert body_of(response) == {
        "error": {"code": "unsupported_key", "message": "no", "key": "services.web.x", "line": 3}
    }
