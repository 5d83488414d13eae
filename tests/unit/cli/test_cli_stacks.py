"""`dockmesh stacks deploy` progress: a line per service change off a terminal, bars while bytes count."""

from __future__ import annotations

import io
import urllib.error
from email.message import Message

from dockmesh.cli.client import error_message
from dockmesh.cli.stacks import Progress


def event(
    service: str, phase: str, status: str, current: int | None = None, total: int | None = None
) -> dict:  # type: ignore[type-arg]
    return {"type": "progress", "service": service, "phase": phase, "status": status, "current": current,
            "total": total}  # fmt: skip


def test_off_a_terminal_a_line_per_change_not_per_byte() -> None:
    out = io.StringIO()
    progress = Progress(out)
    progress.update(event("db", "pull", "downloading", 1_000_000, 4_000_000))
    progress.update(event("db", "pull", "downloading", 2_000_000, 4_000_000))
    progress.update(event("web", "create", "created"))
    progress.update(event("db", "health", "healthy"))
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].split()[:3] == ["db", "pull", "downloading"]
    assert "[#####---------------] 1.0/4.0 MB" in lines[0]
    assert lines[1].split() == ["web", "create", "created"]
    assert lines[2].split() == ["db", "health", "healthy"]


def test_on_a_terminal_the_block_is_redrawn_in_place() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    progress = Progress(out)
    progress.update(event("db", "pull", "downloading", 2, 4))
    progress.update(event("web", "pull", "downloading", 4, 4))
    progress.update(event("db", "pull", "done", 4, 4))
    text = out.getvalue()
    assert text.count("\x1b[2F") == 1  # back over both lines once there are two
    assert text.count("\x1b[1F") == 1
    assert text.rstrip().endswith("[####################] 0.0/0.0 MB")


def test_api_errors_show_the_compose_line_and_key() -> None:
    def http_error(body: bytes) -> urllib.error.HTTPError:
        return urllib.error.HTTPError("http://x", 400, "Bad", Message(), io.BytesIO(body))

    located = http_error(
        b'{"error":{"code":"unsupported_key","message":"unknown key bogus","key":"a.b","line":8}}'
    )
    assert error_message(located) == "unknown key bogus (line 8, at a.b)"
    plain = http_error(b'{"error":{"code":"x","message":"nope"}}')
    assert error_message(plain) == "nope"
    assert error_message(http_error(b"<html>")) == "HTTP 400"
