"""Smoke test of the test fleet itself: engines, busybox, freeze/thaw, auth registry."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.fleet import BUSYBOX_IMAGE, DockerCLIError, Fleet

pytestmark = pytest.mark.docker


def test_two_engines_run_busybox_with_distinct_ids(fleet: Fleet) -> None:
    engines = [fleet.engine(0), fleet.engine(1)]
    for eng in engines:
        assert eng.image_exists(BUSYBOX_IMAGE)
        out = eng.docker("run", "--rm", "--network", "none", BUSYBOX_IMAGE, "echo", "hi").stdout
        assert out.strip() == "hi"
    ids = [eng.info()["ID"] for eng in engines]
    assert all(ids)
    assert ids[0] != ids[1]
    assert engines[0].socket_path != engines[1].socket_path


def test_freeze_makes_ping_time_out_and_thaw_restores(fleet: Fleet) -> None:
    eng = fleet.engine(0)
    assert eng.ping(timeout=5)
    eng.freeze()
    t0 = time.monotonic()
    assert not eng.ping(timeout=1.0)
    assert time.monotonic() - t0 < 3.0  # the ping's own timeout holds (slack for a busy machine)
    eng.thaw()
    assert eng.ping(timeout=5)


def test_registry_requires_auth_for_push_then_pull(fleet: Fleet, tmp_path: Path) -> None:
    reg = fleet.registry()
    e0, e1 = fleet.engine(0), fleet.engine(1)
    ref = f"{reg.addr}/t/busybox:1"
    e0.docker("tag", BUSYBOX_IMAGE, ref)

    anon = tmp_path / "anon"
    anon.mkdir()
    with pytest.raises(DockerCLIError) as refused:
        e0.docker("push", ref, env={"DOCKER_CONFIG": str(anon)})
    assert "no basic auth credentials" in refused.value.stderr or "unauthorized" in refused.value.stderr

    authed = tmp_path / "authed"
    authed.mkdir()
    cfg = {"DOCKER_CONFIG": str(authed)}
    e0.docker("login", "-u", reg.username, "--password-stdin", reg.addr, input=reg.password, env=cfg)
    e0.docker("push", ref, env=cfg)

    assert not e1.image_exists(ref)
    e1.docker("pull", ref, env=cfg)
    out = e1.docker("run", "--rm", "--network", "none", ref, "echo", "pulled").stdout
    assert out.strip() == "pulled"
    e1.docker("rmi", ref)
    e0.docker("rmi", ref)


def test_tmp_short_holds_a_unix_socket(tmp_short: Path) -> None:
    path = tmp_short / "s.sock"
    assert len(str(path)) < 40
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(path))
    assert path.exists()
