"""Enrolment and API tokens: random, shown once, stored as SHA-256; failed redemptions rate-limited."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable

from dockmesh.pki.pin import make_token, well_formed

__all__ = ["FailureLimiter", "make_token", "token_hash", "well_formed"]


def token_hash(token: str) -> str:
    # A fast hash is enough: the token carries 256 bits of entropy, so there is nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


class FailureLimiter:
    """At most `limit` failures per `window` seconds per key, O(1) per call, at most `capacity` keys.

    Fixed windows: a key's window opens at its first failure, and once `limit` failures fall in it the
    key stays blocked until the window closes. Each key costs one small tuple (a list of timestamps per
    key cost ten floats, and pruning scanned the whole table on every failure past 10,000 keys).
    Keys are kept in order of their last failure; past `capacity` the least recent one is dropped, which
    is the one whose window most likely closed already. Which key a request counts against (an IPv6 /64,
    the client behind a trusted proxy) is `server.clients`' business.
    """

    def __init__(
        self, clock: Callable[[], float], limit: int = 10, window: float = 60.0, capacity: int = 65_536
    ) -> None:
        self._clock = clock
        self._limit = limit
        self._window = window
        self._capacity = capacity
        self._windows: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self._in_flight: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._windows)

    def blocked(self, key: str) -> bool:
        entry = self._windows.get(key)
        if entry is None:
            return False  # asking never adds a key: only failures take memory
        opened, count = entry
        if self._clock() - opened >= self._window:
            del self._windows[key]
            return False
        return count >= self._limit

    def fail(self, key: str) -> None:
        now = self._clock()
        opened, count = self._windows.pop(key, (now, 0))
        if now - opened >= self._window:
            opened, count = now, 0
        self._windows[key] = (opened, count + 1)  # re-inserted last: the most recent failure
        if len(self._windows) > self._capacity:
            self._windows.popitem(last=False)

    def forgive(self, key: str) -> None:
        """Take back one failure: for checks counted as failures up front, when they turn out right."""
        entry = self._windows.get(key)
        if entry is not None and entry[1] > 0:
            self._windows[key] = (entry[0], entry[1] - 1)

    def enter(self, key: str, most: int = 128) -> bool:
        """Start an attempt whose verdict needs an await (a database lookup); False past `most` at once.

        `blocked` only sees failures already counted: without this bound, any number of concurrent
        guesses from one client would pass it before the first of them failed. A bound, rather than
        counting each attempt as failed until proven right, lets many hosts behind one address enrol at
        once. Each `enter` that returns True needs its `leave`.
        """
        count = self._in_flight.get(key, 0)
        if count >= most:
            return False
        self._in_flight[key] = count + 1
        return True

    def leave(self, key: str) -> None:
        count = self._in_flight.pop(key, 0) - 1
        if count > 0:
            self._in_flight[key] = count  # a key with nothing in flight takes no memory
