"""A small synchronous API client for the CLI; the login is kept in ~/.config/dockmesh/cli.json (0600)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from dockmesh.pki.files import write_atomic


class CliError(Exception):
    """One line telling the user what to do."""


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "dockmesh" / "cli.json"


def save_login(url: str, token: str) -> None:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, json.dumps({"url": url, "token": token}).encode(), 0o600)


def load_login() -> tuple[str, str]:
    url = os.environ.get("DOCKMESH_URL")
    token = os.environ.get("DOCKMESH_API_TOKEN")
    if url and token:
        return url.rstrip("/"), token
    try:
        data = json.loads(config_path().read_text())
        return str(data["url"]).rstrip("/"), str(data["token"])
    except (OSError, ValueError, KeyError):
        raise CliError("not logged in: run `dockmesh login --url http://server:8080`") from None


def call(method: str, url: str, path: str, token: str | None = None, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method)  # noqa: S310 - the user's server URL
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {exc.code}"
        if exc.code == 401 and path != "/api/v1/auth/login":
            message += " (run `dockmesh login` again)"
        raise CliError(message) from None
    except (urllib.error.URLError, OSError) as exc:
        raise CliError(f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from None
    return json.loads(raw) if raw else None


def api(method: str, path: str, body: Any = None) -> Any:
    url, token = load_login()
    return call(method, url, path, token, body)
