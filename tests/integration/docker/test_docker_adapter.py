"""The Docker adapter (dockmesh.docker) against a real dockerd engine of the test fleet."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any

import aiodocker
import pytest
from tests.fleet import BUSYBOX_IMAGE, Fleet

from dockmesh.docker import exec as exec_module
from dockmesh.docker.containers import container_action, create_container, inspect_container, list_containers
from dockmesh.docker.engine import connect
from dockmesh.docker.errors import DockerFailure, docker_errors, translate
from dockmesh.docker.events import engine_events
from dockmesh.docker.exec import ExecSession
from dockmesh.docker.images import list_images, pull_image, remove_image
from dockmesh.docker.logs import MAX_LINE, REMOVED_LINE, STOPPED_LINE, follow_logs, stream_logs
from dockmesh.docker.networks import create_network, list_networks, remove_network
from dockmesh.docker.stacks import list_stacks
from dockmesh.docker.stats import stats_once, stream_stats
from dockmesh.docker.volumes import create_volume, list_volumes, remove_volume

pytestmark = pytest.mark.docker

PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"


@pytest.fixture
async def docker(fleet: Fleet) -> AsyncIterator[aiodocker.Docker]:
    client = connect(fleet.engine(0).docker_host)
    try:
        yield client
    finally:
        await client.close()


async def sleeper(docker: aiodocker.Docker, name: str = "dm-sleeper", **kw: Any) -> str:
    return await create_container(docker, name=name, image=BUSYBOX_IMAGE, cmd=["sleep", "600"], **kw)


async def wait_state(docker: aiodocker.Docker, ref: str, state: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        info = await inspect_container(docker, ref)
        if info["State"]["Status"] == state:
            return info
        assert time.monotonic() < deadline, f"{ref} stuck in {info['State']['Status']}, wanted {state}"
        await asyncio.sleep(0.05)


async def eventually(check: Callable[[], Any], timeout: float = 10) -> None:
    """Poll the async ``check`` until it is truthy: the engine reports some states a moment late."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


async def logged(docker: aiodocker.Docker, cid: str, line: bytes) -> bool:
    return line in await gather_logs(stream_logs(docker, cid, follow=False))


async def read_all(session: ExecSession, timeout: float = 10) -> bytes:
    out = b""
    async with asyncio.timeout(timeout):
        while (chunk := await session.read()) is not None:
            out += chunk
    return out


async def read_until(session: ExecSession, done: Callable[[bytes], bool], timeout: float = 10) -> bytes:
    out = b""
    async with asyncio.timeout(timeout):
        while not done(out):
            chunk = await session.read()
            assert chunk is not None, f"exec ended early: {out!r}"
            out += chunk
    return out


async def exec_output(docker: aiodocker.Docker, ref: str, cmd: list[str]) -> bytes:
    session = await ExecSession.start(docker, ref, cmd, tty=False)
    try:
        return await read_all(session)
    finally:
        await session.close()


async def gather_logs(agen: AsyncIterator[bytes], timeout: float = 10) -> bytes:
    out = b""
    async with aclosing(agen), asyncio.timeout(timeout):
        async for chunk in agen:
            out += chunk
    return out


# ------------------------------------------------------------------------- errors


def test_translate_maps_statuses_and_transport_errors() -> None:
    cases = {
        404: (404, "not_found"),
        409: (409, "conflict"),
        400: (400, "bad_request"),
        401: (401, "unauthorized"),
        403: (409, "conflict"),
        500: (502, "engine_error"),
        900: (503, "engine_unavailable"),
    }
    for status, expected in cases.items():
        failure = translate(aiodocker.DockerError(status, f"msg {status}\n"))
        assert (failure.status, failure.code) == expected
        assert failure.message == f"msg {status}"
    denied = translate(aiodocker.DockerError(403, "denied: requested access to the resource is denied"))
    assert (denied.status, denied.code) == (403, "unauthorized")
    assert translate(ConnectionRefusedError("refused")).code == "engine_unavailable"
    with pytest.raises(DockerFailure) as caught, docker_errors():
        raise aiodocker.DockerError(404, "No such container: x")
    assert caught.value.status == 404
    assert "Traceback" not in caught.value.message


