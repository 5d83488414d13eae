"""The registry key file: made once (0600, atomically), reused, a damaged one refused clearly."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dockmesh.server.vault import KEY_FILE, Vault, VaultError


def test_the_key_is_made_once_and_opens_what_it_sealed(tmp_path: Path) -> None:
    sealed = Vault.load_or_create(tmp_path).seal("pw-1")
    assert "pw-1" not in sealed
    key = (tmp_path / KEY_FILE).read_bytes()
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600
    again = Vault.load_or_create(tmp_path)
    assert (tmp_path / KEY_FILE).read_bytes() == key
    assert again.open(sealed) == "pw-1"
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE]  # no temporary file left


def test_concurrent_starts_agree_on_one_key(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        vaults = list(pool.map(lambda _: Vault.load_or_create(tmp_path), range(16)))
    sealed = vaults[0].seal("same")
    assert all(v.open(sealed) == "same" for v in vaults)


def test_a_foreign_or_damaged_key_is_refused(tmp_path: Path) -> None:
    sealed = Vault.load_or_create(tmp_path).seal("pw")
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(VaultError):
        Vault.load_or_create(other).open(sealed)
    with pytest.raises(VaultError):
        Vault.load_or_create(tmp_path).open(sealed[:-4] + "AAAA")
    (tmp_path / KEY_FILE).write_bytes(b"not a key")
    with pytest.raises(VaultError) as info:
        Vault.load_or_create(tmp_path)
    assert "restore it" in str(info.value)
