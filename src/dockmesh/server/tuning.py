"""Process-wide tuning for holding thousands of idle TLS connections and answering big lists."""

from __future__ import annotations

import asyncio.sslproto
import gc
import logging
import os
import threading
from typing import Any

log = logging.getLogger(__name__)

# asyncio gives every TLS connection its own 256 KiB read buffer, allocated and zero-filled up front:
# most of an idle agent's footprint. The buffer only carries ciphertext from recv_into() to the
# connection's MemoryBIO, which copies it at once (SSLProtocol.buffer_updated), so nothing lives in it
# between two reads and one buffer per event-loop thread serves every connection. The same size is
# also what SSLObject.read() allocates per call for decrypted data, and a TLS record holds at most
# 16 KiB: at 256 KiB every record cost an mmap and munmap (log streams lost a tenth of their speed),
# while 64 KiB stays on the heap and still takes four records per recv.
TLS_READ_BUFFER = 64 * 1024


class _PerThread(threading.local):
    view: memoryview | None = None


_shared = _PerThread()
_stock_init = asyncio.sslproto.SSLProtocol.__init__


def _shared_view(size: int) -> memoryview:
    view = _shared.view
    if view is None or len(view) != size:
        view = _shared.view = memoryview(bytearray(size))
    return view


def share_tls_read_buffer(private_size: int | None = None) -> None:
    """One read buffer per thread for all TLS connections.

    DOCKMESH_TLS_READ_BUFFER=<bytes> (or `private_size`) restores stock behaviour, a private buffer of
    that size per connection: the benchmarks measure their baseline with it.
    """
    if private_size is None and os.environ.get("DOCKMESH_TLS_READ_BUFFER"):
        private_size = int(os.environ["DOCKMESH_TLS_READ_BUFFER"])
    proto = asyncio.sslproto.SSLProtocol
    if private_size is not None:
        proto.__init__ = _stock_init  # type: ignore[method-assign]
        proto.max_size = max(4096, private_size)
        return
    proto.max_size = TLS_READ_BUFFER

    def __init__(self: asyncio.sslproto.SSLProtocol, *args: Any, **kwargs: Any) -> None:
        _stock_init(self, *args, **kwargs)
        # Both attributes are what get_buffer() hands to recv_into() and buffer_updated() reads.
        if hasattr(self, "_ssl_buffer_view"):
            view = _shared_view(proto.max_size)
            self._ssl_buffer = view.obj  # type: ignore[attr-defined]
            self._ssl_buffer_view = view

    proto.__init__ = __init__  # type: ignore[method-assign]


# CPython collects generation 0 every 700 net allocations. A 1,000-host list decodes 50,000 rows
# (half a million objects), so the default ran a collection every few hundred microseconds, each
# walking a young generation full of rows that are live until the reply goes out; that was the
# biggest single cost in the profile. Reference counting frees the rows; the collector only has to
# find cycles, which the server rarely makes.
GC_THRESHOLDS: tuple[int, ...] = (50_000, 20, 100)


def tune_gc(thresholds: str | None = None) -> None:
    """Freeze what startup built and collect less often; DOCKMESH_GC_THRESHOLDS=a,b,c overrides."""
    raw = thresholds if thresholds is not None else os.environ.get("DOCKMESH_GC_THRESHOLDS")
    values = GC_THRESHOLDS
    if raw:
        try:
            values = tuple(int(v) for v in raw.split(","))
            if len(values) != 3 or min(values) < 1:
                raise ValueError(raw)
        except ValueError:
            log.warning("ignoring DOCKMESH_GC_THRESHOLDS=%r: want three integers like 700,10,10", raw)
            values = GC_THRESHOLDS
    gc.collect()
    gc.freeze()  # modules, routes, the CA: never garbage, so no collection needs to walk them again
    gc.set_threshold(*values)
