"""Renders the install script for one token; every templated value is validated, then shell-quoted."""

from __future__ import annotations

import re
import shlex
from importlib import resources

from dockmesh.server.artifact import Artifact
from dockmesh.server.tokens import well_formed

_URL = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+(:\d+)?(/[A-Za-z0-9._~\-/]*)?$")
_HEX = re.compile(r"^[0-9a-f]{64}$")
_ARCH = re.compile(r"^[a-z0-9_]{1,16}$")


class InstallerError(ValueError):
    """A value that cannot be put in a script safely."""


def install_command(public_url: str, token: str) -> str:
    return f'curl -fsSL "{public_url}/install/agent.sh?token={token}" | sudo bash'


def render(*, server_url: str, enroll_url: str, token: str, ca_sha256: str, artifacts: list[Artifact]) -> str:
    if not well_formed(token):
        raise InstallerError("malformed token")
    for url in (server_url, enroll_url):
        if not _URL.fullmatch(url):
            raise InstallerError(f"URL {url!r} cannot be used in the installer")
    if not _HEX.fullmatch(ca_sha256):
        raise InstallerError("bad CA fingerprint")
    table = []
    for artifact in artifacts:
        if not _ARCH.fullmatch(artifact.arch) or not _HEX.fullmatch(artifact.sha256):
            raise InstallerError("bad artifact entry")
        table.append(f"{artifact.arch}={artifact.sha256}")
    template = resources.files("dockmesh.server").joinpath("installer/agent.sh").read_text()
    values = {
        "SERVER_URL": server_url,
        "ENROLL_URL": enroll_url,
        "TOKEN": token,
        "CA_SHA256": ca_sha256,
        "ARTIFACTS": " ".join(table),
    }
    for key, value in values.items():
        template = template.replace(f"@@{key}@@", shlex.quote(value))
    return template
