"""Process tuning: the collector thresholds and their override."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from dockmesh.server.tuning import GC_THRESHOLDS, tune_gc


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)
    gc.unfreeze()


def test_default_thresholds_collect_less_often_than_cpython() -> None:
    tune_gc("")
    assert gc.get_threshold() == GC_THRESHOLDS
    assert GC_THRESHOLDS[0] > 700
    assert gc.get_freeze_count() > 0


def test_an_override_is_applied() -> None:
    tune_gc("700,10,10")
    assert gc.get_threshold() == (700, 10, 10)


@pytest.mark.parametrize("raw", ["lots", "1,2", "0,10,10", "1,2,3,4"])
def test_a_bad_override_is_ignored_with_a_warning(raw: str, caplog: pytest.LogCaptureFixture) -> None:
    tune_gc(raw)
    assert gc.get_threshold() == GC_THRESHOLDS
    assert "DOCKMESH_GC_THRESHOLDS" in caplog.text
