"""Exec and stats WebSockets through a real server and agent: big input, and clear close reasons."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from tests.fleet import Engine, Fleet
from tests.integration.harness import AgentProc, ServerProc
from tests.integration.spine import wait_online

IMAGE = "local/busybox:1"
LIMIT = 60.0


class Remote:
    def __init__(self, server: ServerProc, agent: AgentProc, engine: Engine) -> None:
        self.server = server
        self.engine = engine
        assert agent.agent_id
        self.host_id = agent.agent_id

    def url(self, container: str, what: str) -> str:
        return f"{self.server.url}/api/v1/hosts/{self.host_id}/containers/{container}/{what}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.server.api.token}"}


@pytest.fixture
def remote(server: ServerProc, agent_factory: Callable[..., AgentProc], fleet: Fleet) -> Remote:
    agent = agent_factory(server, "exec-host", engine=1)
    assert agent.agent_id
    wait_online(server, agent.agent_id)
    return Remote(server, agent, fleet.engine(1))


async def _session(
    url: str, headers: dict[str, str], params: list[tuple[str, str]], script: list[Any]
) -> Any:
    """Send `script`, collect output; returns (output, exit code, error messages, close code, reason)."""
    output, code, errors = b"", None, []
    async with aiohttp.ClientSession(headers=headers) as http, asyncio.timeout(LIMIT):
        async with http.ws_connect(url, params=params, max_msg_size=0) as ws:
            try:
                for item in script:
                    if isinstance(item, bytes):
                        await ws.send_bytes(item)
                    else:
                        await ws.send_json(item)
            except ConnectionError:
                pass  # the server closed while we sent (message too big): its close frame says why
            while True:
                msg = await ws.receive()
                if msg.type == aiohttp.WSMsgType.BINARY:
                    output += msg.data
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    control = json.loads(msg.data)
                    if control.get("type") == "exit":
                        code = control["code"]
                    else:
                        errors.append(control)
                elif msg.type == aiohttp.WSMsgType.CLOSE:
                    return output, code, errors, msg.data, str(msg.extra or "")
                else:
                    return output, code, errors, ws.close_code, f"{msg.type.name}: {msg.data}"


def _exec(remote: Remote, container: str, cmd: list[str], script: list[Any]) -> Any:
    params = [("cmd", c) for c in cmd] + [("tty", "0")]
    return asyncio.run(_session(remote.url(container, "exec"), remote.headers(), params, script))


def test_exec_input_over_a_mebibyte_reaches_the_process(remote: Remote) -> None:
    remote.engine.docker("run", "-d", "--network", "none", "--name", "sink", IMAGE, "sleep", "1000")
    paste = b"0123456789abcde\n" * (3 << 16)  # 3 MiB in one WebSocket message, like a big paste
    output, code, errors, close, _ = _exec(remote, "sink", ["wc", "-c"], [paste, {"type": "eof"}])
    assert errors == []
    assert output.strip() == str(len(paste)).encode()
    assert code == 0
    assert close == aiohttp.WSCloseCode.OK


def test_exec_input_over_the_message_limit_closes_with_1009_and_a_reason(remote: Remote) -> None:
    remote.engine.docker("run", "-d", "--network", "none", "--name", "sink", IMAGE, "sleep", "1000")
    _, code, _, close, reason = _exec(remote, "sink", ["cat"], [b"x" * (5 << 20)])
    assert close == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    assert reason == "message over 4 MiB; send it in smaller pieces"
    assert code is None


def test_an_error_after_the_upgrade_closes_with_1011_and_says_why(remote: Remote) -> None:
    # The host only finds out after the WebSocket is up that there is no such container.
    _, code, errors, close, reason = _exec(remote, "dm-no-such", ["sh"], [])
    assert close == aiohttp.WSCloseCode.INTERNAL_ERROR
    assert "dm-no-such" in reason
    assert reason.startswith("exec-host: ")
    assert errors[0]["type"] == "error"
    assert code is None
    stats = asyncio.run(_session(remote.url("dm-no-such", "stats"), remote.headers(), [], []))
    assert stats[3] == aiohttp.WSCloseCode.INTERNAL_ERROR
    assert "dm-no-such" in stats[4]
