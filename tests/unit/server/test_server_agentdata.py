"""What an agent says about its host is checked where it enters: facts, metrics, call rates."""

from __future__ import annotations

import math
from typing import Any

import pytest

from dockmesh.link import RemoteError
from dockmesh.server.agentdata import MAX_FACT, BadMetrics, clean_facts, clean_metrics, escaped
from dockmesh.server.bucket import TokenBucket
from dockmesh.server.gateway import HELLO_RATE, RENEW_RATE, Conn, Gateway

GOOD: dict[str, Any] = {
    "cpu_percent": 12.5,
    "cpu_count": 4,
    "mem_used": 1000,
    "mem_total": 4000,
    "disk_used": 10,
    "disk_total": 100,
    "containers_running": 2,
    "containers_total": 3,
}


def test_a_good_sample_passes_unchanged() -> None:
    assert clean_metrics(GOOD) == GOOD


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("cpu_percent", "12"),
        ("cpu_percent", None),
        ("mem_used", True),
        ("mem_total", [1]),
        ("disk_used", {"a": 1}),
        ("cpu_percent", math.nan),
        ("mem_total", math.inf),
        ("disk_total", -math.inf),
        ("mem_used", -1),
        ("containers_running", -3),
        ("cpu_count", 10**9),
        ("disk_total", 10**30),
    ],
)
def test_bad_values_refuse_the_sample(key: str, value: Any) -> None:
    with pytest.raises(BadMetrics, match=key):
        clean_metrics({**GOOD, key: value})


@pytest.mark.parametrize("missing", ["cpu_percent", "mem_used", "mem_total", "disk_used", "disk_total"])
def test_missing_required_keys_refuse_the_sample(missing: str) -> None:
    sample = {k: v for k, v in GOOD.items() if k != missing}
    with pytest.raises(BadMetrics, match=missing):
        clean_metrics(sample)


@pytest.mark.parametrize("value", [{}, [], "metrics", 7, None, {f"k{i}": 0 for i in range(1000)}])
def test_anything_but_a_small_object_is_refused(value: Any) -> None:
    with pytest.raises(BadMetrics):
        clean_metrics(value)


def test_optional_counts_default_and_ranges_are_clamped() -> None:
    sample = {k: GOOD[k] for k in ("mem_total", "disk_total")}
    sample.update(cpu_percent=100.4, mem_used=9000, disk_used=500.0)
    cleaned = clean_metrics(sample)
    assert cleaned["cpu_percent"] == 100.0
    assert cleaned["mem_used"] == cleaned["mem_total"] == 4000
    assert cleaned["disk_used"] == 100
    assert (cleaned["cpu_count"], cleaned["containers_running"], cleaned["containers_total"]) == (1, 0, 0)
    assert clean_metrics({**GOOD, "containers_running": 9})["containers_running"] == 3


def test_facts_are_short_printable_strings() -> None:
    facts = clean_facts(
        {
            "hostname": "h" * 100_000,
            "os": "Linux\n\x1b[31mfake log line",
            "arch": {"nested": True},
            "python": 3.11,
            "version": True,
            "docker_version": None,
            "capabilities": ["heartbeat", 7, "renew\x00"] + ["x"] * 100,
            "unknown": "dropped",
        }
    )
    assert facts["hostname"] == "h" * MAX_FACT
    assert facts["os"] == "Linux[31mfake log line"
    assert facts["python"] == "3.11"
    assert "arch" not in facts
    assert "version" not in facts
    assert "docker_version" not in facts
    assert "unknown" not in facts
    assert facts["capabilities"][0] == "heartbeat"
    assert len(facts["capabilities"]) <= 32
    assert clean_facts("not an object") == {}


def test_log_text_is_escaped_and_short() -> None:
    text = escaped("evil\nINFO forged line\x1b[0m" + "x" * 500)
    assert "\n" not in text
    assert "\x1b" not in text
    assert len(text) <= 80


# --- the gateway keeps the last good sample and limits hello/renew ---------------------------------


class _Link:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send_event(self, name: str, body: dict[str, Any]) -> None:
        self.sent.append(name)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Seen:
    """The one store call a heartbeat makes: noting the time in memory for the next batch."""

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}

    def note_seen(self, agent_id: str, now: float) -> None:
        self.seen[agent_id] = now


def _gateway(clock: _Clock) -> Gateway:
    return Gateway(
        _Seen(),  # type: ignore[arg-type]  # the paths under test touch the store only to note heartbeats
        None,  # type: ignore[arg-type]  # nor the CA
        clock=clock,
        heartbeat_interval=10.0,
        cert_lifetime=3600.0,
        renew_grace=60.0,
    )


def _conn() -> Conn:
    return Conn("agent-1", _Link(), 0.0, "fp", ready=True)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"cpu_percent": "lots"},
        {**GOOD, "mem_used": math.nan},
        {**GOOD, "disk_total": -1},
        "metrics",
        None,
    ],
)
def test_a_bad_heartbeat_keeps_the_last_good_metrics(bad: Any) -> None:
    clock = _Clock()
    gateway, conn = _gateway(clock), _conn()
    gateway._on_event(conn, "heartbeat", {"metrics": GOOD})
    assert conn.metrics == GOOD
    assert conn.metrics_at == 1000.0
    clock.now += 10
    gateway._on_event(conn, "heartbeat", {"metrics": bad})
    assert conn.metrics == GOOD
    assert conn.metrics_at == 1000.0  # the age shows the sample is stale
    assert conn.link.sent == ["heartbeat", "heartbeat"]  # still answered: the agent is alive
    gateway._on_event(conn, "heartbeat", {"metrics": {**GOOD, "cpu_percent": 50.0}})
    assert conn.metrics is not None
    assert conn.metrics["cpu_percent"] == 50.0


def test_a_first_bad_heartbeat_leaves_no_metrics() -> None:
    gateway, conn = _gateway(_Clock()), _conn()
    gateway._on_event(conn, "heartbeat", {"metrics": {}})
    assert conn.metrics is None


@pytest.mark.parametrize(("method", "rate"), [("hello", HELLO_RATE), ("renew", RENEW_RATE)])
def test_hello_and_renew_are_rate_limited_per_agent(method: str, rate: tuple[int, float]) -> None:
    clock = _Clock()
    gateway, conn = _gateway(clock), _conn()
    burst, every = rate
    for _ in range(burst):
        gateway._check_rate(conn, method, rate)
    with pytest.raises(RemoteError) as info:
        gateway._check_rate(conn, method, rate)
    assert info.value.code == "rate_limited"
    # Another connection of the same agent shares the budget; another agent has its own.
    with pytest.raises(RemoteError):
        gateway._check_rate(Conn("agent-1", _Link(), 0.0, "fp2"), method, rate)  # type: ignore[arg-type]
    gateway._check_rate(Conn("agent-2", _Link(), 0.0, "fp3"), method, rate)  # type: ignore[arg-type]
    clock.now += every
    gateway._check_rate(conn, method, rate)


def test_token_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket(2, 10.0, now=0.0)
    assert bucket.take(0.0)
    assert bucket.take(0.0)
    assert not bucket.take(0.0)
    assert bucket.wait() == pytest.approx(10.0)
    assert not bucket.take(5.0)
    assert bucket.take(10.0)
    assert bucket.take(100.0)
    assert bucket.take(100.0)
    assert not bucket.take(100.0)
