"""The agent's side of an upgrade offer over an in-memory link: every refusal, and the staged build."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dockmesh.agent.state import StateDir
from dockmesh.agent.trial import TrialFiles, TrialState
from dockmesh.agent.upgrade import Upgrader
from dockmesh.link import Link, RemoteError
from dockmesh.link.memory import socket_pair
from dockmesh.link.stream import Stream
from dockmesh.pki.signing import SigningKey
from dockmesh.proto import Role
from dockmesh.proto.manifest import Artifact, Manifest

NOW = 1_800_000_000
BUILD = b"#!/bin/sh\necho new build\n" * 1000


@dataclass
class Peer:
    """The server end: serves `served` on every artifact stream."""

    served: bytes
    opened: int = 0

    async def on_stream(self, stream: Stream) -> None:
        self.opened += 1
        for i in range(0, len(self.served), 4096):
            await stream.write(self.served[i : i + 4096])
        stream.eof()


@pytest.fixture
async def links() -> AsyncIterator[tuple[Link, Peer]]:
    a, b = socket_pair()
    peer = Peer(BUILD)
    server = Link(a, Role.ACCEPTOR, on_stream=peer.on_stream)
    agent = Link(b, Role.DIALER)
    tasks = [asyncio.create_task(server.run()), asyncio.create_task(agent.run())]
    yield agent, peer
    await agent.close()
    await server.close()
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture
def key(tmp_path: Path) -> SigningKey:
    return SigningKey.load_or_create(tmp_path / "upgrade.key")


def agent_dir(tmp_path: Path, key: SigningKey) -> tuple[Upgrader, TrialFiles]:
    state = StateDir(tmp_path / "state")
    state.path.mkdir()
    assert state.learn_upgrade_key(key.public_b64())
    trials = TrialFiles(state.path, lambda: NOW)
    return Upgrader(state, trials, clock=lambda: NOW, version="0.1.0", arch="x86_64"), trials


def offer(
    key: SigningKey, *, version: str = "0.2.0", data: bytes = BUILD, expires: int = NOW + 3600
) -> dict[str, str]:
    artifact = Artifact(hashlib.sha256(data).hexdigest(), len(data))
    manifest = Manifest(version, 1, NOW, expires, {"x86_64": artifact}).encode()
    return {
        "manifest": base64.b64encode(manifest).decode(),
        "signature": base64.b64encode(key.sign(manifest)).decode(),
    }


async def test_a_good_offer_is_downloaded_and_staged(
    tmp_path: Path, key: SigningKey, links: tuple[Link, Peer]
) -> None:
    upgrader, trials = agent_dir(tmp_path, key)
    link, _ = links
    assert await upgrader.apply(link, offer(key)) == {"staged": "0.2.0"}
    trial = trials.trial()
    assert trial is not None
    assert trial.state is TrialState.STAGED
    assert trial.to_build == "builds/dockmesh-agent-0.2.0-x86_64.pex"
    staged = trials.dir / trial.to_build
    assert staged.read_bytes() == BUILD
    assert staged.stat().st_mode & 0o777 == 0o700
    assert upgrader.staged == "0.2.0"


async def refused(upgrader: Upgrader, link: Link, params: dict[str, str], trials: TrialFiles) -> str:
    with pytest.raises(RemoteError) as caught:
        await upgrader.apply(link, params)
    assert caught.value.code == "upgrade_refused"
    assert trials.trial() is None  # nothing staged
    outcome = trials.outcome()
    assert outcome is not None
    assert outcome["outcome"] == "refused"
    assert not list(trials.builds.glob("*")) if trials.builds.exists() else True
    return caught.value.message


async def test_another_keys_signature_is_refused(
    tmp_path: Path, key: SigningKey, links: tuple[Link, Peer]
) -> None:
    upgrader, trials = agent_dir(tmp_path, key)
    other = SigningKey.load_or_create(tmp_path / "other.key")
    message = await refused(upgrader, links[0], offer(other), trials)
    assert "signature does not verify" in message
    assert links[1].opened == 0  # nothing downloaded for an unsigned offer


async def test_a_changed_manifest_is_refused(
    tmp_path: Path, key: SigningKey, links: tuple[Link, Peer]
) -> None:
    upgrader, trials = agent_dir(tmp_path, key)
    params = offer(key)
    forged = base64.b64decode(params["manifest"]).replace(b"0.2.0", b"0.9.0")
    params["manifest"] = base64.b64encode(forged).decode()
    assert "signature does not verify" in await refused(upgrader, links[0], params, trials)


async def test_an_expired_manifest_is_refused(
    tmp_path: Path, key: SigningKey, links: tuple[Link, Peer]
) -> None:
    upgrader, trials = agent_dir(tmp_path, key)
    assert "expired" in await refused(upgrader, links[0], offer(key, expires=NOW), trials)


@pytest.mark.parametrize("version", ["0.1.0", "0.0.9"])
async def test_a_replayed_or_older_manifest_is_refused(
    tmp_path: Path, key: SigningKey, links: tuple[Link, Peer], version: str
) -> None:
    upgrader, trials = agent_dir(tmp_path, key)
    assert "not newer than the running 0.1.0" in await refused(
        upgrader, links[0], offer(key, version=version), trials
    )


async def test_another_arch_is_refused(tmp_path: Path, key: SigningKey, links: tuple[Link, Peer]) -> None:
    upgrader, trials = agent_dir(tmp_path, key)
    upgrader.arch = "aarch64"
    assert "no artifact for aarch64" in await refused(upgrader, links[0], offer(key), trials)


async def test_a_hash_mismatch_is_refused(tmp_path: Path, key: SigningKey, links: tuple[Link, Peer]) -> None:
    upgrader, trials = agent_dir(tmp_path, key)
    links[1].served = BUILD[:-1] + b"X"
    assert "SHA-256 does not match" in await refused(upgrader, links[0], offer(key), trials)


async def test_a_download_past_the_signed_size_stops(
    tmp_path: Path, key: SigningKey, links: tuple[Link, Peer]
) -> None:
    upgrader, trials = agent_dir(tmp_path, key)
    links[1].served = BUILD * 4
    assert "larger than the manifest" in await refused(upgrader, links[0], offer(key), trials)


async def test_no_key_no_upgrade(tmp_path: Path, key: SigningKey, links: tuple[Link, Peer]) -> None:
    upgrader, trials = agent_dir(tmp_path, key)
    (tmp_path / "state" / "upgrade.pub").unlink()
    assert "no upgrade key" in await refused(upgrader, links[0], offer(key), trials)


def test_a_learnt_key_is_never_replaced(tmp_path: Path, key: SigningKey) -> None:
    state = StateDir(tmp_path)
    assert not state.learn_upgrade_key("not base64!")
    assert state.learn_upgrade_key(key.public_b64())
    other = SigningKey.load_or_create(tmp_path / "other.key")
    assert not state.learn_upgrade_key(other.public_b64())
    assert state.upgrade_public_key() == key.public_b64()
