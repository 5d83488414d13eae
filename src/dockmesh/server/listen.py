"""The agents' listening socket, bound before the server imports its modules and migrates the store.

A restarted server spends seconds importing and migrating before it serves. Bound first, its port queues
the agents' connects in the kernel's backlog meanwhile instead of refusing them, so their handshakes begin
the moment the server is ready (issue 9: 1,002 agents back after a restart). Standard library only: the
CLI calls it before the server's imports.
"""

from __future__ import annotations

import socket

# A restart brings the whole fleet at once; the default of 128 dropped SYNs (each retried after 1 s, 3 s…).
# The kernel clamps the value to net.core.somaxconn.
BACKLOG = 4096


def bind(host: str, port: int, backlog: int = BACKLOG) -> socket.socket:
    """A listening, non-blocking TCP socket on ``host:port`` (port 0: any free port)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
