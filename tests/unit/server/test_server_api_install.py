"""`/install/agent/{arch}`: only known architectures, and no filesystem look-up for anything else."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from dockmesh.server.api.install import artifact
from dockmesh.server.artifact import Artifacts, artifact_name
from dockmesh.server.context import CONTEXT
from dockmesh.server.errors import ApiError


class CountingArtifacts(Artifacts):
    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.looked_up: list[str] = []

    def get(self, arch: str) -> Any:
        self.looked_up.append(arch)
        return super().get(arch)


def request(arch: str, artifacts: Artifacts) -> web.Request:
    app = web.Application()
    app[CONTEXT] = SimpleNamespace(artifacts=artifacts)  # type: ignore[assignment]
    return make_mocked_request("GET", f"/install/agent/{arch}", match_info={"arch": arch}, app=app)


@pytest.fixture
def artifacts(tmp_path: Path) -> CountingArtifacts:
    (tmp_path / artifact_name("x86_64")).write_bytes(b"pex")
    return CountingArtifacts(tmp_path)


@pytest.mark.parametrize(
    "arch",
    [
        "../../etc/passwd",
        "..",
        "x86_64/../x",
        "riscv64",
        "X86_64",
        "",
        "a" * 300,
        "x86_64.sha256.sha256",
        "%2e%2e",
    ],
)
def test_unknown_arches_are_404_without_a_lookup(arch: str, artifacts: CountingArtifacts) -> None:
    for name in (arch, f"{arch}.sha256"):
        with pytest.raises(ApiError) as caught:
            asyncio.run(artifact(request(name, artifacts)))
        assert caught.value.status == 404
        assert caught.value.code == "artifact_not_found"
    assert artifacts.looked_up == []


@pytest.mark.parametrize("arch", ["x86_64", "amd64", "x64"])
def test_known_arches_and_their_aliases_are_served(arch: str, artifacts: CountingArtifacts) -> None:
    response = asyncio.run(artifact(request(f"{arch}.sha256", artifacts)))
    assert isinstance(response, web.Response)
    assert response.text == f"{hashlib.sha256(b'pex').hexdigest()}  {artifact_name('x86_64')}\n"
    assert isinstance(asyncio.run(artifact(request(arch, artifacts))), web.FileResponse)


def test_a_known_arch_without_a_build_is_404(artifacts: CountingArtifacts) -> None:
    with pytest.raises(ApiError) as caught:
        asyncio.run(artifact(request("aarch64", artifacts)))
    assert caught.value.status == 404
    assert artifacts.looked_up == ["aarch64"]