async def test_unreachable_engine_is_engine_unavailable(tmp_short: Path) -> None:
    client = connect(f"unix://{tmp_short}/missing.sock")
    try:
        with pytest.raises(DockerFailure) as caught:
            await list_containers(client)
        assert (caught.value.status, caught.value.code) == (503, "engine_unavailable")
        with pytest.raises(DockerFailure) as caught:
            await gather_logs(stream_logs(client, "x", follow=False))
        assert caught.value.code == "engine_unavailable"
    finally:
        await client.close()


# --------------------------------------------------------------------- containers


async def test_list_inspect_and_actions_change_state(docker: aiodocker.Docker) -> None:
    labels = {PROJECT: "shop", SERVICE: "web", "tier": "front"}
    cid = await sleeper(docker, "dm-web", labels=labels)
    rows = {r["name"]: r for r in await list_containers(docker)}
    row = rows["dm-web"]
    assert set(row) == {"id", "name", "image", "state", "status", "stack", "service", "created"}
    assert row["id"] == cid[:12]
    assert row["image"] == BUSYBOX_IMAGE
    assert row["state"] == "running"
    assert row["status"].startswith("Up")
    assert (row["stack"], row["service"]) == ("shop", "web")
    assert isinstance(row["created"], int)
    assert abs(row["created"] - time.time()) < 120

    info = await inspect_container(docker, "dm-web")
    assert info["Id"] == cid
    assert info["Config"]["Labels"] == labels
    assert info["HostConfig"]["NetworkMode"] == "none"
    assert info["Config"]["Cmd"] == ["sleep", "600"]

    await container_action(docker, cid, "stop", timeout=0)
    assert (await inspect_container(docker, cid))["State"]["Status"] == "exited"
    assert "dm-web" not in {r["name"] for r in await list_containers(docker, all=False)}
    assert (await list_containers(docker, all=True))[0]["state"] == "exited"
    await container_action(docker, cid, "stop", timeout=0)  # already stopped: fine
    await container_action(docker, cid, "start")
    await container_action(docker, cid, "start")  # already running: fine
    assert (await inspect_container(docker, cid))["State"]["Running"] is True
    started = (await inspect_container(docker, cid))["State"]["StartedAt"]
    await container_action(docker, cid, "restart", timeout=0)
    info = await inspect_container(docker, cid)
    assert info["State"]["Running"] is True
    assert info["State"]["StartedAt"] != started
    await container_action(docker, cid, "kill")
    await wait_state(docker, cid, "exited")
    with pytest.raises(DockerFailure) as caught:
        await container_action(docker, cid, "explode")
    assert (caught.value.status, caught.value.code) == (400, "bad_request")
    await container_action(docker, cid, "start")
    await container_action(docker, cid, "remove")  # running: force
    with pytest.raises(DockerFailure) as caught:
        await inspect_container(docker, cid)
    assert caught.value.status == 404


async def test_remove_drops_anonymous_volumes(docker: aiodocker.Docker, fleet: Fleet) -> None:
    eng = fleet.engine(0)
    cid = eng.docker(
        "run", "-d", "--network", "none", "-v", "/data", BUSYBOX_IMAGE, "sleep", "600"
    ).stdout.strip()
    [mount] = (await inspect_container(docker, cid))["Mounts"]
    assert mount["Name"] in {v["name"] for v in await list_volumes(docker)}
    await container_action(docker, cid, "remove")
    assert mount["Name"] not in {v["name"] for v in await list_volumes(docker)}


