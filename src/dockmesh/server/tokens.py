"""Enrolment and API tokens: random, shown once, stored as SHA-256; failed redemptions rate-limited."""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable

from dockmesh.pki.pin import make_token, well_formed

__all__ = ["FailureLimiter", "make_token", "token_hash", "well_formed"]


def token_hash(token: str) -> str:
    # A fast hash is enough: the token carries 256 bits of entropy, so there is nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


class FailureLimiter:
    """At most `limit` failures per `window` seconds per client address."""

    def __init__(self, clock: Callable[[], float], limit: int = 10, window: float = 60.0) -> None:
        self._clock = clock
        self._limit = limit
        self._window = window
        self._failures: dict[str, deque[float]] = {}

    def _prune(self, q: deque[float], now: float) -> deque[float]:
        while q and q[0] <= now - self._window:
            q.popleft()
        return q

    def blocked(self, client: str) -> bool:
        q = self._failures.get(client)
        return q is not None and len(self._prune(q, self._clock())) >= self._limit

    def fail(self, client: str) -> None:
        now = self._clock()
        self._prune(self._failures.setdefault(client, deque()), now).append(now)
        if len(self._failures) > 10_000:
            # Bounded memory under a spray from many addresses: forget every address with no recent failure.
            for key in [k for k, q in self._failures.items() if not self._prune(q, now)]:
                del self._failures[key]
