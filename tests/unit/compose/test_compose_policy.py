"""check_policy: host takeovers refused unless the stack is allowed them, with the key and line."""

from __future__ import annotations

import pytest

from dockmesh.compose import ComposeError, check_policy, load_project


def project(service_lines: str):  # type: ignore[no-untyped-def]
    return load_project("demo", f"services:\n  a:\n    image: x\n{service_lines}")


@pytest.mark.parametrize(
    ("lines", "key", "line", "why"),
    [
        ("    privileged: true\n", "services.a.privileged", 4, "privileged"),
        ("    network_mode: host\n", "services.a.network_mode", 4, "host's network"),
        ("    volumes: ['/:/host']\n", "services.a.volumes.0", 4, "host's /"),
        ("    volumes: ['/tmp:/t', '/var/run/docker.sock:/s']\n", "services.a.volumes.1", 4, "Docker socket"),
        ("    volumes:\n      - /run:/r\n", "services.a.volumes.0", 5, "Docker socket"),
        ("    volumes: ['/var/run/:/r']\n", "services.a.volumes.0", 4, "Docker socket"),
        ("    volumes: ['/srv/../:/r']\n", "services.a.volumes.0", 4, "host's /"),
        (
            "    volumes: [{type: bind, source: /home/u/docker.sock, target: /s}]\n",
            "services.a.volumes.0",
            4,
            "socket",
        ),
    ],
)
def test_refused_unless_allowed(lines: str, key: str, line: int, why: str) -> None:
    p = project(lines)
    with pytest.raises(ComposeError) as info:
        check_policy(p, allow_privileged=False)
    assert (info.value.code, info.value.key, info.value.line) == ("not_allowed", key, line)
    assert why in info.value.message
    check_policy(p, allow_privileged=True)  # an admin allowed it


@pytest.mark.parametrize(
    "lines",
    [
        "",
        "    network_mode: none\n",
        "    volumes: ['/srv/data:/data', '/var/lib/x:/x']\n",
        "    privileged: false\n",
    ],
)
def test_ordinary_stacks_pass(lines: str) -> None:
    check_policy(project(lines), allow_privileged=False)
