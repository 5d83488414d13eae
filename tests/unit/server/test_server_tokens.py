"""Token format, CA pins, token hashing and the failed-redemption limiter."""

from __future__ import annotations

import hashlib

import pytest

from dockmesh.pki.pin import make_token, pin_matches, token_pin, well_formed
from dockmesh.server.tokens import FailureLimiter, token_hash

CA_SHA = hashlib.sha256(b"ca certificate der").hexdigest()


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- pin.py ------------------------------------------------------------------------------------


def test_make_token_carries_the_pin_and_is_well_formed() -> None:
    token = make_token(CA_SHA)
    secret, dot, pin = token.partition(".")
    assert dot == "."
    assert pin == CA_SHA
    assert 32 <= len(secret) <= 64
    assert well_formed(token)
    assert token_pin(token) == CA_SHA


def test_make_token_is_random() -> None:
    tokens = {make_token(CA_SHA) for _ in range(50)}
    assert len(tokens) == 50


@pytest.mark.parametrize(
    "token",
    ["a" * 32, "A-b_" * 8, "a" * 64, "x" * 43 + "." + CA_SHA],
)
def test_well_formed_accepts(token: str) -> None:
    assert well_formed(token)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a" * 31,
        "a" * 65,
        "a" * 43 + ".",
        "a" * 43 + "." + CA_SHA.upper(),
        "a" * 43 + "." + CA_SHA[:-1],
        "a" * 43 + "." + CA_SHA + "0",
        "a" * 43 + "=",
        "a" * 43 + " ",
        "a" * 43 + "\n",
        "." + CA_SHA,
    ],
)
def test_well_formed_rejects(token: str) -> None:
    assert not well_formed(token)


def test_token_pin_absent_without_dot_or_with_short_pin() -> None:
    assert token_pin("a" * 43) is None
    assert token_pin("a" * 43 + ".") is None
    assert token_pin("a" * 43 + ".abc") is None
    assert token_pin("a" * 43 + "." + CA_SHA) == CA_SHA


def test_pin_matches_is_case_insensitive_and_exact() -> None:
    der = b"ca certificate der"
    assert pin_matches(der, CA_SHA)
    assert pin_matches(der, CA_SHA.upper())
    assert not pin_matches(der, hashlib.sha256(b"other").hexdigest())
    assert not pin_matches(b"ca certificate dex", CA_SHA)
    assert not pin_matches(der, CA_SHA[:-1])


# --- tokens.py ---------------------------------------------------------------------------------


def test_token_hash_is_sha256_hex() -> None:
    assert token_hash("abc") == hashlib.sha256(b"abc").hexdigest()
    assert token_hash("abc") != token_hash("abd")
    assert len(token_hash(make_token(CA_SHA))) == 64


def test_limiter_blocks_after_limit_failures() -> None:
    clock = FakeClock()
    limiter = FailureLimiter(clock, limit=3, window=60.0)
    for _ in range(2):
        limiter.fail("10.0.0.1")
        assert not limiter.blocked("10.0.0.1")
    limiter.fail("10.0.0.1")
    assert limiter.blocked("10.0.0.1")
    assert not limiter.blocked("10.0.0.2")


def test_limiter_window_opens_at_the_first_failure_and_closes_a_window_later() -> None:
    clock = FakeClock()
    limiter = FailureLimiter(clock, limit=3, window=60.0)
    limiter.fail("c")
    clock.now += 30
    limiter.fail("c")
    clock.now += 29
    limiter.fail("c")
    assert limiter.blocked("c")
    clock.now += 1  # the window (opened by the first failure) is over: a fresh one starts
    assert not limiter.blocked("c")
    limiter.fail("c")
    assert not limiter.blocked("c")
    limiter.fail("c")
    limiter.fail("c")
    assert limiter.blocked("c")


def test_limiter_unblocks_after_the_window_passes() -> None:
    clock = FakeClock()
    limiter = FailureLimiter(clock, limit=2, window=10.0)
    limiter.fail("c")
    limiter.fail("c")
    assert limiter.blocked("c")
    clock.now += 9.9
    assert limiter.blocked("c")
    clock.now += 0.1
    assert not limiter.blocked("c")


