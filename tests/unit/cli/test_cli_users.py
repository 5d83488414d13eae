"""`dockmesh users|roles|tokens`: token lifetimes, passwords never from argv, and a missing terminal."""

from __future__ import annotations

import io

import pytest

from dockmesh.cli import users
from dockmesh.cli.client import CliError
from dockmesh.cli.main import parser


@pytest.mark.parametrize(
    ("text", "seconds"), [("3600", 3600), ("90s", 90), ("15m", 900), ("12h", 43200), ("30d", 2592000)]
)
def test_token_lifetimes(text: str, seconds: int) -> None:
    assert users.ttl_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "1w", "-1d", "1.5d", "d", "9999999d"])
def test_bad_token_lifetimes_say_how(text: str) -> None:
    with pytest.raises(CliError, match="30d"):
        users.ttl_seconds(text)


def test_no_password_option_on_argv() -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["users", "add", "bob", "--password", "secret123"])


def test_password_from_stdin_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    args = parser().parse_args(["users", "passwd", "bob", "--password-stdin"])
    monkeypatch.setattr("sys.stdin", io.StringIO("pass word 1\nignored\n"))
    assert users.read_password(args, "bob") == "pass word 1"
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(CliError, match="no password on stdin"):
        users.read_password(args, "bob")


def test_no_terminal_no_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    args = parser().parse_args(["users", "add", "bob"])
    monkeypatch.setattr("sys.stdin", io.StringIO("typed ahead\n"))
    with pytest.raises(CliError, match="--password-stdin"):
        users.read_password(args, "bob")


def test_prompt_asks_twice_and_refuses_a_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    args = parser().parse_args(["users", "add", "bob"])
    stdin = io.StringIO()
    stdin.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr("sys.stdin", stdin)
    answers = iter(["first-password", "other-password"])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    with pytest.raises(CliError, match="differ"):
        users.read_password(args, "bob")
