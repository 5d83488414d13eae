"""Server configuration, read from flags and DOCKMESH_* environment variables."""

from __future__ import annotations

import ipaddress
import math
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dockmesh.store.url import UrlError, check, default_url

_URL = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~\-/]*)?$")


class ConfigError(ValueError):
    """A setting the user must fix; the message says which and how."""


def parse_addr(value: str, what: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{what} must be HOST:PORT (got {value!r})")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - an empty host means all interfaces


def parse_duration(value: str, what: str) -> float:
    """'90', '90s', '15m', '12h', '30d' → seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = value.strip().lower()
    scale = units.get(text[-1:])
    number = text[:-1] if scale else text
    try:
        seconds = float(number) * (scale or 1)
    except ValueError:
        raise ConfigError(f"{what} must be a duration like 90s, 15m, 12h or 30d (got {value!r})") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{what} must be a positive, finite duration (got {value!r})")
    return seconds


def loopback_only(host: str) -> bool:
    """Whether a listener bound to ``host`` is reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name could resolve to anything


def serves_https(*, operator_cert: bool, insecure_http: bool, http_host: str) -> bool:
    """The UI/API listener speaks TLS unless told not to or bound to loopback only (design §6).

    An operator certificate always means TLS, even on loopback: the operator asked for it.
    """
    return operator_cert or not (insecure_http or loopback_only(http_host))


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def parse_networks(value: str, what: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """'10.0.0.0/8, 2001:db8::1' → networks (a bare address is a /32 or /128)."""
    try:
        return tuple(
            ipaddress.ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip()
        )
    except ValueError as exc:
        raise ConfigError(f"{what} must be a comma-separated list of addresses or CIDRs ({exc})") from None


@dataclass(frozen=True)
class ServerConfig:
    data_dir: Path
    http_host: str = "0.0.0.0"  # noqa: S104 - the UI is meant to be reachable
    http_port: int = 8080
    agent_host: str = "0.0.0.0"  # noqa: S104 - agents dial in from other machines
    agent_port: int = 8443
    public_url: str = ""
    agent_url: str = ""
    admin_password: str | None = None
    agent_sans: tuple[str, ...] = ()
    docker_host: str | None = None
    artifact_dir: Path | None = None
    cert_lifetime: float = 30 * 86400
    token_ttl: float = 3600
    heartbeat_interval: float = 10.0
    renew_grace: float = 300.0
    # How long a migrated stack's volumes stay on the source (the safety window, docs/migration.md).
    migration_keep_seconds: float = 24 * 3600.0
    tls_cert: Path | None = None
    tls_key: Path | None = None
    insecure_http: bool = False
    # Reverse proxies whose X-Forwarded-For is believed (for rate limits and logs); nobody's by default.
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    # `sqlite:///…` or `postgresql://…`; empty means the SQLite file in the data dir.
    database: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def database_url(self) -> str:
        return self.database or default_url(self.data_dir)

    @property
    def pki_dir(self) -> Path:
        return self.data_dir / "pki"

    @property
    def https(self) -> bool:
        return serves_https(
            operator_cert=self.tls_cert is not None,
            insecure_http=self.insecure_http,
            http_host=self.http_host,
        )

    @property
    def plain_http_exposed(self) -> bool:
        """Plain HTTP that other machines can reach: passwords and install scripts travel in clear."""
        return not self.https and not loopback_only(self.http_host)

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        data_dir: str | None = None,
        http: str | None = None,
        agent_listen: str | None = None,
        public_url: str | None = None,
        agent_url: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        insecure_http: bool = False,
        trusted_proxies: str | None = None,
        database_url: str | None = None,
    ) -> ServerConfig:
        env = os.environ if env is None else env
        directory = Path(data_dir or env.get("DOCKMESH_DATA_DIR") or "./data").resolve()
        http_host, http_port = parse_addr(http or env.get("DOCKMESH_HTTP_ADDR") or ":8080", "--http")
        agent_host, agent_port = parse_addr(
            agent_listen or env.get("DOCKMESH_AGENT_ADDR") or ":8443", "--agent-listen"
        )
        cert = tls_cert or env.get("DOCKMESH_TLS_CERT") or None
        key = tls_key or env.get("DOCKMESH_TLS_KEY") or None
        if bool(cert) != bool(key):
            raise ConfigError("--tls-cert and --tls-key go together: give both, or neither")
        insecure = insecure_http or _flag(env.get("DOCKMESH_INSECURE_HTTP"))
        if cert and insecure:
            raise ConfigError("--insecure-http contradicts --tls-cert: drop one of them")
        https = serves_https(operator_cert=bool(cert), insecure_http=insecure, http_host=http_host)
        name = socket.gethostname()
        scheme = "https" if https else "http"
        base = (public_url or env.get("DOCKMESH_BASE_URL") or f"{scheme}://{name}:{http_port}").rstrip("/")
        agent = (agent_url or env.get("DOCKMESH_AGENT_URL") or f"https://{name}:{agent_port}").rstrip("/")
        for label, url in (("--public-url", base), ("--agent-url", agent)):
            # These URLs end up in install commands users paste into a root shell: no surprises allowed.
            if not _URL.fullmatch(url):
                raise ConfigError(f"{label} must be a plain http(s)://host[:port][/path] URL (got {url!r})")
        if not agent.startswith("https://"):
            raise ConfigError("--agent-url must be https:// (agents only speak mTLS)")
        if https and not base.startswith("https://"):
            raise ConfigError(
                f"--public-url must be https:// because the UI listener serves HTTPS (got {base!r}); "
                "pass --insecure-http to serve plain HTTP"
            )
        sans = tuple(s.strip() for s in env.get("DOCKMESH_AGENT_SANS", "").split(",") if s.strip())
        artifact = env.get("DOCKMESH_ARTIFACT_DIR")
        database = database_url or env.get("DOCKMESH_DATABASE_URL") or ""
        if database:
            try:
                check(database)
            except UrlError as exc:
                raise ConfigError(str(exc)) from None
        return cls(
            data_dir=directory,
            http_host=http_host,
            http_port=http_port,
            agent_host=agent_host,
            agent_port=agent_port,
            public_url=base,
            agent_url=agent,
            admin_password=env.get("DOCKMESH_ADMIN_PASSWORD") or None,
            agent_sans=sans,
            docker_host=env.get("DOCKER_HOST") or None,
            artifact_dir=Path(artifact).resolve() if artifact else None,
            cert_lifetime=parse_duration(env.get("DOCKMESH_CERT_LIFETIME", "30d"), "DOCKMESH_CERT_LIFETIME"),
            token_ttl=parse_duration(env.get("DOCKMESH_TOKEN_TTL", "1h"), "DOCKMESH_TOKEN_TTL"),
            heartbeat_interval=parse_duration(
                env.get("DOCKMESH_HEARTBEAT_INTERVAL", "10s"), "DOCKMESH_HEARTBEAT_INTERVAL"
            ),
            migration_keep_seconds=parse_duration(
                env.get("DOCKMESH_MIGRATION_KEEP", "24h"), "DOCKMESH_MIGRATION_KEEP"
            ),
            tls_cert=Path(cert).resolve() if cert else None,
            tls_key=Path(key).resolve() if key else None,
            insecure_http=insecure,
            trusted_proxies=parse_networks(
                trusted_proxies or env.get("DOCKMESH_TRUSTED_PROXIES", ""), "--trusted-proxies"
            ),
            database=database,
        )
