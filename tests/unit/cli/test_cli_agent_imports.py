"""The agent's import graph stays clear of the server and the store: its pex ships without them.

And an idle agent loads only what it runs: the deploy path (compose, YAML, the JSON schema, .env),
certificate handling (cryptography) and serving (aiohttp.web) load when a request needs them. The resident
supervisor (`dockmesh-agent run`) loads the standard library only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dockmesh

SERVER_ONLY = (
    "sqlalchemy",
    "asyncpg",
    "aiosqlite",
    "alembic",
    "jinja2",
    "markupsafe",
    "argon2",
    "pex",
    "packaging",
    "dockmesh.store",
    "dockmesh.server",
)
ON_DEMAND = (
    "cryptography",
    "yaml",
    "jsonschema",
    "dotenv",
    "psutil",
    "aiohttp.web",
    "dockmesh.compose.project",
    "dockmesh.docker.compose",
    "dockmesh.agent.doctor",
)

# A fresh interpreter (this test process has the server loaded already): import the entry point that
# `dockmesh-agent` runs, then list what came with it.
# The agent proper is `dockmesh-agent child`, started by the supervisor (`run`); it imports the runner.
PROBE = """
import json, sys
import dockmesh.cli.agent
import dockmesh.agent.runner
print(json.dumps(sorted(sys.modules)))
"""

# What the resident supervisor (`dockmesh-agent run`) loads: the standard library only.
SUPERVISOR_PROBE = """
import json, sys
import dockmesh.cli.agent
import dockmesh.agent.supervisor
print(json.dumps(sorted(sys.modules)))
"""


def _modules(probe: str) -> list[str]:
    src = str(Path(dockmesh.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60, check=True
    )
    modules: list[str] = json.loads(result.stdout)
    return modules


def _agent_modules() -> list[str]:
    modules = _modules(PROBE)
    assert "dockmesh.agent.runner" in modules  # the probe did load the agent
    return modules


def _under(modules: list[str], packages: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in packages)]


def test_the_supervisor_imports_only_the_standard_library() -> None:
    modules = _modules(SUPERVISOR_PROBE)
    assert "dockmesh.agent.trial" in modules
    heavy = ("aiohttp", "cryptography", "aiodocker", "psutil", "yaml", "orjson", "jsonschema", "asyncio")
    # Standard modules that cost it megabytes (OpenSSL through hashlib; inspect; traceback) are kept out too.
    heavy += ("hashlib", "dataclasses", "logging", "dockmesh.agent.config")
    assert [m for m in modules if m.split(".")[0] in heavy] == []


def test_the_agent_entry_point_imports_nothing_of_the_server() -> None:
    assert _under(_agent_modules(), SERVER_ONLY) == []


def test_the_agent_loads_deploy_and_certificate_code_on_demand_only() -> None:
    assert _under(_agent_modules(), ON_DEMAND) == []
