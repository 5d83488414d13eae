"""ServerConfig from an explicit environment; address and duration parsing."""

from __future__ import annotations

import math
import socket
from pathlib import Path

import pytest

from dockmesh.server.config import ConfigError, ServerConfig, parse_addr, parse_duration


def config(tmp_path: Path, **env: str) -> ServerConfig:
    return ServerConfig.from_env({"DOCKMESH_DATA_DIR": str(tmp_path), **env})


# --- parse_addr --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (":8080", ("0.0.0.0", 8080)),
        ("127.0.0.1:9000", ("127.0.0.1", 9000)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:8443", ("::1", 8443)),
        ("[::]:65535", ("::", 65535)),
    ],
)
def test_parse_addr(value: str, expected: tuple[str, int]) -> None:
    assert parse_addr(value, "--http") == expected


@pytest.mark.parametrize("value", ["", "8080", "localhost", "host:", "host:http", "host:65536", "host:-1"])
def test_parse_addr_rejects(value: str) -> None:
    with pytest.raises(ConfigError, match="--http must be HOST:PORT"):
        parse_addr(value, "--http")


# --- parse_duration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90", 90.0),
        ("90s", 90.0),
        ("15m", 900.0),
        ("12h", 43200.0),
        ("30d", 2592000.0),
        (" 2H ", 7200.0),
        ("1.5m", 90.0),
        ("0.5", 0.5),
    ],
)
def test_parse_duration(value: str, seconds: float) -> None:
    assert parse_duration(value, "TTL") == seconds


@pytest.mark.parametrize("value", ["", "s", "m", "abc", "10x", "10 minutes", "1w", "5ms"])
def test_parse_duration_rejects_garbage(value: str) -> None:
    with pytest.raises(ConfigError, match="TTL must be a duration"):
        parse_duration(value, "TTL")


@pytest.mark.parametrize("value", ["0", "0s", "-5", "-5m", "-inf"])
def test_parse_duration_rejects_non_positive(value: str) -> None:
    with pytest.raises(ConfigError, match="TTL must be a positive"):
        parse_duration(value, "TTL")


@pytest.mark.parametrize("value", ["nan", "nans", "inf", "1e999"])
def test_parse_duration_rejects_non_finite(value: str) -> None:
    try:
        result = parse_duration(value, "TTL")
    except ConfigError:
        return
    assert math.isfinite(result), f"{value!r} parsed as {result}"


# --- ServerConfig.from_env ---------------------------------------------------------------------


