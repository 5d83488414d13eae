"""The install script renderer: validation, shell quoting, and a script bash can parse."""

from __future__ import annotations

import base64
import os
import shlex
import stat
import subprocess
from pathlib import Path

import pytest

from dockmesh.pki.pin import make_token
from dockmesh.server.artifact import Artifact
from dockmesh.server.installer import InstallerError, install_command, render

CA_SHA = "ab" * 32
SHA_X86 = "0123456789abcdef" * 4
SHA_ARM = "fedcba9876543210" * 4
TOKEN = make_token(CA_SHA)
PIN = "sha256//" + base64.b64encode(bytes(range(32))).decode()


def artifact(arch: str, sha: str) -> Artifact:
    return Artifact(arch=arch, path=Path(f"/artifacts/{arch}.pex"), sha256=sha, size=123)


ARTIFACTS = [artifact("x86_64", SHA_X86), artifact("aarch64", SHA_ARM)]


def make(**overrides: object) -> str:
    values: dict[str, object] = {
        "server_url": "https://dockmesh.example.com:8080",
        "enroll_url": "https://dockmesh.example.com:8443",
        "token": TOKEN,
        "ca_sha256": CA_SHA,
        "artifacts": ARTIFACTS,
        "https_pin": PIN,
    }
    values.update(overrides)
    return render(**values)  # type: ignore[arg-type]


def assignments(script: str) -> dict[str, str]:
    """The DOCKMESH_* assignments at the top of the script, unquoted the way bash would."""
    found: dict[str, str] = {}
    for line in script.splitlines():
        if line.startswith("DOCKMESH_") and "=" in line:
            name, _, rhs = line.partition("=")
            words = shlex.split(rhs)
            assert len(words) == 1, f"{name} expands to {len(words)} words: {rhs!r}"
            found[name] = words[0]
    return found


def test_values_round_trip_through_shell_quoting() -> None:
    script = make(server_url="https://[::1]:8080/base", enroll_url="https://[::1]:8443")
    values = assignments(script)
    assert values == {
        "DOCKMESH_SERVER_URL": "https://[::1]:8080/base",
        "DOCKMESH_ENROLL_URL": "https://[::1]:8443",
        "DOCKMESH_TOKEN": TOKEN,
        "DOCKMESH_CA_SHA256": CA_SHA,
        "DOCKMESH_ARTIFACTS": f"x86_64={SHA_X86} aarch64={SHA_ARM}",
        "DOCKMESH_HTTPS_PIN": PIN,
    }


def test_values_that_need_quoting_are_quoted() -> None:
    script = make(server_url="https://[::1]:8080")
    # '[' is a glob character: unquoted it would be subject to pathname expansion.
    assert "DOCKMESH_SERVER_URL='https://[::1]:8080'" in script.splitlines()
    # The table holds a space: unquoted, bash would run the second entry as a command.
    assert f"DOCKMESH_ARTIFACTS='x86_64={SHA_X86} aarch64={SHA_ARM}'" in script.splitlines()


def test_every_placeholder_is_replaced() -> None:
    assert "@@" not in make()


def test_artifacts_table_holds_arch_equals_sha() -> None:
    table = assignments(make())["DOCKMESH_ARTIFACTS"].split()
    assert f"x86_64={SHA_X86}" in table
    assert f"aarch64={SHA_ARM}" in table


def test_empty_artifact_list_renders_an_empty_table() -> None:
    script = make(artifacts=[])
    assert "DOCKMESH_ARTIFACTS=''" in script.splitlines()


def test_last_non_empty_line_calls_main() -> None:
    lines = [line for line in make().splitlines() if line.strip()]
    assert lines[-1] == 'main "$@"'


def test_rendered_script_passes_bash_syntax_check(tmp_path: Path) -> None:
    path = tmp_path / "agent.sh"
    path.write_text(make(server_url="https://[::1]:8080/x", enroll_url="https://10.0.0.1:8443"))
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "token",
    [
        "",
        "short",
        "a" * 31,
        "a" * 65,
        "a" * 40 + "." + "A" * 64,  # the pin must be lower-case hex
        "a" * 40 + "." + "ab" * 31,  # a pin of the wrong length
        "a" * 40 + "'; rm -rf / #",
        "a" * 40 + "$(id)",
        "a" * 40 + " " + "b" * 10,
    ],
)
def test_malformed_token_is_refused(token: str) -> None:
    with pytest.raises(InstallerError, match="token"):
        make(token=token)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com;reboot",
        "https://example.com/$(id)",
        "https://example.com/`id`",
        "https://example.com/a b",
        "https://example.com/'x'",
        'https://example.com/"x"',
        "https://example.com/?token=x&y=z",
        "https://example.com|sh",
        "https://example.com\nreboot",
        "ftp://example.com",
        "example.com",
        "",
    ],
)
@pytest.mark.parametrize("which", ["server_url", "enroll_url"])
def test_url_with_shell_metacharacters_is_refused(which: str, url: str) -> None:
    with pytest.raises(InstallerError, match="URL"):
        make(**{which: url})


