"""The logs of a stack's containers merged by line, each line prefixed with its service."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

from dockmesh.docker.logs import LineSplitter
from dockmesh.link import Link, LinkClosed, RemoteError, Stream

QUEUE = 256  # lines waiting for the reader; a slow reader slows the hosts' reads (their credit windows)


async def merged_logs(
    link: Link, containers: list[tuple[str, str]], *, follow: bool, tail: int | None
) -> AsyncGenerator[bytes, None]:
    """`containers` are (service, container id); one `logs` stream each, lines interleaved as they come.

    Leaving the iterator (the viewer went away) cancels every stream, which stops the reads on the host.
    """
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=QUEUE)
    width = max(len(service) for service, _ in containers)
    streams: list[Stream] = []

    async def pump(service: str, container_id: str) -> None:
        prefix = f"{service:<{width}} | ".encode()
        params = {"id": container_id, "follow": follow, "tail": tail, "timestamps": False}
        try:
            stream = link.open_stream("logs", params)
            streams.append(stream)
            splitter = LineSplitter()
            while (chunk := await stream.read()) is not None:
                for line in splitter.feed(chunk):
                    await queue.put(prefix + line)
            if rest := splitter.flush():
                await queue.put(prefix + rest + b"\n")
        except RemoteError as exc:
            await queue.put(prefix + f"[dockmesh] log stream ended: {exc.message}\n".encode())
        except LinkClosed:
            await queue.put(prefix + b"[dockmesh] the link to the host closed\n")

    pumps = [asyncio.create_task(pump(service, cid)) for service, cid in containers]

    async def close_when_done() -> None:
        await asyncio.gather(*pumps, return_exceptions=True)
        await queue.put(None)

    closer = asyncio.create_task(close_when_done())
    try:
        while (line := await queue.get()) is not None:
            yield line
    finally:
        for task in (*pumps, closer):
            task.cancel()
        for stream in streams:
            stream.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*pumps, closer, return_exceptions=True)
