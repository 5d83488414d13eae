"""A token bucket: a burst of actions at once, then a steady rate; the caller supplies the time."""

from __future__ import annotations


class TokenBucket:
    """`burst` actions at once, refilled at one per `every` seconds."""

    __slots__ = ("_stamp", "_tokens", "burst", "every", "warned")

    def __init__(self, burst: int, every: float, now: float) -> None:
        self.burst = burst
        self.every = every
        self._tokens = float(burst)
        self._stamp = now
        self.warned = False  # the caller logs the first refusal of a run, not every one

    def take(self, now: float) -> bool:
        """Spend one token if there is one; False means the action is over its rate."""
        self._tokens = min(float(self.burst), self._tokens + max(0.0, now - self._stamp) / self.every)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            self.warned = False
            return True
        return False

    def wait(self) -> float:
        """Seconds until the next token (as of the last take)."""
        return max(0.0, (1.0 - self._tokens) * self.every)
