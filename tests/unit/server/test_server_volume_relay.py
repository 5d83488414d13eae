"""relay_volume over in-memory links with scripted hosts: the bytes arrive whole and in order under flow
control, and any side's refusal becomes the migration's error (the drain and the rollback rely on that)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from dockmesh.link import Link, RemoteError, Stream
from dockmesh.link.memory import socket_pair
from dockmesh.link.packets import Kind, PacketStream, decode_json
from dockmesh.proto import Role
from dockmesh.proto.methods import Volumes
from dockmesh.server.services.volume_relay import relay_volume

DATA = bytes(range(256)) * 8192  # 2 MiB: many link windows (256 KiB each)
StreamHandler = Callable[[Stream], Awaitable[None]]


async def source(stream: Stream) -> None:
    assert stream.kind == Volumes.EXPORT
    out = PacketStream(stream)
    for i in range(0, len(DATA), 65536):
        await out.send(Kind.DATA, DATA[i : i + 65536])
    await out.send_json({"type": "end", "bytes": len(DATA), "sha256": hashlib.sha256(DATA).hexdigest()})


def destination(received: bytearray, *, refuse: bool = False) -> StreamHandler:
    async def serve(stream: Stream) -> None:
        assert stream.kind == Volumes.IMPORT
        assert stream.params["migration"] == "a" * 32
        packets = PacketStream(stream)
        digest = hashlib.sha256()
        while (packet := await packets.recv()) is not None:
            kind, payload = packet
            if kind is Kind.JSON:
                trailer = decode_json(payload)
                if refuse or trailer["sha256"] != digest.hexdigest():
                    raise RemoteError("checksum_mismatch", "not what was sent")
                await packets.send_json(
                    {"type": "result", "bytes": len(received), "sha256": trailer["sha256"]}
                )
                return
            digest.update(payload)
            received.extend(payload)
            await asyncio.sleep(0)  # a slow disk: the relay must wait for credit, not buffer
        raise RemoteError("incomplete", "ended before the end packet")

    return serve


async def linked(handler: StreamHandler) -> AsyncIterator[Link]:
    server_end, host_end = socket_pair()
    server = Link(server_end, Role.ACCEPTOR)
    host = Link(host_end, Role.DIALER, on_stream=handler)
    tasks = [asyncio.create_task(server.run()), asyncio.create_task(host.run())]
    try:
        yield server
    finally:
        await server.close()
        await host.close()
        await asyncio.gather(*tasks, return_exceptions=True)


async def relay(dest: StreamHandler, src: StreamHandler = source) -> tuple[dict[str, object], list[int]]:
    counted: list[int] = []
    a_gen, b_gen = linked(src), linked(dest)
    a, b = await anext(a_gen), await anext(b_gen)
    try:
        result = await relay_volume(
            a,
            b,
            name="shop_data",
            image="local/busybox:1",
            migration="a" * 32,
            labels={},
            progress=counted.append,
        )
    finally:
        for gen in (a_gen, b_gen):
            await gen.aclose()
    return result, counted


async def test_bytes_arrive_whole_and_the_destination_s_digest_is_returned() -> None:
    received = bytearray()
    result, counted = await relay(destination(received))
    assert bytes(received) == DATA
    assert result == {"bytes": len(DATA), "sha256": hashlib.sha256(DATA).hexdigest()}
    assert sum(counted) > len(DATA)  # every packet counted, headers included
    assert max(counted) <= 256 * 1024  # never more than a window at a time


async def test_a_destination_refusal_is_the_error() -> None:
    with pytest.raises(RemoteError) as caught:
        await relay(destination(bytearray(), refuse=True))
    assert caught.value.code == "checksum_mismatch"


async def test_a_source_failure_is_the_error_and_the_destination_sees_no_end_packet() -> None:
    seen: list[str] = []

    async def broken(stream: Stream) -> None:
        await PacketStream(stream).send(Kind.DATA, b"x" * 1000)
        raise RemoteError("engine_error", "the volume vanished")

    async def dest(stream: Stream) -> None:
        try:
            await destination(bytearray())(stream)
        except RemoteError as exc:
            seen.append(exc.code)
            raise

    with pytest.raises(RemoteError) as caught:
        await relay(dest, broken)
    assert caught.value.code == "engine_error"
    await asyncio.sleep(0.05)
    assert seen in ([], ["incomplete"])  # cancelled, or ended without the trailer: never accepted
