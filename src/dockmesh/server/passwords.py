"""argon2 off the event loop, two at a time, with a bounded queue.

One verification costs ~110 ms of CPU by design. On the loop that stalls every heartbeat, stream and
page for as long; a login flood would stall them for good. argon2-cffi releases the GIL while it hashes,
so a small thread pool runs it beside the loop. Two workers bound the CPU a flood can take; past
`queue` waiting jobs a caller gets `Busy` at once (the API answers 503) instead of a wait without end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

T = TypeVar("T")

WORKERS = 2
QUEUE = 32
# Niceness added to the hashing threads: the loop thread wins the CPU whenever it wakes. On a busy
# two-core host two argon2 threads at the same priority put the loop's p99 wake-up at ~70 ms; at +10,
# ~20 ms (measured with a 100 ms timer while two threads verify without pause).
NICE = 10


def _lower_priority() -> None:
    """Runs in each hashing thread: on Linux, niceness is per thread (the native id names it)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)


class Busy(Exception):
    """Too many password checks in flight; try again shortly."""


class Passwords:
    def __init__(
        self, workers: int = WORKERS, queue: int = QUEUE, hasher: PasswordHasher | None = None
    ) -> None:
        self._hasher = hasher or PasswordHasher()
        self._pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="argon2", initializer=_lower_priority
        )
        self._capacity = workers + queue
        self._lock = threading.Lock()
        self._pending = 0

    @property
    def pending(self) -> int:
        return self._pending

    def hash_now(self, password: str) -> str:
        """Hash on the calling thread: for start-up, before the server serves anyone."""
        return self._hasher.hash(password)

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        return await self._run(self._check, password_hash, password)

    def _check(self, password_hash: str, password: str) -> bool:
        try:
            return bool(self._hasher.verify(password_hash, password))
        except (VerificationError, InvalidHashError):
            return False

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        with self._lock:
            if self._pending >= self._capacity:
                raise Busy("too many password checks in progress")
            self._pending += 1
        job = self._pool.submit(fn, *args)
        # Released when the job ends or is cancelled, not when the caller stops waiting: a client that
        # hangs up must not free a slot while its hash still runs (the queue would grow without bound).
        job.add_done_callback(self._release)
        return await asyncio.wrap_future(job)

    def _release(self, _job: Future[Any]) -> None:
        with self._lock:
            self._pending -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
