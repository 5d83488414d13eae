"""A small synchronous API client for the CLI; the login is kept in ~/.config/dockmesh/cli.json (0600)."""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from dockmesh.cli.tls import PinMismatch, opener
from dockmesh.pki.files import write_atomic
from dockmesh.pki.spki import well_formed_pin


class CliError(Exception):
    """One line telling the user what to do."""


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "dockmesh" / "cli.json"


def save_login(url: str, token: str, pin: str | None = None) -> None:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, json.dumps({"url": url, "token": token, "pin": pin}).encode(), 0o600)


def checked_pin(pin: str | None) -> str | None:
    if pin is not None and not well_formed_pin(pin):
        raise CliError("--pin must look like sha256//<44 base64 characters> (shown with the install command)")
    return pin


def login_pin() -> str | None:
    """The server key pin saved by `dockmesh login --pin` (or DOCKMESH_HTTPS_PIN); None: system roots."""
    if os.environ.get("DOCKMESH_URL") and os.environ.get("DOCKMESH_API_TOKEN"):
        return checked_pin(os.environ.get("DOCKMESH_HTTPS_PIN") or None)
    try:
        pin = json.loads(config_path().read_text()).get("pin")
    except (OSError, ValueError, AttributeError):
        return None
    return checked_pin(pin) if isinstance(pin, str) else None


def urlopen(req: urllib.request.Request, pin: str | None, timeout: float | None) -> Any:
    """Open ``req`` trusting the pinned key, or the system roots without a pin."""
    try:
        return opener(pin).open(req, timeout=timeout)
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, PinMismatch):
            raise CliError(
                f"{exc.reason.args[0]}: check the pin, or log in again with the right --pin"
            ) from None
        if isinstance(exc.reason, ssl.SSLCertVerificationError):
            raise CliError(
                f"cannot verify {req.full_url.split('/api/')[0]}: {exc.reason.verify_message}; if the server "
                "uses its own certificate, run `dockmesh login --pin sha256//…` with its key pin"
            ) from None
        raise


def load_login() -> tuple[str, str]:
    url = os.environ.get("DOCKMESH_URL")
    token = os.environ.get("DOCKMESH_API_TOKEN")
    if url and token:
        return url.rstrip("/"), token
    try:
        data = json.loads(config_path().read_text())
        return str(data["url"]).rstrip("/"), str(data["token"])
    except (OSError, ValueError, KeyError):
        raise CliError("not logged in: run `dockmesh login --url https://server:8080`") from None


def call(
    method: str, url: str, path: str, token: str | None = None, body: Any = None, pin: str | None = None
) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method)  # noqa: S310 - the user's server URL
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urlopen(req, pin, timeout=30) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        message = error_message(exc)
        if exc.code == 401 and path != "/api/v1/auth/login":
            message += " (run `dockmesh login` again)"
        raise CliError(message) from None
    except (urllib.error.URLError, OSError) as exc:
        raise CliError(f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from None
    return json.loads(raw) if raw else None


def error_message(exc: urllib.error.HTTPError) -> str:
    """The API's error message, with where it points (a compose file's line and key) when it says."""
    try:
        error = json.loads(exc.read())["error"]
        message = str(error["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {exc.code}"
    where = [
        f"line {error['line']}" if error.get("line") else "",
        f"at {error['key']}" if error.get("key") else "",
    ]
    located = ", ".join(w for w in where if w)
    return f"{message} ({located})" if located and located not in message else message


def api(method: str, path: str, body: Any = None) -> Any:
    url, token = load_login()
    return call(method, url, path, token, body, login_pin())
