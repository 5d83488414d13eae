"""SharedRead: callers that ask before a read is sent share it; a caller arriving later gets a newer one."""

from __future__ import annotations

import asyncio

import pytest

from dockmesh.store.probe import SharedRead


class Counter:
    """A stand-in for the version row: each read returns the value committed when the read is sent."""

    def __init__(self) -> None:
        self.value = 0
        self.reads = 0
        self.release = asyncio.Event()

    async def read(self) -> int:
        self.reads += 1
        seen = self.value  # the moment the statement runs
        await self.release.wait()
        return seen


async def test_callers_before_the_read_starts_share_it() -> None:
    counter = Counter()
    shared = SharedRead(counter.read)
    waiters = [asyncio.ensure_future(shared.get()) for _ in range(100)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    counter.release.set()
    assert await asyncio.gather(*waiters) == [0] * 100
    assert counter.reads == 1


async def test_a_caller_after_the_read_was_sent_sees_later_commits() -> None:
    counter = Counter()
    shared = SharedRead(counter.read)
    early = asyncio.ensure_future(shared.get())
    while counter.reads == 0:
        await asyncio.sleep(0)
    counter.value = 1  # committed (a revocation, say) while the first read is in flight
    late = asyncio.ensure_future(shared.get())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    counter.release.set()
    assert await early == 0
    assert await late == 1  # never handed the in-flight read's older value
    assert counter.reads == 2


async def test_one_caller_giving_up_does_not_cancel_the_read_for_the_others() -> None:
    counter = Counter()
    shared = SharedRead(counter.read)
    quitter = asyncio.ensure_future(shared.get())
    stayer = asyncio.ensure_future(shared.get())
    await asyncio.sleep(0)
    quitter.cancel()
    counter.release.set()
    assert await stayer == 0
    with pytest.raises(asyncio.CancelledError):
        await quitter


async def test_a_failed_read_fails_its_callers_and_the_next_call_reads_again() -> None:
    calls = 0

    async def flaky() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("database away")
        return 7

    shared = SharedRead(flaky)
    results = await asyncio.gather(shared.get(), shared.get(), return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results)
    assert await shared.get() == 7
