"""Process-wide tuning for holding thousands of idle TLS connections and answering big lists."""

from __future__ import annotations

import asyncio.sslproto
import gc
import logging
import os

log = logging.getLogger(__name__)

# asyncio allocates (and zero-fills) this much per TLS connection up front: 256 KiB by default, which
# is most of an idle agent's footprint. TLS records carry at most 16 KiB of plaintext, so 16 KiB still
# reads a whole record per call; bulk streams lose nothing measurable (see BENCHMARKS.md).
TLS_READ_BUFFER = 16 * 1024


def shrink_tls_read_buffer(size: int | None = None) -> None:
    """DOCKMESH_TLS_READ_BUFFER overrides the size (the benchmarks use it to measure the stock value)."""
    if size is None:
        size = int(os.environ.get("DOCKMESH_TLS_READ_BUFFER", TLS_READ_BUFFER))
    asyncio.sslproto.SSLProtocol.max_size = max(4096, size)


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
