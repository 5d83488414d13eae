"""Exponential backoff with full jitter (AWS style): the delay is uniform in [0, min(cap, base·2^n)].

A refused connection (nothing listens at the server's address: it is restarting) is retried within
`refused_cap` for the first `refused_tries` refusals of an outage. A refusal is answered by the server's
kernel and costs its process nothing, so retrying it often is cheap; sleeping through a 16 s window
instead kept a fleet dark long after a restarted server was listening again (issue 9: 1,002 agents took
12-24 s to return after a restart whose server listened again after 2-6 s). After `refused_tries` the
outage is long (maintenance, a moved server) and the ordinary windows apply.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    def __init__(
        self,
        base: float = 1.0,
        cap: float = 30.0,
        rand: Callable[[], float] = random.random,
        *,
        refused_cap: float = 2.0,
        refused_tries: int = 60,
    ) -> None:
        self.base = base
        self.cap = cap
        self.refused_cap = refused_cap
        self.refused_tries = refused_tries
        self._rand = rand
        self.attempt = 0
        self.refused = 0

    def next(self, refused: bool = False) -> float:
        ceiling = min(self.cap, self.base * (2**self.attempt))
        # The ordinary count still grows, so a long outage continues where the windows would be.
        self.attempt = min(self.attempt + 1, 32)
        if refused and self.refused < self.refused_tries:
            self.refused += 1
            ceiling = min(ceiling, self.refused_cap)
        return float(ceiling * self._rand())

    def reset(self) -> None:
        self.attempt = 0
        self.refused = 0
