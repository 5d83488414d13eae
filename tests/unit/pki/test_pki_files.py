"""Tests for write_atomic."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dockmesh.pki.files import write_atomic


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_writes_data_with_default_mode_and_no_temp_left(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    write_atomic(target, b"hello")
    assert target.read_bytes() == b"hello"
    assert _mode(target) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_mode_is_exact_regardless_of_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        write_atomic(tmp_path / "ca.crt", b"cert", mode=0o644)
    finally:
        os.umask(old)
    assert _mode(tmp_path / "ca.crt") == 0o644


def test_replaces_read_only_file(tmp_path: Path) -> None:
    target = tmp_path / "ca.key"
    write_atomic(target, b"one", mode=0o400)
    write_atomic(target, b"two", mode=0o400)
    assert target.read_bytes() == b"two"
    assert _mode(target) == 0o400
    assert [p.name for p in tmp_path.iterdir()] == ["ca.key"]


def test_failed_replace_cleans_up_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"old")

    def boom(src: object, dst: object) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk on fire"):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
