"""Engine API bodies for a compose Project (containers, networks, volumes), compose v2 names and labels."""

from __future__ import annotations

from typing import Any

from dockmesh import __version__
from dockmesh.compose import NetworkSpec, Project, Service, VolumeSpec

__all__ = ["LABEL", "container_body", "container_name", "network_body", "volume_body"]


class LABEL:
    PROJECT = "com.docker.compose.project"
    SERVICE = "com.docker.compose.service"
    NUMBER = "com.docker.compose.container-number"
    HASH = "com.docker.compose.config-hash"
    VERSION = "com.docker.compose.version"
    ONEOFF = "com.docker.compose.oneoff"
    NETWORK = "com.docker.compose.network"
    VOLUME = "com.docker.compose.volume"


def container_name(project: str, service: str, number: int = 1) -> str:
    return f"{project}-{service}-{number}"


def _restart(policy: str) -> dict[str, Any]:
    name, _, count = policy.partition(":")
    return {"Name": "" if name == "no" else name, "MaximumRetryCount": int(count or 0)}


def _mount(project: Project, mount: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"Type": mount.type, "Target": mount.target, "ReadOnly": mount.read_only}
    if mount.type == "bind":
        body["Source"] = mount.source
    elif mount.type == "volume":
        body["Source"] = project.volumes[mount.source].name if mount.source else ""
        if mount.nocopy:
            body["VolumeOptions"] = {"NoCopy": True}
    elif mount.tmpfs_size is not None:
        body["TmpfsOptions"] = {"SizeBytes": mount.tmpfs_size}
    return body


def endpoint(service: Service, aliases: tuple[str, ...]) -> dict[str, Any]:
    # The service name is an alias on every network, so services find each other by name.
    return {"Aliases": [service.name, *aliases]}


def container_body(project: Project, service: Service, number: int = 1) -> dict[str, Any]:
    """POST /containers/create body; networks after the first are connected before start."""
    labels = {
        **dict(service.labels),
        LABEL.PROJECT: project.name,
        LABEL.SERVICE: service.name,
        LABEL.NUMBER: str(number),
        LABEL.HASH: service.config_hash,
        LABEL.VERSION: __version__,
        LABEL.ONEOFF: "False",
    }
    host: dict[str, Any] = {
        "RestartPolicy": _restart(service.restart),
        "Mounts": [_mount(project, m) for m in service.mounts],
        "PortBindings": {},
        "CapAdd": list(service.cap_add) or None,
        "CapDrop": list(service.cap_drop) or None,
        "Ulimits": [{"Name": n, "Soft": s, "Hard": h} for n, s, h in service.ulimits] or None,
        "Privileged": service.privileged,
        "Init": service.init or None,
    }
    if service.log_driver:
        host["LogConfig"] = {"Type": service.log_driver, "Config": dict(service.log_options)}
    if service.nano_cpus:
        host["NanoCpus"] = service.nano_cpus
    if service.memory:
        host["Memory"] = service.memory
    exposed: dict[str, Any] = {}
    for port in service.ports:
        key = f"{port.target}/{port.protocol}"
        exposed[key] = {}
        host["PortBindings"].setdefault(key, []).append(
            {"HostIp": port.host_ip, "HostPort": "" if port.published is None else str(port.published)}
        )
    body: dict[str, Any] = {
        "Image": service.image,
        "Env": [f"{k}={v}" for k, v in service.environment],
        "Labels": labels,
        "ExposedPorts": exposed,
        "HostConfig": host,
    }
    if service.command is not None:
        body["Cmd"] = list(service.command)
    if service.entrypoint is not None:
        body["Entrypoint"] = list(service.entrypoint) or [""]
    for key, value in (
        ("User", service.user),
        ("WorkingDir", service.working_dir),
        ("Hostname", service.hostname),
        ("StopSignal", service.stop_signal),
        ("StopTimeout", service.stop_grace_s),
    ):
        if value is not None:
            body[key] = value
    if service.healthcheck is not None:
        hc = service.healthcheck
        body["Healthcheck"] = {
            k: v
            for k, v in {
                "Test": list(hc.test),
                "Interval": hc.interval_ns,
                "Timeout": hc.timeout_ns,
                "Retries": hc.retries,
                "StartPeriod": hc.start_period_ns,
                "StartInterval": hc.start_interval_ns,
            }.items()
            if v is not None
        }
    if service.network_mode is not None:
        host["NetworkMode"] = service.network_mode
    elif service.networks:
        key, aliases = service.networks[0]
        name = project.networks[key].name
        host["NetworkMode"] = name
        body["NetworkingConfig"] = {"EndpointsConfig": {name: endpoint(service, aliases)}}
    return body


def network_body(project: Project, spec: NetworkSpec) -> dict[str, Any]:
    return {
        "Name": spec.name,
        "Driver": spec.driver or "bridge",
        "Options": dict(spec.driver_opts),
        "Internal": spec.internal,
        "Attachable": spec.attachable,
        "CheckDuplicate": True,
        "Labels": {
            **dict(spec.labels),
            LABEL.PROJECT: project.name,
            LABEL.NETWORK: spec.key,
            LABEL.VERSION: __version__,
        },
    }


def volume_body(project: Project, spec: VolumeSpec) -> dict[str, Any]:
    return {
        "Name": spec.name,
        "Driver": spec.driver or "local",
        "DriverOpts": dict(spec.driver_opts),
        "Labels": {
            **dict(spec.labels),
            LABEL.PROJECT: project.name,
            LABEL.VOLUME: spec.key,
            LABEL.VERSION: __version__,
        },
    }