async def test_missing_container_is_not_found_everywhere(docker: aiodocker.Docker) -> None:
    calls = [
        inspect_container(docker, "dm-missing"),
        container_action(docker, "dm-missing", "start"),
        container_action(docker, "dm-missing", "remove"),
        gather_logs(stream_logs(docker, "dm-missing", follow=False)),
        gather_logs(follow_logs(docker, "dm-missing")),
        stats_once(docker, "dm-missing"),
        ExecSession.start(docker, "dm-missing", ["true"], tty=False),
    ]
    for call in calls:
        with pytest.raises(DockerFailure) as caught:
            await call
        assert (caught.value.status, caught.value.code) == (404, "not_found")
        assert "dm-missing" in caught.value.message
    for bad in ("../images/json", "a/b", "x?y=1", ""):
        with pytest.raises(DockerFailure) as caught:
            await inspect_container(docker, bad)
        assert caught.value.code == "bad_request"


async def test_shell_metacharacters_are_passed_literally(docker: aiodocker.Docker, fleet: Fleet) -> None:
    nasty = ["$(touch /tmp/dm-x)", "`touch /tmp/dm-y`", "a; touch /tmp/dm-z", "b && touch /tmp/dm-w | cat"]
    for name in nasty:
        with pytest.raises(DockerFailure) as caught:
            await create_container(docker, name=name, image=BUSYBOX_IMAGE, cmd=["true"])
        assert (caught.value.status, caught.value.code) == (400, "bad_request")
    assert not any(r["name"] in nasty for r in await list_containers(docker))

    labels = {"note": nasty[0], "cmd": nasty[2]}
    cid = await create_container(
        docker, name="dm-echo", image=BUSYBOX_IMAGE, cmd=["echo", *nasty], labels=labels
    )
    await wait_state(docker, cid, "exited")
    assert await gather_logs(stream_logs(docker, cid, follow=False)) == (" ".join(nasty) + "\n").encode()
    assert (await inspect_container(docker, cid))["Config"]["Labels"] == labels
    assert fleet.engine(0).docker("diff", cid).stdout.strip() == ""  # nothing was touched
    for i in "xyzw":
        assert not os.path.exists(f"/tmp/dm-{i}")

    sid = await sleeper(docker)
    assert await exec_output(docker, sid, ["echo", *nasty]) == (" ".join(nasty) + "\n").encode()
    assert b"dm-" not in await exec_output(docker, sid, ["ls", "-a", "/tmp"])


# ------------------------------------------------------------------------- images


async def test_list_and_remove_images_with_conflict(docker: aiodocker.Docker, fleet: Fleet) -> None:
    eng = fleet.engine(0)
    rows = await list_images(docker)
    [busybox] = [r for r in rows if BUSYBOX_IMAGE in r["tags"]]
    assert set(busybox) == {"id", "tags", "size", "created"}
    assert len(busybox["id"]) == 12
    assert int(busybox["id"], 16) >= 0
    assert busybox["size"] > 100_000
    assert busybox["created"] > 0

    src = await sleeper(docker, "dm-src")
    eng.docker("commit", src, "local/dm-conflict:1")
    user = await create_container(docker, name="dm-user", image="local/dm-conflict:1", cmd=["sleep", "600"])
    with pytest.raises(DockerFailure) as caught:
        await remove_image(docker, "local/dm-conflict:1")
    assert (caught.value.status, caught.value.code) == (409, "conflict")
    await container_action(docker, user, "remove")
    deleted = await remove_image(docker, "local/dm-conflict:1")
    assert any("Deleted" in d for d in deleted)
    assert not any("local/dm-conflict:1" in r["tags"] for r in await list_images(docker))
    with pytest.raises(DockerFailure) as caught:
        await remove_image(docker, "local/dm-conflict:1")
    assert caught.value.code == "not_found"


