"""The agent's import graph stays clear of the server and the store: its pex ships without them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dockmesh

SERVER_ONLY = ("sqlalchemy", "asyncpg", "aiosqlite", "alembic", "dockmesh.store", "dockmesh.server")

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


def test_the_supervisor_imports_only_the_standard_library() -> None:
    modules = _modules(SUPERVISOR_PROBE)
    assert "dockmesh.agent.trial" in modules
    heavy = ("aiohttp", "cryptography", "aiodocker", "psutil", "yaml", "orjson", "jsonschema", "asyncio")
    # Standard modules that cost it megabytes (OpenSSL through hashlib; inspect; traceback) are kept out too.
    heavy += ("hashlib", "dataclasses", "logging", "dockmesh.agent.config")
    assert [m for m in modules if m.split(".")[0] in heavy] == []


def test_the_agent_entry_point_imports_nothing_of_the_server() -> None:
    modules = _modules(PROBE)
    assert "dockmesh.agent.runner" in modules  # the probe did load the agent
    loaded = [m for m in modules if any(m == s or m.startswith(s + ".") for s in SERVER_ONLY)]
    assert loaded == []
