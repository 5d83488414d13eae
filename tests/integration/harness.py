"""Real dockmesh server and agent processes for integration tests, plus a small sync API client."""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.fleet import Proc, free_port, spawn, wait_for

ADMIN_PASSWORD = "test-admin-password"


class Api:
    def __init__(self, base: str, token: str | None = None, context: ssl.SSLContext | None = None) -> None:
        self.base = base
        self.token = token
        self.context = context

    def call(self, method: str, path: str, body: Any = None, raw: bool = False) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=30, context=self.context) as resp:
                status, payload = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, payload = exc.code, exc.read()
        if raw:
            return status, payload
        return status, (json.loads(payload) if payload else None)

    def get(self, path: str) -> Any:
        status, body = self.call("GET", path)
        assert status == 200, (path, status, body)
        return body

    def post(self, path: str, body: Any = None, expect: int = 200) -> Any:
        status, result = self.call("POST", path, body if body is not None else {})
        assert status == expect, (path, status, result)
        return result

    def host(self, host_id: str) -> dict[str, Any] | None:
        for item in self.get("/api/v1/hosts")["items"]:
            if item["id"] == host_id:
                return dict(item)
        return None

    def agent(self, agent_id: str) -> dict[str, Any]:
        return dict(self.get(f"/api/v1/agents/{agent_id}"))


class ServerProc:
    """`dockmesh serve` on fixed loopback ports, so a restarted server is found again by its agents.

    By default the UI listener binds 127.0.0.1 and so serves plain HTTP. ``https=True`` serves HTTPS: with
    the server's self-issued certificate when bound to all interfaces (``bind="0.0.0.0"``; tests still only
    connect to 127.0.0.1), or with an operator certificate passed in ``args``. ``cafile`` is what the
    test client trusts (default: the server's own CA).
    """

    def __init__(
        self,
        base: Path,
        *,
        env: dict[str, str] | None = None,
        docker_host: str | None = None,
        https: bool = False,
        bind: str = "127.0.0.1",
        args: Sequence[str] = (),
        cafile: Path | None = None,
    ) -> None:
        self.base = base
        self.https = https
        self.bind = bind
        self.args = list(args)
        self.cafile = cafile
        self.data_dir = base / "data"
        self.http_port = free_port(bind)
        self.agent_port = free_port()
        self.extra_env = env or {}
        self.docker_host = docker_host
        self.proc: Proc | None = None
        self.log_path = base / "server.log"
        self._api: Api | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.https else 'http'}://127.0.0.1:{self.http_port}"

    @property
    def ca_path(self) -> Path:
        return self.data_dir / "pki" / "ca.crt"

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client context that verifies the UI listener (chain and name), or None for plain HTTP."""
        if not self.https:
            return None
        return ssl.create_default_context(cafile=str(self.cafile or self.ca_path))

    @property
    def agent_url(self) -> str:
        return f"https://127.0.0.1:{self.agent_port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKMESH_")}
        env.pop("DOCKER_HOST", None)
        env.update(
            DOCKMESH_ADMIN_PASSWORD=ADMIN_PASSWORD,
            DOCKMESH_HEARTBEAT_INTERVAL="1s",
            DOCKMESH_ARTIFACT_DIR=str(self.base / "artifacts"),
            # No engine at the default socket path here: `local` only when a test gives one.
            DOCKER_HOST=self.docker_host or f"unix://{self.base}/no-docker.sock",
        )
        env.update(self.extra_env)
        return env

    def start(self) -> ServerProc:
        (self.base / "artifacts").mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable,
            "-m",
            "dockmesh.cli.main",
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--http",
            f"{self.bind}:{self.http_port}",
            "--agent-listen",
            f"127.0.0.1:{self.agent_port}",
            "--public-url",
            self.url,
            "--agent-url",
            self.agent_url,
            *self.args,
        ]
        self.proc = spawn(argv, env=self.env(), log_path=self.log_path)
        wait_for(self._healthy, 30, message=lambda: f"server did not start:\n{self.log_tail()}")
        self._api = None
        return self

    def _healthy(self) -> bool:
        if self.proc is not None and not self.proc.alive:
            raise RuntimeError(f"server exited:\n{self.log_tail()}")
        try:
            status, _ = Api(self.url, context=self.ssl_context()).call("GET", "/api/v1/health")
        except OSError:  # not listening yet, or (HTTPS) the CA not written yet
            return False
        return status == 200

    def log_tail(self) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-40:])
        except OSError:
            return ""

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        if self.proc:
            self.proc.kill()

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()

    @property
    def api(self) -> Api:
        if self._api is None:
            context = self.ssl_context()
            status, body = Api(self.url, context=context).call(
                "POST", "/api/v1/auth/login", {"username": "admin", "password": ADMIN_PASSWORD}
            )
            assert status == 200, body
            self._api = Api(self.url, body["token"], context)
        return self._api

    def create_agent(self, name: str) -> dict[str, Any]:
        return dict(self.api.post("/api/v1/agents", {"name": name}, expect=201))


class AgentProc:
    """One `dockmesh-agent` process with its own state dir, pointed at one engine."""

    def __init__(
        self, base: Path, server: ServerProc, docker_host: str, token: str | None, agent_id: str | None = None
    ) -> None:
        self.agent_id = agent_id
        self.state_dir = base / "state"
        self.log_path = base / "agent.log"
        self.server = server
        self.docker_host = docker_host
        self.token = token
        self.proc: Proc | None = None
        # The program to run instead of this checkout (e.g. a built artifact), and extra environment.
        self.program: list[str] = [sys.executable, "-m", "dockmesh.cli.agent"]
        self.extra_env: dict[str, str] = {}

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKMESH_")}
        env.update(
            DOCKMESH_ENROLL_URL=self.server.agent_url,
            DOCKMESH_STATE_DIR=str(self.state_dir),
            DOCKER_HOST=self.docker_host,
        )
        env.update(self.extra_env)
        if self.token:
            env["DOCKMESH_TOKEN"] = self.token
        return env

    def start(self, *args: str) -> AgentProc:
        argv = [*self.program, *args]
        self.proc = spawn(argv, env=self.env(), log_path=self.log_path)
        return self

    def run(self, *args: str, timeout: float = 60) -> tuple[int, str]:
        """Run a one-shot agent command (doctor, status, enroll) and return (exit code, output)."""
        out = self.log_path.with_name(f"{self.log_path.stem}-{args[0]}.log")
        out.unlink(missing_ok=True)
        proc = spawn([sys.executable, "-m", "dockmesh.cli.agent", *args], env=self.env(), log_path=out)
        code = proc.wait(timeout)
        if code is None:
            proc.kill()
            raise TimeoutError(f"dockmesh-agent {args} did not finish")
        return code, out.read_text(errors="replace")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()
