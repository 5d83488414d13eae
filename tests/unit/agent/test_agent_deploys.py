"""stacks.* parameters are validated at the boundary, before any engine call (the engine here is absent)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiodocker
import pytest

from dockmesh.agent.deploys import MAX_JOBS, Deploys
from dockmesh.compose import MAX_TEXT
from dockmesh.link import RemoteError
from dockmesh.proto.methods import Stacks

GOOD = "services:\n  a: {image: x, network_mode: none}\n"


@pytest.fixture
async def deploys(tmp_path: Path) -> AsyncIterator[Deploys]:
    docker = aiodocker.Docker(url=f"unix://{tmp_path}/absent.sock")  # any engine call would fail
    d = Deploys(docker, tmp_path / "deploys.json")
    try:
        yield d
    finally:
        await d.close()
        await docker.close()


def start(d: Deploys, **params: Any) -> None:
    base = {"deploy_id": "d1", "project": "demo", "compose": GOOD, "env": None}
    d._start_job(str({**base, **params}["deploy_id"]), {**base, **params})


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"project": "../x"}, "project"),
        ({"project": "a/b"}, "project"),
        ({"project": "Upper"}, "project"),
        ({"compose": 5}, "compose"),
        ({"compose": ""}, "compose"),
        ({"env": ["A=1"]}, "env"),
        ({"allow_privileged": "yes"}, "allow_privileged"),
        ({"auth": "user:pass"}, "auth"),
        ({"auth": {"r": {"password": 5}}}, "auth"),
        ({"auth": {"r": {"token": "x"}}}, "auth"),
    ],
)
def test_bad_params(deploys: Deploys, params: dict[str, Any], field: str) -> None:
    with pytest.raises(RemoteError) as caught:
        start(deploys, **params)
    assert caught.value.code == "bad_request"
    assert field in caught.value.message


def test_bad_auth_never_echoes_the_password(deploys: Deploys) -> None:
    with pytest.raises(RemoteError) as caught:
        start(deploys, auth={"r": {"password": "hunter2", "bogus": "x"}})
    assert "hunter2" not in caught.value.message


def test_oversized_compose(deploys: Deploys) -> None:
    with pytest.raises(RemoteError) as caught:
        start(deploys, compose="#" * (MAX_TEXT + 1))
    assert caught.value.code == "too_large"


def test_compose_errors_keep_key_and_line(deploys: Deploys) -> None:
    with pytest.raises(RemoteError) as caught:
        start(deploys, compose="services:\n  a:\n    image: x\n    build: .\n")
    assert caught.value.code == "unsupported_key"
    assert "services.a.build" in caught.value.message
    assert "line 4" in caught.value.message


def test_policy_is_checked(deploys: Deploys) -> None:
    privileged = "services:\n  a: {image: x, privileged: true}\n"
    with pytest.raises(RemoteError) as caught:
        start(deploys, compose=privileged)
    assert caught.value.code == "not_allowed"


@pytest.mark.parametrize("deploy_id", ["", "a" * 65, "x/y", "a b", None, 7])
async def test_bad_deploy_ids(deploys: Deploys, deploy_id: Any) -> None:
    for method in (Stacks.DEPLOY_STATUS, Stacks.CANCEL):
        with pytest.raises(RemoteError) as caught:
            await deploys.requests()[method]({"deploy_id": deploy_id})
        assert caught.value.code == "bad_request"


async def test_unknown_ids(deploys: Deploys) -> None:
    status = await deploys.requests()[Stacks.DEPLOY_STATUS]({"deploy_id": "nope"})
    assert status == {"state": "unknown", "result": None}
    with pytest.raises(RemoteError) as caught:
        await deploys.requests()[Stacks.CANCEL]({"deploy_id": "nope"})
    assert caught.value.code == "not_found"


async def test_project_requests_validate_names(deploys: Deploys) -> None:
    for method in (Stacks.DOWN, Stacks.STOP, Stacks.START, Stacks.SERVICES):
        with pytest.raises(RemoteError) as caught:
            await deploys.requests()[method]({"project": "../etc"})
        assert caught.value.code == "bad_request"
    with pytest.raises(RemoteError):
        await deploys.requests()[Stacks.DOWN]({"project": "demo", "volumes": "all"})


async def test_jobs_are_bounded(deploys: Deploys) -> None:
    for i in range(MAX_JOBS):
        deploys._start_job(
            f"d{i}", {"deploy_id": f"d{i}", "project": f"p{i}", "compose": GOOD}
        )  # each fails on the absent engine, after being admitted
    with pytest.raises(RemoteError) as caught:
        deploys._start_job("dx", {"deploy_id": "dx", "project": "px", "compose": GOOD})
    assert caught.value.code == "busy"
    with pytest.raises(RemoteError) as caught:
        deploys._start_job("dy", {"deploy_id": "dy", "project": "p0", "compose": GOOD})
    assert caught.value.code == "conflict"


async def test_a_job_cancelled_before_it_ran_still_settles(deploys: Deploys) -> None:
    job = deploys._start_job("early", {"deploy_id": "early", "project": "demo", "compose": GOOD})
    assert job.task is not None
    job.task.cancel()  # before the task's first step
    with pytest.raises(asyncio.CancelledError):
        await job.task
    await asyncio.sleep(0)  # done callbacks run on the next loop pass
    status = await deploys.requests()[Stacks.DEPLOY_STATUS]({"deploy_id": "early"})
    assert status["state"] == "cancelled"
    assert job.result is not None
