"""One volume's tar from the source's link to the destination's, through the server without a temp file.

The server holds at most what the two channels' credit allows (one window per side, 256 KiB by default):
it reads a chunk from the source only after the destination has granted room for the previous one, so a
slow destination slows the source down instead of filling the server's memory.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from dockmesh.link import Link, LinkClosed, RemoteError, Stream
from dockmesh.link.packets import Kind, PacketError, PacketStream, decode_json
from dockmesh.proto.methods import Volumes

_SHA = re.compile(r"[0-9a-f]{64}")


def _closed_with(stream: Stream, fallback: str) -> RemoteError:
    if stream.error is not None:
        return RemoteError(stream.error.code, stream.error.message[:500])
    return RemoteError("link_closed", fallback)


async def relay_volume(
    source: Link,
    destination: Link,
    *,
    name: str,
    image: str,
    migration: str,
    labels: dict[str, str],
    progress: Callable[[int], None],
    auth: dict[str, dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Copy volume `name`; returns the destination's verified `{"bytes","sha256"}`.

    Raises RemoteError (with the failing side's code: `checksum_mismatch`, `volume_exists`, `link_closed`
    …) when the copy is not accepted; the destination has then removed what it created, or will be told
    to by the migration's cleanup if its link died.
    """
    out = source.open_stream(Volumes.EXPORT, {"name": name, "image": image})
    params: dict[str, Any] = {"name": name, "image": image, "migration": migration, "labels": labels}
    if auth:
        params["auth"] = auth  # the destination's scoped credential, to pull the helper's image there
    into = destination.open_stream(Volumes.IMPORT, params)
    try:
        while True:
            try:
                chunk = await out.read()
            except LinkClosed:
                raise _closed_with(out, "the source's link closed during the copy") from None
            if chunk is None:
                break
            try:
                await into.write(chunk)
            except LinkClosed:
                raise _closed_with(into, "the destination's link closed during the copy") from None
            progress(len(chunk))
        into.eof()
        try:
            packet = await PacketStream(into).recv()
        except LinkClosed:
            raise _closed_with(into, "the destination's link closed before it answered") from None
        if packet is None or packet[0] is not Kind.JSON:
            raise _closed_with(into, "the destination ended without a result")
        result = decode_json(packet[1])
    except PacketError as exc:
        raise RemoteError("bad_packet", f"the destination's answer is malformed: {exc}") from None
    finally:
        out.cancel()
        into.cancel()
    sha, count = result.get("sha256"), result.get("bytes")
    if (
        not isinstance(sha, str)
        or not _SHA.fullmatch(sha)
        or isinstance(count, bool)
        or not isinstance(count, int)
    ):
        raise RemoteError("bad_packet", "the destination's result lacks its byte count or SHA-256")
    return {"bytes": count, "sha256": sha}