async def test_pull_needs_registry_credentials(
    docker: aiodocker.Docker, fleet: Fleet, tmp_path: Path
) -> None:
    reg = fleet.registry()
    eng = fleet.engine(0)
    ref = f"{reg.addr}/dm/busybox:1"
    cfg = {"DOCKER_CONFIG": str(tmp_path)}
    eng.docker("tag", BUSYBOX_IMAGE, ref)
    eng.docker("login", "-u", reg.username, "--password-stdin", reg.addr, input=reg.password, env=cfg)
    eng.docker("push", ref, env=cfg)
    eng.docker("rmi", ref)
    assert not eng.image_exists(ref)

    with pytest.raises(DockerFailure) as caught:
        async for _ in pull_image(docker, ref):
            pass
    assert caught.value.code == "unauthorized", caught.value
    assert caught.value.status in (401, 403)
    with pytest.raises(DockerFailure) as caught:
        async for _ in pull_image(docker, ref, auth={"username": reg.username, "password": "wrong"}):
            pass
    assert caught.value.code == "unauthorized", caught.value
    assert "wrong" not in caught.value.message

    progress = [
        p async for p in pull_image(docker, ref, auth={"username": reg.username, "password": reg.password})
    ]
    assert progress
    assert all(set(p) <= {"status", "id", "progress", "current", "total"} for p in progress)
    assert any("Digest" in p.get("status", "") or "Status" in p.get("status", "") for p in progress)
    assert any(ref in r["tags"] for r in await list_images(docker))
    await remove_image(docker, ref)


# ---------------------------------------------------------------- volumes, networks


async def test_volumes_create_list_remove(docker: aiodocker.Docker) -> None:
    row = await create_volume(docker, "dm-data", labels={PROJECT: "shop"})
    assert row["name"] == "dm-data"
    assert row["driver"] == "local"
    assert row["stack"] == "shop"
    [listed] = [v for v in await list_volumes(docker) if v["name"] == "dm-data"]
    assert set(listed) == {"name", "driver", "stack", "created", "mountpoint"}
    assert listed["created"] is None or isinstance(listed["created"], str)
    assert listed["mountpoint"].endswith("/dm-data/_data")

    cid = await create_container(
        docker, name="dm-vol", image=BUSYBOX_IMAGE, cmd=["sleep", "600"], volumes={"dm-data": "/data"}
    )
    assert await exec_output(docker, cid, ["touch", "/data/ok"]) == b""
    with pytest.raises(DockerFailure) as caught:
        await remove_volume(docker, "dm-data")
    assert caught.value.code == "conflict"
    await container_action(docker, cid, "remove")
    await remove_volume(docker, "dm-data")
    assert "dm-data" not in {v["name"] for v in await list_volumes(docker)}
    with pytest.raises(DockerFailure) as caught:
        await remove_volume(docker, "dm-data")
    assert caught.value.code == "not_found"


async def test_networks_create_list_remove(docker: aiodocker.Docker) -> None:
    nid = await create_network(docker, "dm-internal", labels={PROJECT: "shop"})
    plain = await create_network(docker, "dm-bridge", internal=False)
    rows = {n["name"]: n for n in await list_networks(docker)}
    assert set(rows["dm-internal"]) == {"id", "name", "driver", "scope", "stack", "internal"}
    assert rows["dm-internal"]["id"] == nid[:12]
    assert rows["dm-internal"]["driver"] == "bridge"
    assert rows["dm-internal"]["scope"] == "local"
    assert rows["dm-internal"]["stack"] == "shop"
    assert rows["dm-internal"]["internal"] is True
    assert rows["dm-bridge"]["internal"] is False
    assert rows["dm-bridge"]["id"] == plain[:12]
    assert rows["none"]["driver"] == "null"

    with pytest.raises(DockerFailure) as caught:
        await create_network(docker, "dm-internal")
    assert caught.value.code == "conflict"

    cid = await create_container(
        docker, name="dm-net", image=BUSYBOX_IMAGE, cmd=["sleep", "600"], network="dm-internal"
    )
    assert "dm-internal" in (await inspect_container(docker, cid))["NetworkSettings"]["Networks"]
    with pytest.raises(DockerFailure) as caught:
        await remove_network(docker, "dm-internal")
    assert caught.value.code == "conflict", caught.value
    await container_action(docker, cid, "remove")
    await remove_network(docker, "dm-internal")
    await remove_network(docker, plain)
    names = {n["name"] for n in await list_networks(docker)}
    assert not names & {"dm-internal", "dm-bridge"}
    with pytest.raises(DockerFailure) as caught:
        await remove_network(docker, "dm-internal")
    assert caught.value.code == "not_found"


