"""Full-jitter exponential backoff with an injected random source."""

from __future__ import annotations

import random

import pytest

from dockmesh.agent.backoff import Backoff

ALMOST_ONE = 0.999999


def test_ceiling_doubles_up_to_the_cap() -> None:
    backoff = Backoff(base=1.0, cap=10.0, rand=lambda: ALMOST_ONE)
    delays = [backoff.next() for _ in range(7)]
    ceilings = [1, 2, 4, 8, 10, 10, 10]
    assert delays == pytest.approx([c * ALMOST_ONE for c in ceilings])
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert delay < ceiling


def test_base_scales_the_ceiling() -> None:
    backoff = Backoff(base=0.5, cap=3.0, rand=lambda: ALMOST_ONE)
    assert [backoff.next() for _ in range(5)] == pytest.approx(
        [0.5 * ALMOST_ONE, 1.0 * ALMOST_ONE, 2.0 * ALMOST_ONE, 3.0 * ALMOST_ONE, 3.0 * ALMOST_ONE]
    )


def test_rand_zero_gives_zero() -> None:
    backoff = Backoff(rand=lambda: 0.0)
    assert [backoff.next() for _ in range(10)] == [0.0] * 10


def test_reset_starts_over() -> None:
    backoff = Backoff(base=1.0, cap=30.0, rand=lambda: ALMOST_ONE)
    for _ in range(4):
        backoff.next()
    assert backoff.next() == pytest.approx(16 * ALMOST_ONE)
    backoff.reset()
    assert backoff.attempt == 0
    assert backoff.next() == pytest.approx(1 * ALMOST_ONE)
    assert backoff.next() == pytest.approx(2 * ALMOST_ONE)


def test_many_attempts_stay_at_the_cap() -> None:
    backoff = Backoff(base=1.0, cap=30.0, rand=lambda: ALMOST_ONE)
    for _ in range(1000):
        delay = backoff.next()
    assert delay == pytest.approx(30 * ALMOST_ONE)
    assert backoff.attempt == 32


def test_default_rand_stays_within_bounds() -> None:
    random.seed(1234)
    backoff = Backoff(base=1.0, cap=5.0)
    delays = [backoff.next() for _ in range(200)]
    assert all(0.0 <= d < 5.0 for d in delays)
    assert delays[0] < 1.0
    assert len(set(delays)) > 100  # jittered, not constant


def test_delay_is_a_float() -> None:
    assert isinstance(Backoff(base=1, cap=2, rand=lambda: 1).next(), float)


def test_a_refused_connect_is_retried_within_the_refused_cap() -> None:
    backoff = Backoff(base=1.0, cap=30.0, rand=lambda: ALMOST_ONE, refused_cap=2.0, refused_tries=60)
    delays = [backoff.next(refused=True) for _ in range(8)]
    assert delays == pytest.approx([c * ALMOST_ONE for c in (1, 2, 2, 2, 2, 2, 2, 2)])
    # The ordinary windows kept growing underneath: an error other than a refusal waits the full window.
    assert backoff.next() == pytest.approx(30 * ALMOST_ONE)


def test_a_long_outage_falls_back_to_the_ordinary_windows() -> None:
    backoff = Backoff(base=1.0, cap=30.0, rand=lambda: ALMOST_ONE, refused_cap=2.0, refused_tries=3)
    delays = [backoff.next(refused=True) for _ in range(6)]
    assert delays == pytest.approx([c * ALMOST_ONE for c in (1, 2, 2, 8, 16, 30)])


def test_reset_also_restarts_the_refused_count() -> None:
    backoff = Backoff(base=1.0, cap=30.0, rand=lambda: ALMOST_ONE, refused_cap=2.0, refused_tries=2)
    for _ in range(5):
        backoff.next(refused=True)
    backoff.reset()
    assert backoff.refused == 0
    assert [backoff.next(refused=True) for _ in range(3)] == pytest.approx(
        [1 * ALMOST_ONE, 2 * ALMOST_ONE, 4 * ALMOST_ONE]
    )
