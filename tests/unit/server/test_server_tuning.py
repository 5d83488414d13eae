"""Process tuning: the collector thresholds and their override."""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import gc
import ssl
from collections.abc import Iterator

import pytest

from dockmesh.server.tuning import GC_THRESHOLDS, TLS_READ_BUFFER, share_tls_read_buffer, tune_gc


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


def _protocol() -> asyncio.sslproto.SSLProtocol:
    loop = asyncio.get_running_loop()
    return asyncio.sslproto.SSLProtocol(loop, asyncio.Protocol(), ssl.create_default_context(), None)


@pytest.fixture
def stock_tls() -> Iterator[None]:
    yield
    share_tls_read_buffer(private_size=256 * 1024)


async def test_tls_connections_share_one_read_buffer_per_thread(stock_tls: None) -> None:
    share_tls_read_buffer()
    a, b = _protocol(), _protocol()
    assert a.get_buffer(-1) is b.get_buffer(-1)
    assert len(a.get_buffer(-1)) == TLS_READ_BUFFER
    # What buffer_updated copies into the connection's BIO is what recv_into wrote.
    a.get_buffer(-1)[:5] = b"hello"
    a.buffer_updated(5)
    assert a._incoming.read() == b"hello"  # type: ignore[attr-defined]


async def test_the_stock_private_buffer_can_be_restored(stock_tls: None) -> None:
    share_tls_read_buffer(private_size=64 * 1024)
    a, b = _protocol(), _protocol()
    assert a.get_buffer(-1) is not b.get_buffer(-1)
    assert len(a.get_buffer(-1)) == 64 * 1024
