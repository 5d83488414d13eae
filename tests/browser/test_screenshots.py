"""The screenshot tool (scripts/screenshots) works: it is run here into a temporary directory."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.browser.shots import NAMES, generate
from tests.fleet import Fleet

pytestmark = [pytest.mark.browser, pytest.mark.docker]


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_screenshot_tool_saves_every_main_page(fleet: Fleet, browser: Browser, tmp_path: Path) -> None:
    saved = generate(tmp_path, fleet, browser)
    assert sorted(p.name for p in saved) == sorted(f"{n}.png" for n in NAMES)
    for path in saved:
        width, height = png_size(path)
        assert width == 1280, path
        if path.name == "container.png":
            assert height > 800  # the full page: summary, stats, logs and terminal
        else:
            assert height == 800, path
        assert path.stat().st_size > 20_000, path  # a rendered page, not a blank image