@pytest.mark.parametrize(
    "sha", ["", "AB" * 32, "ab" * 31, "ab" * 33, "zz" * 32, "ab" * 31 + "a;", ("ab" * 32) + "\n"]
)
def test_bad_ca_fingerprint_is_refused(sha: str) -> None:
    with pytest.raises(InstallerError, match="CA"):
        make(ca_sha256=sha)


@pytest.mark.parametrize(
    "entry",
    [
        artifact("X86_64", SHA_X86),
        artifact("x86 64", SHA_X86),
        artifact("x86_64;id", SHA_X86),
        artifact("", SHA_X86),
        artifact("a" * 17, SHA_X86),
        artifact("x86_64", "ab" * 31),
        artifact("x86_64", SHA_X86.upper()),
        artifact("x86_64", "g" * 64),
    ],
)
def test_bad_artifact_entry_is_refused(entry: Artifact) -> None:
    with pytest.raises(InstallerError, match="artifact"):
        make(artifacts=[ARTIFACTS[0], entry])


def test_installer_error_is_a_value_error() -> None:
    assert issubclass(InstallerError, ValueError)


def test_pinned_install_command_carries_the_key_pin() -> None:
    command = install_command("https://dockmesh.example.com:8080", TOKEN, PIN)
    words = shlex.split(command)
    assert words[:5] == ["curl", "-fsSL", "--insecure", "--pinnedpubkey", PIN]
    assert words[5] == f"https://dockmesh.example.com:8080/install/agent.sh?token={TOKEN}"
    assert words[6:] == ["|", "sudo", "bash"]


@pytest.mark.parametrize(
    ("url", "pin"),
    [
        ("http://dockmesh.example.com", PIN),  # a pin means TLS
        ("https://dockmesh.example.com", "sha256//short"),
        ("https://dockmesh.example.com", PIN + "'; id; '"),
        ("https://dockmesh.example.com", PIN.replace("sha256//", "sha1//")),
        ("https://dockmesh.example.com;id", PIN),
    ],
)
def test_pinned_install_command_refuses_bad_values(url: str, pin: str) -> None:
    with pytest.raises(InstallerError):
        install_command(url, TOKEN, pin)


def test_a_pinned_script_needs_an_https_server_url() -> None:
    with pytest.raises(InstallerError, match="https"):
        make(server_url="http://dockmesh.example.com:8080")
    assert "DOCKMESH_HTTPS_PIN=''" in make(server_url="http://x:8080", https_pin=None).splitlines()


def _fake_curl(tmp_path: Path) -> Path:
    """A `curl` that records its arguments, so the script's downloads can be inspected."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    curl = bin_dir / "curl"
    curl.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$CURL_ARGS"\n')
    curl.chmod(curl.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def _run_fetch(tmp_path: Path, script: str, url: str) -> subprocess.CompletedProcess[str]:
    body = script[: script.rindex('main "$@"')] + f'fetch {shlex.quote(url)} "$OUT"\n'
    env = {
        "PATH": f"{_fake_curl(tmp_path)}:{os.environ['PATH']}",
        "CURL_ARGS": str(tmp_path / "args"),
        "OUT": str(tmp_path / "out"),
    }
    return subprocess.run(["bash", "-s"], input=body, env=env, capture_output=True, text=True, timeout=30)


def test_the_script_downloads_over_the_pinned_channel(tmp_path: Path) -> None:
    result = _run_fetch(tmp_path, make(), "https://dockmesh.example.com:8080/install/agent/x86_64")
    assert result.returncode == 0, result.stderr
    args = (tmp_path / "args").read_text().splitlines()
    assert args[args.index("--pinnedpubkey") + 1] == PIN
    assert "https://dockmesh.example.com:8080/install/agent/x86_64" in args


def test_a_pinned_script_refuses_plain_http_downloads(tmp_path: Path) -> None:
    result = _run_fetch(tmp_path, make(), "http://dockmesh.example.com:8080/install/agent/x86_64")
    assert result.returncode != 0
    assert "refusing to download" in result.stderr
    assert not (tmp_path / "args").exists()  # curl never ran


def test_install_command_pipes_the_tokened_script_to_sudo_bash() -> None:
    command = install_command("https://dockmesh.example.com", TOKEN)
    assert command == (
        f'curl -fsSL "https://dockmesh.example.com/install/agent.sh?token={TOKEN}" | sudo bash'
    )
    words = shlex.split(command)
    assert words[:2] == ["curl", "-fsSL"]
    assert words[2] == f"https://dockmesh.example.com/install/agent.sh?token={TOKEN}"
    assert words[3:] == ["|", "sudo", "bash"]
