"""What an agent says about its host (hello facts, heartbeat metrics), checked where it enters.

An agent is not trusted to be well-formed: one that sent `{"metrics": {}}` or a string for a number
made every page that renders hosts answer 500 for every user. Everything stored from an agent passes
through here, so the views can rely on the types and ranges below.
"""

from __future__ import annotations

import math
from typing import Any

FACT_KEYS = (
    "hostname",
    "os",
    "arch",
    "python",
    "docker_version",
    "docker_api_version",
    "version",
    "capabilities",
)
MAX_FACT = 200  # characters of one fact string
MAX_CAPABILITIES = 32
MAX_CAPABILITY = 64
MAX_METRIC_KEYS = 64  # a heartbeat's metrics object; today's agent sends 8

_BYTES_MAX = 1 << 62  # 4 EiB: larger is not a real machine
_COUNT_MAX = 10_000_000
_CORES_MAX = 65_536


class BadMetrics(ValueError):
    """The heartbeat's metrics were refused; the message says why (agent text escaped)."""


def escaped(value: Any, limit: int = 80) -> str:
    """An agent-supplied value for a log line: repr (no raw control characters), cut to `limit`."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fact(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    text = str(value)
    # Control characters have no business in a hostname or version and would garble the UI.
    text = "".join(ch for ch in text[: MAX_FACT * 2] if ch.isprintable())
    return text[:MAX_FACT]


def clean_facts(value: Any) -> dict[str, Any]:
    """The known host facts as short printable strings (capabilities: a short list); the rest dropped."""
    if not isinstance(value, dict):
        return {}
    facts: dict[str, Any] = {}
    for key in FACT_KEYS:
        if key not in value:
            continue
        raw = value[key]
        if key == "capabilities":
            if isinstance(raw, list):
                caps = [c[:MAX_CAPABILITY] for c in raw[:MAX_CAPABILITIES] if isinstance(c, str)]
                facts[key] = [c for c in caps if c.isprintable()]
            continue
        text = _fact(raw)
        if text is not None:
            facts[key] = text
    return facts


def _number(metrics: dict[str, Any], key: str, upper: float, default: float | None = None) -> float:
    value = metrics.get(key, default)
    if value is None:
        raise BadMetrics(f"{key} is missing")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadMetrics(f"{key} is not a number: {escaped(value)}")
    if not math.isfinite(value) or value < 0:
        raise BadMetrics(f"{key} must be finite and not negative: {escaped(value)}")
    if value > upper:
        raise BadMetrics(f"{key} is out of range: {escaped(value)}")
    return float(value)


def clean_metrics(value: Any) -> dict[str, Any]:
    """Heartbeat metrics with checked types and ranges; raises BadMetrics for a sample to ignore.

    CPU above 100 % is clamped (rounding), used above total is clamped to total; NaN, infinities,
    negatives, non-numbers and missing memory/disk fields refuse the whole sample, so a host's
    tile shows its last good sample instead of a mix.
    """
    if not isinstance(value, dict):
        raise BadMetrics(f"metrics must be an object, not {type(value).__name__}")
    if len(value) > MAX_METRIC_KEYS:
        raise BadMetrics(f"metrics has {len(value)} keys (at most {MAX_METRIC_KEYS})")
    cpu = _number(value, "cpu_percent", math.inf)
    mem_total = int(_number(value, "mem_total", _BYTES_MAX))
    disk_total = int(_number(value, "disk_total", _BYTES_MAX))
    total = int(_number(value, "containers_total", _COUNT_MAX, 0))
    return {
        "cpu_percent": min(cpu, 100.0),
        "cpu_count": max(1, int(_number(value, "cpu_count", _CORES_MAX, 1))),
        "mem_used": min(int(_number(value, "mem_used", _BYTES_MAX)), mem_total),
        "mem_total": mem_total,
        "disk_used": min(int(_number(value, "disk_used", _BYTES_MAX)), disk_total),
        "disk_total": disk_total,
        "containers_running": min(int(_number(value, "containers_running", _COUNT_MAX, 0)), total),
        "containers_total": total,
    }
