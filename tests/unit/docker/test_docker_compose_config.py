"""Engine bodies for a compose Project: compose v2 names and labels, each key where the engine wants it."""

from __future__ import annotations

from dockmesh import __version__
from dockmesh.compose import load_project
from dockmesh.docker.compose_config import LABEL, container_body, container_name, network_body, volume_body

TEXT = """\
services:
  web:
    image: local/busybox:1
    command: httpd -f
    entrypoint: []
    environment: {A: "1"}
    labels: {team: core}
    ports: ["127.0.0.1:8080:80", "53/udp"]
    volumes: [data:/data, "/srv:/srv:ro", {type: tmpfs, target: /t, tmpfs: {size: 1k}}]
    networks:
      back: {aliases: [www]}
      front:
    restart: on-failure:2
    healthcheck: {test: [CMD, "true"], interval: 2s, retries: 3}
    user: "1000"
    cap_drop: [ALL]
    ulimits: {nofile: 1024}
    logging: {driver: json-file, options: {max-size: 1m}}
    deploy: {resources: {limits: {cpus: "0.5", memory: 64m}}}
    init: true
    stop_grace_period: 3s
volumes:
  data: {labels: {keep: "yes"}}
networks:
  back: {internal: true}
  front: {name: shared-front}
"""


def test_container_body() -> None:
    project = load_project("shop", TEXT)
    web = project.services["web"]
    body = container_body(project, web)
    assert container_name("shop", "web") == "shop-web-1"
    assert body["Labels"] == {
        "team": "core",
        LABEL.PROJECT: "shop",
        LABEL.SERVICE: "web",
        LABEL.NUMBER: "1",
        LABEL.HASH: web.config_hash,
        LABEL.VERSION: __version__,
        LABEL.ONEOFF: "False",
    }
    assert body["Cmd"] == ["httpd", "-f"]
    assert body["Entrypoint"] == [""]  # an explicit empty entrypoint clears the image's
    assert body["Env"] == ["A=1"]
    assert body["User"] == "1000"
    assert body["StopTimeout"] == 3
    assert body["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert body["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 2 * 10**9, "Retries": 3}
    host = body["HostConfig"]
    assert host["PortBindings"] == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
        "53/udp": [{"HostIp": "", "HostPort": ""}],
    }
    assert host["Mounts"] == [
        {"Type": "volume", "Target": "/data", "ReadOnly": False, "Source": "shop_data"},
        {"Type": "bind", "Target": "/srv", "ReadOnly": True, "Source": "/srv"},
        {"Type": "tmpfs", "Target": "/t", "ReadOnly": False, "TmpfsOptions": {"SizeBytes": 1024}},
    ]
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert host["CapDrop"] == ["ALL"]
    assert host["Ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 1024}]
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m"}}
    assert (host["NanoCpus"], host["Memory"], host["Init"]) == (500_000_000, 64 << 20, True)
    # The first network (by key) at create, with the service name as an alias; the others are connected later.
    assert host["NetworkMode"] == "shop_back"
    assert body["NetworkingConfig"] == {"EndpointsConfig": {"shop_back": {"Aliases": ["web", "www"]}}}


def test_no_restart_and_network_mode() -> None:
    project = load_project("shop", "services:\n  a: {image: x, network_mode: none}\n")
    body = container_body(project, project.services["a"])
    assert body["HostConfig"]["NetworkMode"] == "none"
    assert body["HostConfig"]["RestartPolicy"] == {"Name": "", "MaximumRetryCount": 0}
    assert "NetworkingConfig" not in body
    assert "Cmd" not in body  # the image's own command


def test_network_and_volume_bodies() -> None:
    project = load_project("shop", TEXT)
    back = network_body(project, project.networks["back"])
    assert (back["Name"], back["Driver"], back["Internal"]) == ("shop_back", "bridge", True)
    assert back["Labels"][LABEL.PROJECT] == "shop"
    assert back["Labels"][LABEL.NETWORK] == "back"
    assert network_body(project, project.networks["front"])["Name"] == "shared-front"
    data = volume_body(project, project.volumes["data"])
    assert (data["Name"], data["Driver"]) == ("shop_data", "local")
    assert data["Labels"] == {
        "keep": "yes",
        LABEL.PROJECT: "shop",
        LABEL.VOLUME: "data",
        LABEL.VERSION: __version__,
    }
