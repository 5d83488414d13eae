"""argon2 off the event loop: the loop keeps ticking, two checks at a time, a bounded queue."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dockmesh.server.accounts import Accounts
from dockmesh.server.passwords import Busy, Passwords
from dockmesh.store.db import Database
from dockmesh.store.users import UserStore


class GatedHasher:
    """Stands in for argon2: each verify waits for the gate, and the peak concurrency is recorded."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.running = 0
        self.peak = 0
        self.started = threading.Semaphore(0)
        self._lock = threading.Lock()

    def hash(self, password: str) -> str:
        return "h:" + password

    def verify(self, password_hash: str, password: str) -> bool:
        with self._lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        self.started.release()
        try:
            assert self.gate.wait(10)
            return password_hash == "h:" + password
        finally:
            with self._lock:
                self.running -= 1


@pytest.fixture
def gated() -> Iterator[tuple[Passwords, GatedHasher]]:
    hasher = GatedHasher()
    passwords = Passwords(workers=2, queue=3, hasher=hasher)  # type: ignore[arg-type]
    yield passwords, hasher
    hasher.gate.set()
    passwords.close()


async def _until(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met"
        await asyncio.sleep(0.005)


async def test_two_at_a_time_and_a_full_queue_is_refused_at_once(
    gated: tuple[Passwords, GatedHasher],
) -> None:
    passwords, hasher = gated
    jobs = [asyncio.create_task(passwords.verify("h:pw", "pw")) for _ in range(5)]
    await _until(lambda: passwords.pending == 5)
    with pytest.raises(Busy):
        await passwords.verify("h:pw", "pw")
    hasher.gate.set()
    assert await asyncio.gather(*jobs) == [True] * 5
    assert hasher.peak == 2
    assert passwords.pending == 0


async def test_a_caller_that_leaves_keeps_its_slot_until_the_job_ends(
    gated: tuple[Passwords, GatedHasher],
) -> None:
    passwords, hasher = gated
    jobs = [asyncio.create_task(passwords.verify("h:pw", "pw")) for _ in range(5)]
    await _until(lambda: passwords.pending == 5)
    for job in jobs:
        job.cancel()
    await asyncio.gather(*jobs, return_exceptions=True)
    # The two running hashes still hold their slots (the three queued ones were cancelled outright).
    assert passwords.pending == 2
    more = [asyncio.create_task(passwords.verify("h:pw", "pw")) for _ in range(3)]
    await _until(lambda: passwords.pending == 5)
    with pytest.raises(Busy):
        await passwords.verify("h:pw", "pw")
    hasher.gate.set()
    assert await asyncio.gather(*more) == [True] * 3
    await _until(lambda: passwords.pending == 0)


async def test_wrong_password_and_bad_hash_are_false() -> None:
    passwords = Passwords()
    try:
        good = passwords.hash_now("secret")
        assert await passwords.verify(good, "secret")
        assert not await passwords.verify(good, "wrong")
        assert not await passwords.verify("not-a-hash", "secret")
        assert await passwords.verify(await passwords.hash("x"), "x")
    finally:
        passwords.close()


@pytest.fixture
async def accounts(tmp_path: Path) -> AsyncIterator[Accounts]:
    db = await Database.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    accounts = Accounts(UserStore(db), time.time)
    await accounts.bootstrap_admin("the-password")
    yield accounts
    accounts.close()
    await db.close()


async def test_logins_do_not_block_the_event_loop(accounts: Accounts) -> None:
    # Real argon2 (~100 ms a check): eight logins at once would stall a loop that ran them for ~1 s.
    loop = asyncio.get_running_loop()
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            before = loop.time()
            await asyncio.sleep(0.01)
            gaps.append(loop.time() - before - 0.01)

    started = time.perf_counter()
    accounts.passwords.hash_now("calibration")  # what one check costs on this machine, right now
    cost = time.perf_counter() - started
    tick = asyncio.create_task(ticker())
    results = await asyncio.gather(
        *(accounts.login("admin", "the-password" if i % 2 else "wrong") for i in range(8))
    )
    done.set()
    await tick
    assert [r is not None for r in results] == [i % 2 == 1 for i in range(8)]
    # On the loop, every tick would wait a whole check; off it, nearly every tick is on time
    # (the 90th percentile leaves room for the other processes sharing these CPUs).
    gaps.sort()
    assert len(gaps) > 10
    assert gaps[int(len(gaps) * 0.9)] < cost / 2, (cost, gaps[-5:])
    assert await accounts.user_for_token(next(r for r in results if r)) is not None


async def test_unknown_user_is_checked_too(accounts: Accounts) -> None:
    assert await accounts.login("nobody", "the-password") is None
