"""load_project: compose text (+ .env text) to a validated, normalised Project."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from typing import Any

from dockmesh.compose.errors import ComposeError
from dockmesh.compose.interpolate import interpolate, parse_env
from dockmesh.compose.limits import PROJECT_NAME
from dockmesh.compose.model import Healthcheck, NetworkSpec, Project, Service, VolumeSpec
from dockmesh.compose.mounts import Mounts
from dockmesh.compose.order import start_order
from dockmesh.compose.ports import parse_ports
from dockmesh.compose.schema import validate
from dockmesh.compose.source import Lines, Path, dotted, parse
from dockmesh.compose.units import parse_bytes, parse_duration

__all__ = ["PROJECT_NAME", "load_project"]

_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-/:@]*")
_RESTART = re.compile(r"no|always|unless-stopped|on-failure(:\d+)?")
_NETWORK_MODES = frozenset({"none", "bridge", "host"})
# env_file can only name the stack's own .env: the server has no project directory to read others from.
_ENV_FILES = frozenset({".env", "./.env"})


def load_project(
    name: str, compose_text: str, env_text: str | None = None, *, profiles: Iterable[str] = ()
) -> Project:
    """Parse, interpolate, validate and normalise; every problem is a ComposeError with key and line."""
    if not isinstance(name, str) or not PROJECT_NAME.fullmatch(name):
        raise ComposeError(
            "invalid_compose",
            f"invalid stack name {name!r}: 1-63 lower-case letters, digits, '_' and '-', "
            "starting with a letter or digit",
        )
    env = parse_env(env_text)
    data, lines = parse(compose_text)
    if not isinstance(data, dict):
        raise ComposeError("invalid_compose", "the compose file must be a mapping with services:", line=1)
    data = interpolate(data, env, lines)
    validate(data, lines)
    return _Normaliser(name, env, lines, set(profiles)).project(data)


class _Normaliser:
    def __init__(self, name: str, env: dict[str, str], lines: Lines, profiles: set[str]) -> None:
        self.name = name
        self.env = env
        self.lines = lines
        self.profiles = profiles

    def fail(self, path: Path, message: str, code: str = "invalid_compose") -> ComposeError:
        return ComposeError(code, message, key=dotted(path), line=self.lines.get(path))

    def project(self, data: dict[str, Any]) -> Project:
        declared = data.get("name")
        if declared is not None and declared != self.name:
            raise self.fail(("name",), f"name: {declared!r} differs from the stack name {self.name!r}")
        raw_services: dict[str, Any] = data["services"]
        active = {
            key: svc
            for key, svc in raw_services.items()
            if not svc.get("profiles") or self.profiles.intersection(svc["profiles"])
        }
        if not active:
            raise self.fail(("services",), "no service is enabled by the active profiles")
        networks = {k: self.network(k, v or {}) for k, v in (data.get("networks") or {}).items()}
        volumes = {k: self.volume(k, v or {}) for k, v in (data.get("volumes") or {}).items()}
        services = {k: self.service(k, v, raw_services, networks, volumes) for k, v in active.items()}
        if any(s.networks and "default" in dict(s.networks) for s in services.values()):
            networks.setdefault("default", NetworkSpec(key="default", name=f"{self.name}_default"))
        order = start_order(
            {k: [d for d, _ in s.depends_on] for k, s in services.items()},
            lambda svc, dep: self.fail(("services", svc, "depends_on"), f"depends_on cycle: {dep}"),
        )
        hashed = {k: services[k].with_hash(self.resolved(services[k], networks, volumes)) for k in order}
        return Project(name=self.name, services=hashed, networks=networks, volumes=volumes, lines=self.lines)

    @staticmethod
    def resolved(
        service: Service, networks: dict[str, NetworkSpec], volumes: dict[str, VolumeSpec]
    ) -> dict[str, Any]:
        """The engine names a service's config points at: renaming a network must recreate its users."""
        return {
            "networks": {k: networks[k].name for k, _ in service.networks},
            "volumes": {
                m.source: volumes[m.source].name for m in service.mounts if m.type == "volume" and m.source
            },
        }

    def network(self, key: str, raw: dict[str, Any]) -> NetworkSpec:
        path: Path = ("networks", key)
        external = bool(raw.get("external", False))
        if external and set(raw) - {"external", "name"}:
            raise self.fail(path, "an external network takes only name:")
        return NetworkSpec(
            key=key,
            name=raw.get("name") or (key if external else f"{self.name}_{key}"),
            external=external,
            driver=raw.get("driver"),
            driver_opts=_pairs(raw.get("driver_opts")),
            internal=bool(raw.get("internal", False)),
            attachable=bool(raw.get("attachable", False)),
            labels=self.pairs(raw.get("labels"), (*path, "labels")),
        )

    def volume(self, key: str, raw: dict[str, Any]) -> VolumeSpec:
        path: Path = ("volumes", key)
        external = bool(raw.get("external", False))
        if external and set(raw) - {"external", "name"}:
            raise self.fail(path, "an external volume takes only name:")
        return VolumeSpec(
            key=key,
            name=raw.get("name") or (key if external else f"{self.name}_{key}"),
            external=external,
            driver=raw.get("driver"),
            driver_opts=_pairs(raw.get("driver_opts")),
            labels=self.pairs(raw.get("labels"), (*path, "labels")),
        )

    def pairs(self, raw: Any, path: Path, *, env_style: bool = False) -> tuple[tuple[str, str], ...]:
        """A list ["K=V"] or a map {K: V} as sorted pairs; null map values are dropped (compose's unset)."""
        if raw is None:
            return ()
        out: dict[str, str] = {}
        if isinstance(raw, list):
            for i, item in enumerate(raw):
                key, sep, value = item.partition("=")
                if not key:
                    raise self.fail((*path, i), f"{item!r} is not KEY=VALUE")
                if sep:
                    out[key] = value
                elif env_style and key in self.env:
                    out[key] = self.env[key]  # a bare name takes its value from the .env, like a shell's
        else:
            for key, value in raw.items():
                if value is None:
                    if env_style and key in self.env:
                        out[key] = self.env[key]
                    continue
                out[key] = _text(value)
        return tuple(sorted(out.items()))

    def service(
        self,
        key: str,
        raw: dict[str, Any],
        all_services: dict[str, Any],
        networks: dict[str, NetworkSpec],
        volumes: dict[str, VolumeSpec],
    ) -> Service:
        path: Path = ("services", key)
        image = raw["image"]
        if not _IMAGE.fullmatch(image) or ".." in image or len(image) > 512:
            raise self.fail((*path, "image"), f"invalid image reference {image!r}")
        environment = dict(self.env_files(raw.get("env_file"), (*path, "env_file")))
        environment.update(self.pairs(raw.get("environment"), (*path, "environment"), env_style=True))
        network_mode = raw.get("network_mode")
        if network_mode is not None and network_mode not in _NETWORK_MODES:
            raise self.fail(
                (*path, "network_mode"),
                f"network_mode {network_mode!r} is not supported (none, bridge, host)",
            )
        if network_mode is not None and "networks" in raw:
            raise self.fail((*path, "networks"), "networks: cannot be used with network_mode:")
        restart = str(raw.get("restart", "no"))
        if not _RESTART.fullmatch(restart):
            raise self.fail(
                (*path, "restart"), f"restart {restart!r}: use no, always, unless-stopped, on-failure[:N]"
            )
        limits = ((raw.get("deploy") or {}).get("resources") or {}).get("limits") or {}
        return Service(
            name=key,
            image=image,
            command=self.argv(raw.get("command"), (*path, "command")),
            entrypoint=self.argv(raw.get("entrypoint"), (*path, "entrypoint")),
            environment=tuple(sorted(environment.items())),
            ports=parse_ports(raw.get("ports") or [], lambda i, m: self.fail((*path, "ports", i), m)),
            mounts=Mounts(self.fail).parse(raw, path, volumes),
            networks=() if network_mode else self.service_networks(raw.get("networks"), path, networks),
            network_mode=network_mode,
            labels=self.pairs(raw.get("labels"), (*path, "labels")),
            restart=restart,
            depends_on=self.depends_on(raw.get("depends_on"), path, all_services),
            healthcheck=self.healthcheck(raw.get("healthcheck"), (*path, "healthcheck")),
            user=None if raw.get("user") is None else str(raw["user"]),
            working_dir=raw.get("working_dir"),
            hostname=raw.get("hostname"),
            cap_add=tuple(sorted(set(raw.get("cap_add") or []))),
            cap_drop=tuple(sorted(set(raw.get("cap_drop") or []))),
            ulimits=self.ulimits(raw.get("ulimits") or {}, (*path, "ulimits")),
            log_driver=(raw.get("logging") or {}).get("driver"),
            log_options=_pairs((raw.get("logging") or {}).get("options")),
            nano_cpus=self.cpus(limits.get("cpus"), (*path, "deploy", "resources", "limits", "cpus")),
            memory=self.size(limits.get("memory"), (*path, "deploy", "resources", "limits", "memory")),
            privileged=bool(raw.get("privileged", False)),
            init=bool(raw.get("init", False)),
            stop_signal=raw.get("stop_signal"),
            stop_grace_s=self.seconds(raw.get("stop_grace_period"), (*path, "stop_grace_period")),
        )

    def seconds(self, raw: str | None, path: Path) -> int | None:
        if raw is None:
            return None
        ns = parse_duration(raw)
        if ns is None:
            raise self.fail(path, f"{raw!r} is not a duration (e.g. 10s, 1m30s)")
        return -(-ns // 10**9)  # the engine counts whole seconds: round up

    def env_files(self, raw: Any, path: Path) -> dict[str, str]:
        if raw is None:
            return {}
        for i, name in enumerate([raw] if isinstance(raw, str) else raw):
            if name not in _ENV_FILES:
                at = path if isinstance(raw, str) else (*path, i)
                raise self.fail(
                    at,
                    f"env_file {name!r}: only .env (the stack's env text) can be read; "
                    "put other variables under environment:",
                    "unsupported_key",
                )
        return dict(self.env)

    def argv(self, raw: Any, path: Path) -> tuple[str, ...] | None:
        if raw is None:
            return None
        if isinstance(raw, list):
            return tuple(raw)
        try:
            return tuple(shlex.split(raw))  # compose splits a string command like a POSIX shell
        except ValueError as exc:
            raise self.fail(path, f"cannot split {raw!r}: {exc}") from None

    def service_networks(
        self, raw: Any, path: Path, networks: dict[str, NetworkSpec]
    ) -> tuple[tuple[str, tuple[str, ...]], ...]:
        if raw is None:
            return (("default", ()),)
        entries = {k: () for k in raw} if isinstance(raw, list) else raw
        out: list[tuple[str, tuple[str, ...]]] = []
        for key, options in entries.items():
            if key not in networks and key != "default":
                raise self.fail(
                    (*path, "networks", key), f"network {key!r} is not defined under the top-level networks:"
                )
            aliases = tuple(sorted(set((options or {}).get("aliases") or ()))) if options else ()
            out.append((key, aliases))
        return tuple(sorted(out))

    def depends_on(self, raw: Any, path: Path, all_services: dict[str, Any]) -> tuple[tuple[str, str], ...]:
        if raw is None:
            return ()
        entries = {k: {} for k in raw} if isinstance(raw, list) else raw
        out = []
        for dep, options in entries.items():
            at: Path = (*path, "depends_on", dep)
            if dep not in all_services:
                raise self.fail(at, f"depends_on names an undefined service {dep!r}")
            dep_profiles = all_services[dep].get("profiles")
            if dep_profiles and not self.profiles.intersection(dep_profiles):
                raise self.fail(at, f"service {dep!r} is not enabled by the active profiles")
            if dep == path[-1]:
                raise self.fail(at, "a service cannot depend on itself")
            out.append((dep, (options or {}).get("condition", "service_started")))
        return tuple(sorted(out))

    def healthcheck(self, raw: Any, path: Path) -> Healthcheck | None:
        if raw is None:
            return None
        if raw.get("disable"):
            return Healthcheck(test=("NONE",))
        test = raw.get("test")
        if test is None:
            raise self.fail(path, "healthcheck needs test: (or disable: true)")
        if isinstance(test, str):
            test = ["CMD-SHELL", test]
        if not test or test[0] not in ("CMD", "CMD-SHELL", "NONE"):
            raise self.fail((*path, "test"), "test: must start with CMD, CMD-SHELL or NONE (or be a string)")

        def duration(name: str) -> int | None:
            value = raw.get(name)
            if value is None:
                return None
            ns = parse_duration(value)
            if ns is None:
                raise self.fail((*path, name), f"{value!r} is not a duration (e.g. 10s, 1m30s, 500ms)")
            return ns

        return Healthcheck(
            test=tuple(test),
            interval_ns=duration("interval"),
            timeout_ns=duration("timeout"),
            retries=raw.get("retries"),
            start_period_ns=duration("start_period"),
            start_interval_ns=duration("start_interval"),
        )

    def ulimits(self, raw: dict[str, Any], path: Path) -> tuple[tuple[str, int, int], ...]:
        out = []
        for name, value in raw.items():
            soft, hard = (value, value) if isinstance(value, int) else (value["soft"], value["hard"])
            if soft > hard:
                raise self.fail((*path, name), "soft limit above the hard limit")
            out.append((name, soft, hard))
        return tuple(sorted(out))

    def cpus(self, raw: Any, path: Path) -> int | None:
        if raw is None:
            return None
        try:
            value = float(raw)
        except ValueError:
            raise self.fail(path, f"cpus {raw!r} is not a number") from None
        if not 0 < value <= 4096:
            raise self.fail(path, f"cpus {raw!r} is out of range")
        return int(value * 1e9)

    def size(self, raw: Any, path: Path) -> int | None:
        if raw is None:
            return None
        value = parse_bytes(raw)
        if value is None:
            raise self.fail(path, f"{raw!r} is not a size (e.g. 512m, 1g)")
        return value


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _pairs(raw: Any) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), _text(v)) for k, v in (raw or {}).items()))
