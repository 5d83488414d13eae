"""Shared fixtures for the PKI tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockmesh.pki.ca import CertificateAuthority


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    return tmp_path / "pki"


@pytest.fixture
def ca(ca_dir: Path) -> CertificateAuthority:
    return CertificateAuthority.load_or_create(ca_dir)