async def test_stacks_from_container_labels(docker: aiodocker.Docker) -> None:
    def lbl(project: str, service: str) -> dict[str, str]:
        return {PROJECT: project, SERVICE: service}

    await sleeper(docker, "shop-web-1", labels=lbl("shop", "web"))
    await sleeper(docker, "shop-web-2", labels=lbl("shop", "web"))
    db = await sleeper(docker, "shop-db-1", labels=lbl("shop", "db"))
    await sleeper(docker, "blog-app-1", labels=lbl("blog", "app"))
    await sleeper(docker, "loose")
    await container_action(docker, db, "stop", timeout=0)
    assert await list_stacks(docker) == [
        {"name": "blog", "services": ["app"], "running": 1, "total": 1},
        {"name": "shop", "services": ["db", "web"], "running": 2, "total": 3},
    ]


# --------------------------------------------------------------------------- logs

SPLIT = ["sh", "-c", "echo out1; echo err1 >&2; echo out2; echo err2 >&2"]


async def test_logs_are_demultiplexed_for_non_tty(docker: aiodocker.Docker) -> None:
    cid = await create_container(docker, name="dm-logs", image=BUSYBOX_IMAGE, cmd=SPLIT)
    both = await gather_logs(stream_logs(docker, cid, follow=True))  # ends when the container exits
    assert sorted(both.splitlines()) == [b"err1", b"err2", b"out1", b"out2"]
    assert b"\x00" not in both
    assert await gather_logs(stream_logs(docker, cid, follow=False, stderr=False)) == b"out1\nout2\n"
    assert await gather_logs(stream_logs(docker, cid, follow=False, stdout=False)) == b"err1\nerr2\n"
    everything = await gather_logs(stream_logs(docker, cid, follow=False))
    assert (
        await gather_logs(stream_logs(docker, cid, follow=False, tail=1)) == everything.splitlines(True)[-1]
    )
    stamped = await gather_logs(stream_logs(docker, cid, follow=False, stderr=False, timestamps=True))
    lines = stamped.splitlines()
    assert [ln.split(b" ", 1)[1] for ln in lines] == [b"out1", b"out2"]
    assert all(ln[:2] == b"20" and ln[10:11] == b"T" for ln in lines)
    assert await gather_logs(stream_logs(docker, cid, follow=False, since=time.time() + 60)) == b""
    with pytest.raises(DockerFailure) as caught:
        await gather_logs(stream_logs(docker, cid, follow=False, stdout=False, stderr=False))
    assert caught.value.code == "bad_request"


async def test_logs_of_tty_container_are_raw(docker: aiodocker.Docker) -> None:
    cid = await create_container(docker, name="dm-tty", image=BUSYBOX_IMAGE, cmd=SPLIT, tty=True)
    out = await gather_logs(stream_logs(docker, cid, follow=True))
    assert out.replace(b"\r\n", b"\n") == b"out1\nerr1\nout2\nerr2\n"


COUNTER = [
    "sh",
    "-c",
    "trap 'exit 0' TERM; n=$(cat /tmp/boot 2>/dev/null || echo 0); n=$((n+1)); echo $n > /tmp/boot; "
    'i=0; while true; do i=$((i+1)); echo "run$n-$i"; sleep 0.2; done',
]


