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
PROBE = """
import json, sys
import dockmesh.cli.agent
print(json.dumps(sorted(sys.modules)))
"""


def test_the_agent_entry_point_imports_nothing_of_the_server() -> None:
    src = str(Path(dockmesh.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=60, check=True
    )
    modules = json.loads(result.stdout)
    assert "dockmesh.agent.runner" in modules  # the probe did load the agent
    loaded = [m for m in modules if any(m == s or m.startswith(s + ".") for s in SERVER_ONLY)]
    assert loaded == []
