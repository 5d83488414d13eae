"""Process-wide tuning for holding thousands of idle TLS connections."""

from __future__ import annotations

import asyncio.sslproto
import os

# asyncio allocates (and zero-fills) this much per TLS connection up front: 256 KiB by default, which
# is most of an idle agent's footprint. TLS records carry at most 16 KiB of plaintext, so 16 KiB still
# reads a whole record per call; bulk streams lose nothing measurable (see BENCHMARKS.md).
TLS_READ_BUFFER = 16 * 1024


def shrink_tls_read_buffer(size: int | None = None) -> None:
    """DOCKMESH_TLS_READ_BUFFER overrides the size (the benchmarks use it to measure the stock value)."""
    if size is None:
        size = int(os.environ.get("DOCKMESH_TLS_READ_BUFFER", TLS_READ_BUFFER))
    asyncio.sslproto.SSLProtocol.max_size = max(4096, size)
