"""Exponential backoff with full jitter (AWS style): the delay is uniform in [0, min(cap, base·2^n)]."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    def __init__(
        self, base: float = 1.0, cap: float = 30.0, rand: Callable[[], float] = random.random
    ) -> None:
        self.base = base
        self.cap = cap
        self._rand = rand
        self.attempt = 0

    def next(self) -> float:
        ceiling = min(self.cap, self.base * (2**self.attempt))
        self.attempt = min(self.attempt + 1, 32)
        return float(ceiling * self._rand())

    def reset(self) -> None:
        self.attempt = 0
