"""Renders the install script for one token; every templated value is validated, then shell-quoted."""

from __future__ import annotations

import re
import shlex
from importlib import resources

from dockmesh.pki.spki import well_formed_pin
from dockmesh.server.artifact import Artifact
from dockmesh.server.tokens import well_formed

_URL = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+(:\d+)?(/[A-Za-z0-9._~\-/]*)?$")
_HEX = re.compile(r"^[0-9a-f]{64}$")
_ARCH = re.compile(r"^[a-z0-9_]{1,16}$")


class InstallerError(ValueError):
    """A value that cannot be put in a script safely."""


def install_command(public_url: str, token: str, pin: str | None = None) -> str:
    """The one-liner users paste into a root shell; with ``pin`` curl talks only to the key it names.

    Why ``--insecure`` with ``--pinnedpubkey`` rather than ``--cacert``: the server's own certificate chains
    to its private CA, which no stock host trusts, and ``--cacert`` needs that CA as a file on the host
    before the first request (a second command, and a hash the user would check by eye). curl enforces
    ``--pinnedpubkey`` even with ``--insecure`` — it aborts the handshake before sending the request
    when the key differs (tests/integration/test_https.py proves it with a real curl) — and a key pin is
    stricter than a chain: only this server's key passes, not anything its CA (or a public CA) signed.
    The key is kept across certificate re-issues, so the pin stays valid while the token does.
    """
    if not well_formed(token) or not _URL.fullmatch(public_url):
        raise InstallerError("the install command needs a well-formed URL and token")
    url = f"{public_url}/install/agent.sh?token={token}"
    if pin is None:
        return f'curl -fsSL "{url}" | sudo bash'
    if not well_formed_pin(pin) or not public_url.startswith("https://"):
        raise InstallerError("a pinned install command needs an https:// URL and a sha256// pin")
    return f'curl -fsSL --insecure --pinnedpubkey "{pin}" "{url}" | sudo bash'


def render(
    *,
    server_url: str,
    enroll_url: str,
    token: str,
    ca_sha256: str,
    artifacts: list[Artifact],
    https_pin: str | None = None,
) -> str:
    if not well_formed(token):
        raise InstallerError("malformed token")
    for url in (server_url, enroll_url):
        if not _URL.fullmatch(url):
            raise InstallerError(f"URL {url!r} cannot be used in the installer")
    if https_pin is not None and not (well_formed_pin(https_pin) and server_url.startswith("https://")):
        # The script downloads the agent over the pinned channel only: an http:// URL would bypass it.
        raise InstallerError("a pinned installer needs an https:// server URL and a sha256// pin")
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
        "HTTPS_PIN": https_pin or "",
    }
    for key, value in values.items():
        template = template.replace(f"@@{key}@@", shlex.quote(value))
    return template