async def test_follow_logs_across_restart_stop_and_remove(docker: aiodocker.Docker) -> None:
    cid = await create_container(docker, name="dm-counter", image=BUSYBOX_IMAGE, cmd=COUNTER)
    got: list[bytes] = []

    async def until(predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(15):
            while not predicate():
                got.append(await agen.__anext__())

    agen = follow_logs(docker, cid)
    async with aclosing(agen):
        await until(lambda: b"run1-4\n" in got)
        await container_action(docker, cid, "restart", timeout=5)
        await until(lambda: b"run2-4\n" in got)
        await container_action(docker, cid, "stop", timeout=5)
        await until(lambda: STOPPED_LINE in got)
        await asyncio.sleep(0.6)
        await container_action(docker, cid, "start")
        await until(lambda: b"run3-3\n" in got)
        await container_action(docker, cid, "remove")
        async with asyncio.timeout(10):
            async for chunk in agen:
                got.append(chunk)
    assert got[-1] == REMOVED_LINE
    lines = [ln for ln in got if not ln.startswith(b"[dockmesh]")]
    assert len(lines) == len(set(lines)), f"duplicates: {got}"
    for run in (1, 2, 3):
        numbers = [int(ln.split(b"-")[1]) for ln in lines if ln.startswith(b"run%d-" % run)]
        assert numbers == list(range(1, len(numbers) + 1)), f"run {run} lost or reordered lines: {got}"
    assert got.index(b"run1-4\n") < got.index(b"run2-1\n") < got.index(STOPPED_LINE) < got.index(b"run3-1\n")
    assert got.count(STOPPED_LINE) <= 2  # at most once per stop (the restart may race past it)


async def test_follow_logs_tail_and_timestamps(docker: aiodocker.Docker) -> None:
    cid = await create_container(docker, name="dm-counter", image=BUSYBOX_IMAGE, cmd=COUNTER)
    await eventually(lambda: logged(docker, cid, b"run1-3\n"))
    agen = follow_logs(docker, cid, tail=1, timestamps=True)
    async with aclosing(agen), asyncio.timeout(10):
        first = await agen.__anext__()
        second = await agen.__anext__()
    ts, text = first.split(b" ", 1)
    assert ts[:2] == b"20"
    assert ts.endswith(b"Z")
    assert text.startswith(b"run1-")
    n = int(text.strip().split(b"-")[1])
    assert n >= 3
    assert second.split(b" ", 1)[1] == b"run1-%d\n" % (n + 1)


async def test_follow_logs_of_tty_container(docker: aiodocker.Docker) -> None:
    cid = await create_container(docker, name="dm-tty-counter", image=BUSYBOX_IMAGE, cmd=COUNTER, tty=True)
    await eventually(lambda: logged(docker, cid, b"run1-1"))
    agen = follow_logs(docker, cid, tail=1)
    got: list[bytes] = []
    async with aclosing(agen), asyncio.timeout(10):
        async for chunk in agen:
            got.append(chunk)
            if len(got) == 3:
                break
    numbers = [int(c.rstrip(b"\r\n").split(b"-")[1]) for c in got]
    assert all(c.startswith(b"run1-") for c in got), got
    assert numbers == list(range(numbers[0], numbers[0] + 3))


async def test_follow_logs_of_tty_progress_output_splits_long_lines(docker: aiodocker.Docker) -> None:
    # A progress bar redraws one line with \r and never ends it: 300 KB on one "line".
    script = (
        'i=0; while [ $i -lt 20000 ]; do printf "progress %05d\\r" $i; i=$((i+1)); done;'
        " echo; echo done; sleep 600"
    )
    cid = await create_container(
        docker, name="dm-tty-progress", image=BUSYBOX_IMAGE, cmd=["sh", "-c", script], tty=True
    )
    got: list[bytes] = []
    agen = follow_logs(docker, cid)
    async with aclosing(agen), asyncio.timeout(30):
        async for chunk in agen:
            got.append(chunk)
            if chunk.startswith(b"done"):
                break
    assert max(len(c) for c in got) <= MAX_LINE
    assert len(got) >= 5  # 300 KB could not come as one line
    joined = b"".join(got)
    assert b"progress 00000\r" in joined
    assert b"progress 19999\r" in joined


# -------------------------------------------------------------------------- stats


async def test_stats_stream_and_once(docker: aiodocker.Docker) -> None:
    cid = await create_container(
        docker, name="dm-busy", image=BUSYBOX_IMAGE, cmd=["sh", "-c", "yes > /dev/null"]
    )
    samples = []
    agen = stream_stats(docker, cid)
    async with aclosing(agen), asyncio.timeout(10):
        async for row in agen:
            samples.append(row)
            if len(samples) == 2:
                break
    keys = {"cpu_percent", "mem_used", "mem_limit", "pids", "net_rx", "net_tx", "read_at"}
    for row in samples:
        assert set(row) == keys
        assert 0 < row["mem_used"] <= row["mem_limit"]
        assert row["pids"] >= 1
        assert row["net_rx"] == 0
        assert row["net_tx"] == 0
        assert row["read_at"].startswith("20")
    assert samples[1]["cpu_percent"] > 5
    quick = await stats_once(docker, cid, one_shot=True)
    assert set(quick) == keys
    assert quick["cpu_percent"] == 0  # no baseline sample: one-shot did not wait for a second one
    assert quick["mem_used"] > 0
    once = await stats_once(docker, cid)
    assert set(once) == keys
    assert once["cpu_percent"] > 5
    assert once["pids"] >= 1


# --------------------------------------------------------------------------- exec


async def test_exec_output_exit_codes_env_and_workdir(docker: aiodocker.Docker) -> None:
    cid = await sleeper(docker)
    async with await ExecSession.start(docker, cid, ["echo", "hi"], tty=False) as s:
        assert await read_all(s) == b"hi\n"
        assert await s.exit_code() == 0  # right after the end of output
    async with await ExecSession.start(docker, cid, ["sh", "-c", "exit 3"], tty=False) as s:
        assert await read_all(s) == b""
        assert await s.wait() == 3
    async with await ExecSession.start(docker, cid, ["sh", "-c", "echo o; echo e >&2"], tty=False) as s:
        msgs = []
        while (m := await s.read_message()) is not None:
            msgs.append(m)
        assert sorted(msgs) == [(1, b"o\n"), (2, b"e\n")]
    async with await ExecSession.start(docker, cid, ["env"], tty=False, env=["FOO=a b;$(x)"]) as s:
        assert b"\nFOO=a b;$(x)\n" in b"\n" + await read_all(s)
    async with await ExecSession.start(docker, cid, ["pwd"], tty=False, workdir="/tmp") as s:
        assert await read_all(s) == b"/tmp\n"
    with pytest.raises(DockerFailure) as caught:
        await ExecSession.start(docker, cid, "echo hi", tty=False)  # type: ignore[arg-type]
    assert caught.value.code == "bad_request"
    await container_action(docker, cid, "stop", timeout=0)
    with pytest.raises(DockerFailure) as caught:
        await ExecSession.start(docker, cid, ["true"], tty=False)
    assert caught.value.code == "conflict"


async def test_exec_tty_shell_and_resize(docker: aiodocker.Docker) -> None:
    cid = await sleeper(docker)
    s = await ExecSession.start(docker, cid, ["sh"], tty=True, cols=120, rows=30)
    try:
        await s.write(b"echo $((6*7))\n")
        await read_until(s, lambda out: b"42" in out)
        await s.write(b"stty size\n")
        await read_until(s, lambda out: b"30 120" in out)
        await s.resize(100, 40)
        await s.write(b"stty size\n")
        await read_until(s, lambda out: b"40 100" in out)
        assert await s.exit_code() is None
        await s.write(b"exit 0\n")
        await read_all(s)
        assert await s.wait() == 0
    finally:
        await s.close()


async def test_exec_close_stdin_makes_cat_exit(docker: aiodocker.Docker) -> None:
    cid = await sleeper(docker)
    async with await ExecSession.start(docker, cid, ["cat"], tty=False) as s:
        await s.write(b"abc\n")
        assert await read_until(s, lambda out: out == b"abc\n") == b"abc\n"
        await s.write(b"def")
        await s.close_stdin()
        assert await read_all(s) == b"def"
        assert await s.wait() == 0
        with pytest.raises(DockerFailure):
            await s.write(b"more")


async def sleep_procs(docker: aiodocker.Docker, cid: str) -> list[bytes]:
    return [
        ln
        for ln in (await exec_output(docker, cid, ["ps", "-o", "pid,args"])).splitlines()
        if b"sleep 1000" in ln
    ]


async def has_one_sleeper(docker: aiodocker.Docker, cid: str) -> bool:
    return len(await sleep_procs(docker, cid)) == 1


async def test_exec_terminate_kills_a_running_process(docker: aiodocker.Docker) -> None:
    cid = await sleeper(docker)
    s = await ExecSession.start(docker, cid, ["sleep", "1000"], tty=False)
    assert (await s.inspect())["Running"] is True
    # `Running` turns true before the process shows in `ps`: wait for it to be there.
    await eventually(lambda: has_one_sleeper(docker, cid))
    await s.terminate()
    assert (await s.inspect())["Running"] is False
    assert await sleep_procs(docker, cid) == []


async def test_exec_terminate_falls_back_to_kill_inside_container(
    docker: aiodocker.Docker, monkeypatch: pytest.MonkeyPatch
) -> None:
    cid = await sleeper(docker)
    s = await ExecSession.start(docker, cid, ["sleep", "1000"], tty=False)
    await eventually(lambda: has_one_sleeper(docker, cid))
    host_pid = (await s.inspect())["Pid"]
    assert host_pid > 0
    denied: list[int] = []
    real_kill = os.kill

    def kill(pid: int, sig: int) -> None:
        if pid == host_pid and sig == signal.SIGKILL:
            denied.append(pid)
            raise PermissionError(1, "Operation not permitted")
        real_kill(pid, sig)

    monkeypatch.setattr(exec_module.os, "kill", kill)
    await s.terminate()
    assert denied == [host_pid]
    assert (await s.inspect())["Running"] is False
    assert await sleep_procs(docker, cid) == []


async def test_exec_terminate_of_finished_process_just_closes(docker: aiodocker.Docker) -> None:
    cid = await sleeper(docker)
    s = await ExecSession.start(docker, cid, ["cat"], tty=False)
    await s.terminate()  # stdin EOF ends cat within the grace period
    assert await s.exit_code() == 0
    assert await s.read() is None


# ------------------------------------------------------------------------- events


async def test_engine_events(docker: aiodocker.Docker) -> None:
    since = time.time() - 1
    cid = await sleeper(docker, "dm-events")
    await container_action(docker, cid, "stop", timeout=0)
    agen = engine_events(docker, {"type": "container", "container": cid}, since=since, until=time.time() + 1)
    async with aclosing(agen), asyncio.timeout(10):
        actions = [e["Action"] async for e in agen]
    assert actions[:2] == ["create", "start"]
    assert "die" in actions
    assert "stop" in actions
    # `since` replays what happened before the stream was attached: no race with the removal.
    before_remove = time.time() - 1
    agen = engine_events(
        docker, {"type": "container", "container": cid, "event": "destroy"}, since=before_remove
    )
    async with aclosing(agen), asyncio.timeout(10):
        pending = asyncio.ensure_future(agen.__anext__())
        await container_action(docker, cid, "remove")
        event = await pending
    assert event["Action"] == "destroy"
    assert event["Actor"]["ID"] == cid
