"""The migration pre-flight's pure checks: each refusal named, each computed from plain values."""

from __future__ import annotations

from dockmesh.compose import Project, load_project
from dockmesh.server.services import preflight

COMPOSE = """\
services:
  web:
    image: local/busybox:1
    ports: ["8080:80", "9000:9000/udp", "80"]
    volumes: ["data:/data", "/srv/cfg:/cfg:ro"]
    deploy: {resources: {limits: {memory: 256m}}}
  db:
    image: local/busybox:1
    volumes: ["shared:/shared"]
    deploy: {resources: {limits: {memory: 512m}}}
volumes:
  data: {}
  shared: {external: true}
"""


def project() -> Project:
    return load_project("shop", COMPOSE)


def test_named_volumes_are_copied_and_external_ones_refused() -> None:
    names, problems = preflight.project_volumes(project())
    assert names == ["shop_data"]
    assert [p.code for p in problems] == ["volume_external"]
    assert "shared" in problems[0].message


def test_bind_mounts_are_flagged_not_copied() -> None:
    found = preflight.mount_findings(project())
    assert [p.code for p in found] == ["bind_mount"]
    assert "/srv/cfg" in found[0].message


def test_port_collision_only_for_the_same_port_and_protocol() -> None:
    in_use = [
        {"port": 8080, "protocol": "tcp", "host_ip": "", "container": "other-web-1"},
        {"port": 9000, "protocol": "tcp", "host_ip": "", "container": "tcp-only"},
        {"port": "bogus", "protocol": "tcp"},  # a hostile row is ignored, not trusted
    ]
    problems = preflight.port_problems(project(), in_use)
    assert [p.code for p in problems] == ["port_collision"]
    assert "8080/tcp" in problems[0].message
    assert "other-web-1" in problems[0].message
    assert preflight.port_problems(project(), []) == []


def test_disk_and_memory_against_the_destination_heartbeat() -> None:
    assert preflight.memory_of(project()) == (256 + 512) << 20
    roomy = {"disk_used": 0, "disk_total": 10 << 30, "mem_used": 0, "mem_total": 4 << 30}
    assert preflight.resource_problems(1 << 30, 768 << 20, roomy) == []
    tight = {"disk_used": 9 << 30, "disk_total": 10 << 30, "mem_used": 3900 << 20, "mem_total": 4 << 30}
    codes = [p.code for p in preflight.resource_problems(1 << 30, 768 << 20, tight)]
    assert codes == ["disk_space", "memory"]
    assert [p.code for p in preflight.resource_problems(0, 0, None)] == ["disk_space"]  # no heartbeat yet


def test_architecture_and_engine_version() -> None:
    same = {"arch": "x86_64", "docker_version": "20.10.24"}
    assert preflight.compat_problems(same, {"arch": "x86_64", "docker_version": "24.0.1"}) == []
    codes = [p.code for p in preflight.compat_problems(same, {"arch": "aarch64", "docker_version": "19.03"})]
    assert codes == ["arch_mismatch", "engine_version"]
    assert preflight.compat_problems({}, same) == []  # unknown facts are not a refusal


def test_preflight_view_sums_and_reports() -> None:
    pf = preflight.Preflight(
        "shop", "a", "b", volumes=[preflight.VolumePlan("shop_data", 10), preflight.VolumePlan("x", -1)]
    )
    assert pf.ok
    assert pf.volume_bytes == 10
    pf.add("port_collision", "taken")
    view = pf.view()
    assert view["ok"] is False
    assert view["problems"] == [{"code": "port_collision", "message": "taken"}]


def test_a_hostile_host_s_answers_are_bounded_and_typed() -> None:
    sizes = {"sizes": {"shop_data": "lots", "other": 5, "shop_logs": True, "shop_db": 7}}
    plans = preflight.sizes_from(sizes, ["shop_data", "shop_logs", "shop_db"])
    assert [(p.name, p.bytes) for p in plans] == [("shop_data", -1), ("shop_logs", -1), ("shop_db", 7)]
    assert [p.bytes for p in preflight.sizes_from("nonsense", ["a"])] == [-1]
    missing = {"missing": {"local/busybox:1": "x" * 10_000, "not-asked:" + "y" * 5000: "z"}}
    assert preflight.missing_from(missing, ["local/busybox:1"]) == {"local/busybox:1": "x" * 300}
    assert preflight.missing_from({"missing": ["a"]}, ["a"]) == {}
    assert preflight.rows_from({"ports": [{"port": 1}, "junk", 3]}, "ports") == [{"port": 1}]
    assert len(preflight.rows_from([{}] * 20_000)) == preflight.MAX_ROWS
    assert preflight.rows_from(None) == []
