"""Which failed connects count as "nothing listens" (retried soon, see Backoff) and which do not."""

from __future__ import annotations

import socket

import aiohttp
import pytest

from dockmesh.agent.runner import refused


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_closed_port_is_a_refusal() -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientError) as caught:
            await http.get(f"http://127.0.0.1:{closed_port()}/")
    assert refused(caught.value)


async def test_a_listener_that_never_answers_is_not_a_refusal() -> None:
    # Something listens (a server still starting, a proxy): the ordinary windows apply.
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        async with aiohttp.ClientSession() as http:
            with pytest.raises((aiohttp.ClientError, TimeoutError)) as caught:
                await http.get(f"http://127.0.0.1:{port}/", timeout=aiohttp.ClientTimeout(total=0.5))
    assert not refused(caught.value)


def test_other_errors_are_not_refusals() -> None:
    assert not refused(TimeoutError())
    assert not refused(OSError("Multiple exceptions"))
    assert refused(ConnectionRefusedError())
