"""The WebSocket Origin check compares with the configured public URL, not with the Host header."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from dockmesh.server.api.auth import check_origin, origin_of
from dockmesh.server.context import CONTEXT
from dockmesh.server.errors import ApiError

# The check reads how the request was authenticated, which the auth middleware stores under a str key.
pytestmark = pytest.mark.filterwarnings("ignore:It is recommended to use web.RequestKey")


def request(public_url: str, origin: str | None, host: str, via: str = "cookie") -> web.Request:
    app = web.Application()
    app[CONTEXT] = SimpleNamespace(config=SimpleNamespace(public_url=public_url))  # type: ignore[assignment]
    headers = CIMultiDict({"Host": host})
    if origin is not None:
        headers["Origin"] = origin
    req = make_mocked_request("GET", "/api/v1/hosts/h/containers/c/exec", headers=headers, app=app)
    req["dockmesh_auth"] = via
    return req


@pytest.mark.parametrize(
    ("public_url", "origin"),
    [
        ("https://dockmesh.example.com", "https://dockmesh.example.com"),
        ("https://dockmesh.example.com", "https://DockMesh.example.com:443"),
        ("https://dockmesh.example.com:8080/base", "https://dockmesh.example.com:8080"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ],
)
def test_origin_of_the_public_url_is_accepted_behind_a_proxy(public_url: str, origin: str) -> None:
    # Behind a reverse proxy the Host header names the backend; the browser's Origin is the public one.
    check_origin(request(public_url, origin, host="127.0.0.1:8080"))


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://dockmesh.example.com",  # scheme differs
        "https://dockmesh.example.com:8443",  # port differs
        "https://dockmesh.example.com.evil.example",
        "null",
        "",
        "https://[bad",
    ],
)
def test_other_origins_are_refused(origin: str) -> None:
    with pytest.raises(ApiError) as caught:
        check_origin(request("https://dockmesh.example.com", origin, host="dockmesh.example.com"))
    assert (caught.value.status, caught.value.code) == (403, "bad_origin")


def test_a_forged_host_header_does_not_make_an_origin_ours() -> None:
    # Today's bug: Origin was compared with Host, so a request naming evil.example in both passed.
    with pytest.raises(ApiError):
        check_origin(request("https://dockmesh.example.com", "https://evil.example", host="evil.example"))


def test_no_origin_is_fine_for_bearer_tokens_only() -> None:
    check_origin(request("https://dockmesh.example.com", None, host="x", via="bearer"))
    with pytest.raises(ApiError):
        check_origin(request("https://dockmesh.example.com", None, host="x", via="cookie"))


def test_origin_of_fills_default_ports() -> None:
    assert origin_of("https://a.example") == ("https", "a.example", 443)
    assert origin_of("http://a.example") == ("http", "a.example", 80)
    assert origin_of("ftp://a.example") is None
