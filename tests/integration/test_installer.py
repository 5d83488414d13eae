"""The install script served by the server, run for real with bash against a real engine."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fleet import Fleet, short_tmpdir
from tests.integration.harness import ServerProc
from tests.integration.spine import wait_online

PYENV = Path.home() / ".pyenv" / "versions"
# Every CPython this machine has besides the default (3.11), each alone on the PATH.
OTHER_PYTHONS = ["3.9.18", "3.10.13", "3.12.1", "3.13.0"]
SYSTEM_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


def only_python(version: str | None, into: Path) -> str:
    """A PATH with the system's tools and no Python but pyenv's `version`, as python3 (None: no Python)."""
    bin_dir = into / "bin"
    bin_dir.mkdir(parents=True)
    if version is not None:
        interpreter = PYENV / version / "bin" / f"python{version.rsplit('.', 1)[0]}"
        assert interpreter.exists(), f"{interpreter} is missing: this machine's pyenv versions changed"
        (bin_dir / "python3").symlink_to(interpreter)
    for directory in SYSTEM_DIRS:
        for tool in Path(directory).iterdir():
            if tool.name.startswith("python") or (bin_dir / tool.name).exists():
                continue
            if os.access(tool, os.X_OK) and not tool.is_dir():
                (bin_dir / tool.name).symlink_to(tool)
    return str(bin_dir)


@pytest.fixture
def prefix() -> Iterator[Path]:
    path = short_tmpdir("i")
    path.chmod(0o755)  # the unprivileged agent user must be able to reach its state dir
    yield path
    pid_file = path / "var/lib/dockmesh-agent/agent.pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError, ValueError, PermissionError):
            os.killpg(int(pid_file.read_text().strip()), signal.SIGKILL)
    shutil.rmtree(path, ignore_errors=True)


def run_installer(
    command: str, prefix: Path, docker_host: str, *flags: str, path: str | None = None
) -> subprocess.CompletedProcess[str]:
    # The test runs as root already, without sudo: swap `sudo bash` for `bash -s -- <flags>`.
    assert command.endswith("| sudo bash")
    shell = command[: -len("sudo bash")] + "bash -s -- " + " ".join(flags)
    env = {
        "PATH": path or os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "DOCKMESH_INSTALL_PREFIX": str(prefix),
        "DOCKER_HOST": docker_host,
    }
    return subprocess.run(
        ["bash", "-c", shell], env=env, capture_output=True, text=True, timeout=240, check=False
    )


@pytest.mark.parametrize("mode", ["dedicated-user", "as-root"])
def test_install_command_brings_the_host_online(
    server_factory: Callable[..., ServerProc], agent_artifacts: Path, fleet: Fleet, prefix: Path, mode: str
) -> None:
    # HTTPS with the server's own certificate (bound wide; only 127.0.0.1 is dialled): the real one-liner.
    server = server_factory(env={"DOCKMESH_ARTIFACT_DIR": str(agent_artifacts)}, https=True, bind="0.0.0.0")
    created = server.create_agent(f"installed-{mode}")
    assert f'--pinnedpubkey "{created["https_pin"]}"' in created["install_command"]
    flags = ["--skip-docker"] + (["--as-root"] if mode == "as-root" else [])
    result = run_installer(created["install_command"], prefix, fleet.engine(0).docker_host, *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "success: this host is online" in result.stderr
    host = wait_online(server, created["id"], timeout=10)
    assert host["docker_version"] == fleet.engine(0).info()["ServerVersion"]
    state = prefix / "var/lib/dockmesh-agent"
    env_file = prefix / "etc/dockmesh-agent.env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert created["token"] not in env_file.read_text()
    assert not (state / "token").exists()
    assert (state / "agent.key").stat().st_mode & 0o777 == 0o600
    assert (prefix / "usr/local/bin/dockmesh-agent").exists()
    owner = (state / "agent.key").stat().st_uid
    if mode == "as-root":
        assert owner == 0
    else:
        import pwd

        assert pwd.getpwuid(owner).pw_name == "dockmesh"


@pytest.mark.parametrize("version", OTHER_PYTHONS)
def test_the_artifact_enrols_and_runs_under_each_cpython(
    server_factory: Callable[..., ServerProc],
    agent_artifacts: Path,
    fleet: Fleet,
    prefix: Path,
    tmp_path: Path,
    version: str,
) -> None:
    server = server_factory(env={"DOCKMESH_ARTIFACT_DIR": str(agent_artifacts)}, https=True, bind="0.0.0.0")
    created = server.create_agent(f"py-{version}")
    path = only_python(version, tmp_path)
    docker_host = fleet.engine(0).docker_host
    result = run_installer(
        created["install_command"], prefix, docker_host, "--skip-docker", "--as-root", path=path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    host = wait_online(server, created["id"], timeout=10)
    assert host["docker_version"] == fleet.engine(0).info()["ServerVersion"]
    # The running agent is that interpreter (pex's venv links to it), not the machine's default.
    status = json.loads((prefix / "var/lib/dockmesh-agent/status.json").read_text())
    exe = Path(f"/proc/{status['pid']}/exe").resolve()
    assert exe.is_relative_to(PYENV / version), exe


@pytest.mark.parametrize("version", [None, "3.8.18"])
def test_a_host_without_a_supported_python_hears_what_to_install(
    server_factory: Callable[..., ServerProc],
    agent_artifacts: Path,
    prefix: Path,
    tmp_path: Path,
    version: str | None,
) -> None:
    server = server_factory(env={"DOCKMESH_ARTIFACT_DIR": str(agent_artifacts)}, https=True, bind="0.0.0.0")
    created = server.create_agent("old-python")
    path = only_python(version, tmp_path)
    result = run_installer(
        created["install_command"], prefix, "unix:///nonexistent", "--skip-docker", "--as-root", path=path
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("dockmesh: error: the agent needs Python 3.9 to 3.13 and this host has ")
    assert ("Python 3.8.18" if version else "no python3") in lines[0]
    assert "apt-get install python3" in lines[0]
    assert not (prefix / "usr/local/lib/dockmesh-agent/dockmesh-agent.pex").exists()


def test_installer_refuses_a_tampered_artifact(
    server_factory: Callable[..., ServerProc],
    agent_artifacts: Path,
    fleet: Fleet,
    prefix: Path,
    tmp_path: Path,
) -> None:
    # A private copy of the artifacts, so tampering does not touch the shared build.
    art = tmp_path / "art"
    shutil.copytree(agent_artifacts, art)
    server = server_factory(env={"DOCKMESH_ARTIFACT_DIR": str(art)}, https=True, bind="0.0.0.0")
    created = server.create_agent("victim")
    status, script = server.api.call("GET", f"/install/agent.sh?token={created['token']}", raw=True)
    assert status == 200
    pex = next(art.glob("*.pex"))
    data = bytearray(pex.read_bytes())
    data[-10] ^= 0xFF
    pex.write_bytes(bytes(data))
    env = {"PATH": os.environ["PATH"], "DOCKMESH_INSTALL_PREFIX": str(prefix)}
    result = subprocess.run(
        ["bash", "-s", "--", "--as-root", "--skip-docker"],
        input=script.decode(),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "does not match its SHA-256" in result.stderr
    assert not (prefix / "usr/local/lib/dockmesh-agent/dockmesh-agent.pex").exists()
    assert server.api.agent(created["id"])["status"] == "pending"


def test_installer_validates_the_token_before_templating(server: ServerProc) -> None:
    from tests.integration.harness import Api

    anon = Api(server.url)
    for token in ["$(touch /tmp/dm-pwned)", "`id`", "a;reboot", "x" * 43, ""]:
        from urllib.parse import quote

        status, body = anon.call("GET", f"/install/agent.sh?token={quote(token)}", raw=True)
        assert status in (401, 429), (token, status)
        assert b"#!/usr/bin/env bash" not in body
    assert not Path("/tmp/dm-pwned").exists()


def test_truncated_script_runs_nothing(
    server_factory: Callable[..., ServerProc], agent_artifacts: Path
) -> None:
    server = server_factory(env={"DOCKMESH_ARTIFACT_DIR": str(agent_artifacts)})
    created = server.create_agent("h")
    status, script = server.api.call("GET", f"/install/agent.sh?token={created['token']}", raw=True)
    assert status == 200
    text = script.decode()
    assert text.rstrip().endswith('main "$@"')
    assert created["ca_sha256"] in text
    # Cut before the last line: bash defines functions and exits without doing anything.
    truncated = text[: text.rindex('main "$@"')]
    result = subprocess.run(
        ["bash", "-s"], input=truncated, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0
    assert result.stderr == ""