def test_defaults_from_an_empty_environment(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    host = socket.gethostname()
    assert cfg.data_dir == tmp_path.resolve()
    assert (cfg.http_host, cfg.http_port) == ("0.0.0.0", 8080)
    assert (cfg.agent_host, cfg.agent_port) == ("0.0.0.0", 8443)
    assert cfg.public_url == f"https://{host}:8080"  # HTTPS by default: the listener is not loopback-only
    assert cfg.agent_url == f"https://{host}:8443"
    assert cfg.admin_password is None
    assert cfg.agent_sans == ()
    assert cfg.docker_host is None
    assert cfg.artifact_dir is None
    assert cfg.cert_lifetime == 30 * 86400
    assert cfg.token_ttl == 3600
    assert cfg.heartbeat_interval == 10.0
    assert cfg.database_url == f"sqlite:///{tmp_path.resolve() / 'dockmesh.db'}"
    assert cfg.pki_dir == tmp_path.resolve() / "pki"


def test_database_url_from_flag_or_environment(tmp_path: Path) -> None:
    url = "postgresql://dockmesh@db.example:5432/fleet"
    assert config(tmp_path, DOCKMESH_DATABASE_URL=url).database_url == url
    flag = ServerConfig.from_env(
        {"DOCKMESH_DATABASE_URL": url}, data_dir=str(tmp_path), database_url="sqlite:///x.db"
    )
    assert flag.database_url == "sqlite:///x.db"
    with pytest.raises(ConfigError, match="sqlite:/// or postgresql://"):
        config(tmp_path, DOCKMESH_DATABASE_URL="mysql://u:pw@h/db")


def test_environment_values_are_used(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        DOCKMESH_HTTP_ADDR="127.0.0.1:9090",
        DOCKMESH_AGENT_ADDR="[::]:9443",
        DOCKMESH_BASE_URL="https://ui.example.com/",
        DOCKMESH_AGENT_URL="https://agents.example.com:9443/",
        DOCKMESH_ADMIN_PASSWORD="hunter2",
        DOCKMESH_AGENT_SANS=" a.example.com, ,10.0.0.1 ,",
        DOCKER_HOST="unix:///var/run/docker.sock",
        DOCKMESH_ARTIFACT_DIR=str(tmp_path / "artifacts"),
        DOCKMESH_CERT_LIFETIME="7d",
        DOCKMESH_TOKEN_TTL="15m",
        DOCKMESH_HEARTBEAT_INTERVAL="5s",
    )
    assert (cfg.http_host, cfg.http_port) == ("127.0.0.1", 9090)
    assert (cfg.agent_host, cfg.agent_port) == ("::", 9443)
    assert cfg.public_url == "https://ui.example.com"
    assert cfg.agent_url == "https://agents.example.com:9443"
    assert cfg.admin_password == "hunter2"
    assert cfg.agent_sans == ("a.example.com", "10.0.0.1")
    assert cfg.docker_host == "unix:///var/run/docker.sock"
    assert cfg.artifact_dir == (tmp_path / "artifacts").resolve()
    assert cfg.cert_lifetime == 7 * 86400
    assert cfg.token_ttl == 900
    assert cfg.heartbeat_interval == 5


def test_default_urls_follow_the_listen_ports(tmp_path: Path) -> None:
    cfg = config(tmp_path, DOCKMESH_HTTP_ADDR=":1234", DOCKMESH_AGENT_ADDR=":4321")
    assert cfg.public_url.endswith(":1234")
    assert cfg.agent_url.endswith(":4321")
    assert cfg.agent_url.startswith("https://")


def test_arguments_override_the_environment(tmp_path: Path) -> None:
    cfg = ServerConfig.from_env(
        {"DOCKMESH_DATA_DIR": "/nonexistent", "DOCKMESH_HTTP_ADDR": ":1", "DOCKMESH_BASE_URL": "http://env"},
        data_dir=str(tmp_path),
        http="127.0.0.1:2",
        agent_listen=":3",
        public_url="http://arg",
        agent_url="https://arg:3",
    )
    assert cfg.data_dir == tmp_path.resolve()
    assert (cfg.http_host, cfg.http_port) == ("127.0.0.1", 2)
    assert cfg.agent_port == 3
    assert cfg.public_url == "http://arg"
    assert cfg.agent_url == "https://arg:3"


def test_empty_admin_password_means_none(tmp_path: Path) -> None:
    assert config(tmp_path, DOCKMESH_ADMIN_PASSWORD="").admin_password is None


@pytest.mark.parametrize("var", ["DOCKMESH_HTTP_ADDR", "DOCKMESH_AGENT_ADDR"])
def test_bad_listen_address(tmp_path: Path, var: str) -> None:
    with pytest.raises(ConfigError, match="HOST:PORT"):
        config(tmp_path, **{var: "no-port-here"})


def test_plain_http_agent_url_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="https://"):
        config(tmp_path, DOCKMESH_AGENT_URL="http://agents.example.com:8443")


@pytest.mark.parametrize("var", ["DOCKMESH_BASE_URL", "DOCKMESH_AGENT_URL"])
def test_url_without_scheme_is_refused(tmp_path: Path, var: str) -> None:
    with pytest.raises(ConfigError, match="must be a plain http"):
        config(tmp_path, **{var: "example.com"})


