"""The issue-10 test stack and what the docker CLI says about it, shared by the compose and deploy tests."""

from __future__ import annotations

import json

from tests.fleet import BUSYBOX_IMAGE, Engine

# The "done when" stack: two services, a named volume, a network, a healthcheck.
STACK = f"""\
services:
  web:
    image: {BUSYBOX_IMAGE}
    command: ["httpd", "-f", "-p", "8080", "-h", "/data"]
    volumes: [data:/data]
    networks: [back]
    environment: {{MODE: "${{MODE:-one}}"}}
    stop_grace_period: 1s
    depends_on:
      db: {{condition: service_healthy}}
  db:
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", "touch /tmp/ready; exec sleep 600"]
    networks: [back]
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 1s
      timeout: 1s
      retries: 5
volumes:
  data:
networks:
  back:
    internal: true
"""

# The same stack with a healthcheck that never passes: a deploy waits on it until cancelled.
NEVER_HEALTHY = STACK.replace('["CMD", "test", "-f", "/tmp/ready"]', '["CMD", "false"]').replace(
    "retries: 5", "retries: 1000"
)


def ps(engine: Engine, project: str = "demo") -> dict[str, str]:
    """name -> full id, as the docker CLI lists the project's containers."""
    out = engine.docker(
        "ps",
        "-a",
        "--no-trunc",
        "--filter",
        f"label=com.docker.compose.project={project}",
        "--format",
        "{{json .}}",
    ).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return {r["Names"]: r["ID"] for r in rows}
