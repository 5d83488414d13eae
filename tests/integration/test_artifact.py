"""The agent artifacts as built: what they carry, for which hosts, and that all of the agent's code loads
on the oldest Python it supports."""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from pathlib import Path

from packaging.tags import Tag, parse_tag
from packaging.utils import parse_wheel_filename

from dockmesh import __version__
from dockmesh.server.artifact import artifact_name
from dockmesh.server.targets import PYTHONS, complete_platform

PYTHON_39 = Path.home() / ".pyenv/versions/3.9.18/bin/python3.9"


def distributions(pex: Path) -> dict[str, list[frozenset[Tag]]]:
    """Project name -> the tag sets of each wheel the pex carries for it."""
    with zipfile.ZipFile(pex) as zf:
        info = json.loads(zf.read("PEX-INFO"))
    out: dict[str, list[frozenset[Tag]]] = {}
    for wheel in info["distributions"]:
        name, _version, _build, tags = parse_wheel_filename(wheel)
        out.setdefault(str(name), []).append(tags)
    return out


def test_the_aarch64_artifact_has_every_dependency_for_every_cpython(aarch64_artifact: Path) -> None:
    pex = aarch64_artifact / artifact_name("aarch64")
    dists = distributions(pex)
    assert {"aiohttp", "cryptography", "orjson", "pyyaml", "rpds-py", "dockmesh"} <= set(dists)
    # Only what the agent imports: none of the server's libraries.
    assert not {"jinja2", "markupsafe", "argon2-cffi", "sqlalchemy", "psutil", "pex"} & set(dists)
    natives = {
        name for name, tag_sets in dists.items() if any(t.platform != "any" for s in tag_sets for t in s)
    }
    assert {"cryptography", "orjson", "pyyaml", "rpds-py"} <= natives  # the inspection sees native wheels
    for python in PYTHONS:
        accepted = {
            tag for text in complete_platform("aarch64", python)["compatible_tags"] for tag in parse_tag(text)
        }
        for name, tag_sets in dists.items():
            assert any(tags & accepted for tags in tag_sets), (
                f"{name}: no wheel for cp{python[0]}{python[1]} aarch64"
            )
        for name in natives:
            platforms = {t.platform for s in dists[name] for t in s if t.platform != "any"}
            assert all("aarch64" in p for p in platforms), (name, platforms)


def test_every_agent_module_loads_on_python_3_9(agent_artifacts: Path, tmp_short: Path) -> None:
    # The artifact's own interpreter mode: its wheels for 3.9, and every module of the packages the agent
    # is made of (including the deploy path an idle agent never loads; ruff checks these as py39), then
    # one compose file through the whole parser.
    pex = agent_artifacts / artifact_name(_arch())
    probe = """
import importlib, importlib.util, json, pkgutil, sys
import dockmesh
names = ["dockmesh.cli.agent"]
for package in ("agent", "compose", "docker", "host", "link", "pki", "proto"):
    module = importlib.import_module("dockmesh." + package)
    names += [m.name for m in pkgutil.walk_packages(module.__path__, module.__name__ + ".")]
for name in names:
    importlib.import_module(name)
from dockmesh.compose import check_policy, load_project
project = load_project("web", "services:\\n  app:\\n    image: busybox\\n    ports: ['8080:80']\\n", "A=1\\n")
check_policy(project, allow_privileged=False)
print(json.dumps({
    "python": list(sys.version_info[:2]),
    "modules": len(names),
    "version": dockmesh.__version__,
    "services": list(project.services),
    "server": importlib.util.find_spec("dockmesh.server") is not None,
}))
"""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PEX")}, "PEX_INTERPRETER": "1"}
    env["PEX_ROOT"] = str(tmp_short / "pex")  # not beside the artifact: the run's workers share that dir
    result = subprocess.run(
        [str(PYTHON_39), str(pex), "-c", probe], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["python"] == [3, 9]
    assert loaded["modules"] > 60  # every module of the agent's packages, not an empty walk
    assert (loaded["version"], loaded["services"]) == (__version__, ["app"])
    assert loaded["server"] is False  # the server's packages are not in the artifact


def _arch() -> str:
    import platform

    from dockmesh.host.facts import normalize_arch

    return normalize_arch(platform.machine())
