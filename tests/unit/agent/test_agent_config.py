"""AgentConfig from an explicit environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockmesh.agent.config import DEFAULT_STATE_DIR, AgentConfig, AgentConfigError

PIN = "0123456789abcdef" * 4


def test_empty_environment() -> None:
    cfg = AgentConfig.from_env({})
    assert cfg.state_dir == Path(DEFAULT_STATE_DIR)
    assert cfg.enroll_url is None
    assert cfg.token is None
    assert cfg.ca_sha256 is None
    assert cfg.docker_host is None


def test_values_from_the_environment() -> None:
    cfg = AgentConfig.from_env(
        {
            "DOCKMESH_ENROLL_URL": " https://server.example.com:8443/ ",
            "DOCKMESH_TOKEN": " tok \n",
            "DOCKMESH_CA_SHA256": PIN,
            "DOCKMESH_STATE_DIR": "/tmp/state",
            "DOCKER_HOST": "tcp://127.0.0.1:2375",
        }
    )
    assert cfg.enroll_url == "https://server.example.com:8443"
    assert cfg.token == "tok"
    assert cfg.ca_sha256 == PIN
    assert cfg.state_dir == Path("/tmp/state")
    assert cfg.docker_host == "tcp://127.0.0.1:2375"


def test_arguments_override_the_environment() -> None:
    cfg = AgentConfig.from_env(
        {"DOCKMESH_ENROLL_URL": "https://env", "DOCKMESH_TOKEN": "env", "DOCKMESH_STATE_DIR": "/env"},
        enroll_url="https://arg",
        token="arg",
        ca_sha256=PIN,
        state_dir="/arg",
    )
    assert (cfg.enroll_url, cfg.token, cfg.ca_sha256, cfg.state_dir) == (
        "https://arg",
        "arg",
        PIN,
        Path("/arg"),
    )


@pytest.mark.parametrize("url", ["http://server.example.com:8443", "server.example.com", "ws://x"])
def test_non_https_enroll_url_is_refused(url: str) -> None:
    with pytest.raises(AgentConfigError, match="https://"):
        AgentConfig.from_env({"DOCKMESH_ENROLL_URL": url})


def test_blank_enroll_url_means_none() -> None:
    assert AgentConfig.from_env({"DOCKMESH_ENROLL_URL": "   "}).enroll_url is None


def test_pin_colons_are_stripped_and_case_lowered() -> None:
    upper_with_colons = ":".join(PIN.upper()[i : i + 2] for i in range(0, 64, 2))
    assert AgentConfig.from_env({"DOCKMESH_CA_SHA256": upper_with_colons}).ca_sha256 == PIN
    assert AgentConfig.from_env({}, ca_sha256=f"  {PIN.upper()}  ").ca_sha256 == PIN


@pytest.mark.parametrize("pin", [PIN[:-1], PIN + "0", "g" * 64, PIN[:-2] + " 0", "sha256:" + PIN])
def test_bad_pin_is_refused(pin: str) -> None:
    with pytest.raises(AgentConfigError, match="64 hex digits"):
        AgentConfig.from_env({"DOCKMESH_CA_SHA256": pin})


def test_agent_config_error_is_a_value_error() -> None:
    assert issubclass(AgentConfigError, ValueError)
