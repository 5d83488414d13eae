"""Container resource usage samples."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiodocker

from dockmesh.docker._api import iter_json_lines, object_ref, open_stream
from dockmesh.docker.errors import DockerFailure, docker_errors

__all__ = ["cpu_percent", "memory_used", "stats_once", "stats_row", "stream_stats"]


def _num(value: Any) -> float:
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


def cpu_percent(sample: Mapping[str, Any]) -> float:
    """CPU use in percent of one CPU, as ``docker stats`` computes it (Linux).

    0 without a baseline (empty ``precpu_stats``), where the CLI's formula would show
    the average since the container started.
    """
    cpu = sample.get("cpu_stats") or {}
    pre = sample.get("precpu_stats") or {}
    cpu_usage = cpu.get("cpu_usage") or {}
    cpu_delta = _num(cpu_usage.get("total_usage")) - _num((pre.get("cpu_usage") or {}).get("total_usage"))
    system_delta = _num(cpu.get("system_cpu_usage")) - _num(pre.get("system_cpu_usage"))
    if not _num(pre.get("system_cpu_usage")):
        return 0.0  # no baseline sample yet (first streamed sample, one-shot)
    online = _num(cpu.get("online_cpus")) or float(len(cpu_usage.get("percpu_usage") or []))
    if system_delta > 0 and cpu_delta > 0:
        return round(cpu_delta / system_delta * online * 100.0, 2)
    return 0.0


def memory_used(memory: Mapping[str, Any]) -> int:
    """Usage minus the page cache that can be dropped, as ``docker stats`` shows it."""
    usage = int(_num(memory.get("usage")))
    detail = memory.get("stats") or {}
    for key in ("total_inactive_file", "inactive_file"):  # cgroup v1, then v2
        if key in detail:
            inactive = int(_num(detail[key]))
            return usage - inactive if inactive < usage else usage
    return usage


def stats_row(sample: Mapping[str, Any]) -> dict[str, Any]:
    """Trim one engine stats sample."""
    memory = sample.get("memory_stats") or {}
    networks = sample.get("networks") or {}
    return {
        "cpu_percent": cpu_percent(sample),
        "mem_used": memory_used(memory),
        "mem_limit": int(_num(memory.get("limit"))),
        "pids": int(_num((sample.get("pids_stats") or {}).get("current"))),
        "net_rx": int(sum(_num(n.get("rx_bytes")) for n in networks.values())),
        "net_tx": int(sum(_num(n.get("tx_bytes")) for n in networks.values())),
        "read_at": str(sample.get("read", "")),
    }


async def stream_stats(docker: aiodocker.Docker, ref: str) -> AsyncIterator[dict[str, Any]]:
    """One trimmed row per engine sample (about one a second) until the container stops."""
    object_ref(ref)
    with docker_errors():
        async with open_stream(docker, f"containers/{ref}/stats", params={"stream": True}) as resp:
            async for sample in iter_json_lines(resp):
                yield stats_row(sample)


async def stats_once(docker: aiodocker.Docker, ref: str, *, one_shot: bool = False) -> dict[str, Any]:
    """One trimmed sample.

    By default (``stream=false``) the engine waits for two collector ticks (1-2 s) so
    ``precpu_stats`` is filled and ``cpu_percent`` is meaningful.  ``one_shot=True``
    (API >= 1.41) answers with the next tick (up to 1 s) but without a CPU baseline:
    ``cpu_percent`` is then 0.
    aiodocker's ``stats(stream=False)`` returns a list and knows no ``one-shot``, so the
    endpoint is queried directly.
    """
    object_ref(ref)
    params: dict[str, Any] = {"stream": False}
    if one_shot:
        params["one-shot"] = True
    with docker_errors():
        sample = await docker._query_json(f"containers/{ref}/stats", params=params)
    if not isinstance(sample, dict) or not sample:
        raise DockerFailure(502, "engine_error", "the engine returned no stats sample")
    return stats_row(sample)
