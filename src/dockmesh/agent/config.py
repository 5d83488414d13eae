"""Agent configuration from DOCKMESH_* environment variables and flags."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_STATE_DIR = "/var/lib/dockmesh-agent"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class AgentConfigError(ValueError):
    """Bad or missing configuration; the message says what to set."""


@dataclass(frozen=True)
class AgentConfig:
    state_dir: Path
    enroll_url: str | None = None
    token: str | None = None
    ca_sha256: str | None = None
    docker_host: str | None = None
    heartbeat_interval: float = 10.0

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        enroll_url: str | None = None,
        token: str | None = None,
        ca_sha256: str | None = None,
        state_dir: str | None = None,
    ) -> AgentConfig:
        env = os.environ if env is None else env
        url = (enroll_url or env.get("DOCKMESH_ENROLL_URL") or "").strip().rstrip("/") or None
        if url is not None and not url.startswith("https://"):
            raise AgentConfigError("DOCKMESH_ENROLL_URL must be the server's https:// agent listener URL")
        pin = (ca_sha256 or env.get("DOCKMESH_CA_SHA256") or "").strip().lower().replace(":", "") or None
        if pin is not None and not _HEX64.fullmatch(pin):
            raise AgentConfigError(
                "DOCKMESH_CA_SHA256 must be 64 hex digits (shown with the enrolment token)"
            )
        return cls(
            state_dir=Path(state_dir or env.get("DOCKMESH_STATE_DIR") or DEFAULT_STATE_DIR),
            enroll_url=url,
            token=(token or env.get("DOCKMESH_TOKEN") or "").strip() or None,
            ca_sha256=pin,
            docker_host=env.get("DOCKER_HOST") or None,
        )