@pytest.mark.parametrize(
    "var", ["DOCKMESH_CERT_LIFETIME", "DOCKMESH_TOKEN_TTL", "DOCKMESH_HEARTBEAT_INTERVAL"]
)
@pytest.mark.parametrize("value", ["soon", "0", "-1h"])
def test_bad_duration(tmp_path: Path, var: str, value: str) -> None:
    with pytest.raises(ConfigError, match=var):
        config(tmp_path, **{var: value})


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


# --- HTTPS or plain HTTP -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "https", "exposed"),
    [
        ({}, True, False),  # all interfaces: HTTPS by default
        ({"DOCKMESH_HTTP_ADDR": "10.0.0.5:8080"}, True, False),
        ({"DOCKMESH_HTTP_ADDR": "ui.example.com:8080"}, True, False),  # a name may resolve anywhere
        ({"DOCKMESH_HTTP_ADDR": "127.0.0.1:8080"}, False, False),  # loopback only: plain HTTP is fine
        ({"DOCKMESH_HTTP_ADDR": "127.0.0.9:8080"}, False, False),
        ({"DOCKMESH_HTTP_ADDR": "[::1]:8080"}, False, False),
        ({"DOCKMESH_HTTP_ADDR": "localhost:8080"}, False, False),
        ({"DOCKMESH_INSECURE_HTTP": "1"}, False, True),  # asked for, on the network: warn
        ({"DOCKMESH_INSECURE_HTTP": "0"}, True, False),
        ({"DOCKMESH_INSECURE_HTTP": "1", "DOCKMESH_HTTP_ADDR": "127.0.0.1:80"}, False, False),
        (
            {
                "DOCKMESH_HTTP_ADDR": "127.0.0.1:8080",
                "DOCKMESH_TLS_CERT": "/etc/ui.crt",
                "DOCKMESH_TLS_KEY": "/etc/ui.key",
                "DOCKMESH_BASE_URL": "https://ui.example.com",
            },
            True,  # an operator certificate means HTTPS, even on loopback
            False,
        ),
    ],
)
def test_https_unless_insecure_or_loopback_only(
    tmp_path: Path, env: dict[str, str], https: bool, exposed: bool
) -> None:
    cfg = config(tmp_path, **env)
    assert cfg.https is https
    assert cfg.plain_http_exposed is exposed
    if "DOCKMESH_BASE_URL" not in env:
        # The default public URL follows what is actually served.
        assert cfg.public_url.startswith("https://" if https else "http://")


def test_flags_work_like_the_environment(tmp_path: Path) -> None:
    cfg = ServerConfig.from_env(
        {"DOCKMESH_DATA_DIR": str(tmp_path)}, tls_cert="ui.crt", tls_key="ui.key", public_url="https://ui"
    )
    assert cfg.tls_cert == Path("ui.crt").resolve()
    assert cfg.tls_key == Path("ui.key").resolve()
    assert ServerConfig.from_env({"DOCKMESH_DATA_DIR": str(tmp_path)}, insecure_http=True).https is False


def test_cert_and_key_go_together(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--tls-cert and --tls-key"):
        config(tmp_path, DOCKMESH_TLS_CERT="/etc/ui.crt")
    with pytest.raises(ConfigError, match="--tls-cert and --tls-key"):
        config(tmp_path, DOCKMESH_TLS_KEY="/etc/ui.key")


def test_insecure_http_contradicts_a_certificate(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--insecure-http"):
        config(tmp_path, DOCKMESH_TLS_CERT="a", DOCKMESH_TLS_KEY="b", DOCKMESH_INSECURE_HTTP="1")


def test_an_http_public_url_for_an_https_listener_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--public-url must be https://"):
        config(tmp_path, DOCKMESH_BASE_URL="http://ui.example.com:8080")
    # Behind a TLS-terminating proxy, a loopback listener with an https:// public URL is fine.
    cfg = config(tmp_path, DOCKMESH_HTTP_ADDR="127.0.0.1:8080", DOCKMESH_BASE_URL="https://ui.example.com")
    assert not cfg.https
    assert cfg.public_url == "https://ui.example.com"