def test_limiter_default_is_ten_per_minute() -> None:
    clock = FakeClock()
    limiter = FailureLimiter(clock)
    for _ in range(9):
        limiter.fail("c")
    assert not limiter.blocked("c")
    limiter.fail("c")
    assert limiter.blocked("c")
    clock.now += 60
    assert not limiter.blocked("c")


def test_limiter_asking_takes_no_memory() -> None:
    clock = FakeClock()
    limiter = FailureLimiter(clock, limit=3, window=60.0)
    for i in range(20_000):
        assert not limiter.blocked(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
    assert len(limiter) == 0


def test_limiter_size_is_capped_under_a_spray_of_failures() -> None:
    clock = FakeClock()
    limiter = FailureLimiter(clock, limit=3, window=60.0, capacity=1000)
    for _ in range(3):
        limiter.fail("attacker")
    for i in range(100_000):
        limiter.fail(f"2001:db8:{i // 65536:x}:{i % 65536:x}::/64")
        assert len(limiter) <= 1000
    assert len(limiter) == 1000
    # The least recent failures went first; the latest ones are all still counted.
    assert not limiter.blocked("attacker")
    for _ in range(2):
        limiter.fail("2001:db8:1:869f::/64")
    assert limiter.blocked("2001:db8:1:869f::/64")


def test_limiter_keeps_a_key_that_keeps_failing() -> None:
    clock = FakeClock()
    limiter = FailureLimiter(clock, limit=3, window=60.0, capacity=100)
    for i in range(1000):
        limiter.fail(f"k{i}")
        if i % 50 == 0:
            limiter.fail("attacker")  # each failure moves it to the young end
    assert limiter.blocked("attacker")


def test_limiter_forgets_a_closed_window_when_asked() -> None:
    clock = FakeClock()
    limiter = FailureLimiter(clock, limit=3, window=60.0)
    limiter.fail("c")
    clock.now += 60
    assert not limiter.blocked("c")
    assert len(limiter) == 0


def test_limiter_cost_does_not_grow_with_the_table() -> None:
    # O(1): a failure at a full table of 65,536 keys costs what one at an empty table does (no scans).
    import time

    def per_call(limiter: FailureLimiter, prefix: str) -> float:
        started = time.perf_counter()
        for i in range(20_000):
            limiter.fail(f"{prefix}{i}")
        return (time.perf_counter() - started) / 20_000

    clock = FakeClock()
    full = FailureLimiter(clock)
    for i in range(70_000):
        full.fail(f"fill{i}")
    assert len(full) == 65_536
    empty_cost = min(per_call(FailureLimiter(clock, capacity=10**6), f"e{n}-") for n in range(3))
    full_cost = min(per_call(full, f"f{n}-") for n in range(3))
    assert full_cost < empty_cost * 5 + 5e-6


def test_limiter_forgive_takes_back_one_failure() -> None:
    clock = FakeClock()
    limiter = FailureLimiter(clock, limit=2, window=60.0)
    limiter.fail("c")
    limiter.fail("c")
    assert limiter.blocked("c")
    limiter.forgive("c")
    assert not limiter.blocked("c")
    limiter.forgive("c")
    limiter.forgive("c")  # never below zero
    limiter.forgive("unknown")  # and never adds a key
    assert len(limiter) == 1
    limiter.fail("c")
    assert not limiter.blocked("c")


def test_attempts_in_flight_are_bounded_per_key() -> None:
    limiter = FailureLimiter(lambda: 0.0)
    assert all(limiter.enter("a", most=3) for _ in range(3))
    assert not limiter.enter("a", most=3)  # a fourth concurrent guess waits for a verdict
    assert limiter.enter("b", most=3)  # other clients are not affected
    limiter.leave("a")
    assert limiter.enter("a", most=3)
    for _ in range(3):
        limiter.leave("a")
    limiter.leave("b")
    assert limiter._in_flight == {}  # nothing in flight takes no memory
    assert len(limiter) == 0  # and attempts are not failures
