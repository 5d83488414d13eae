"""`python -m bench.soak --artifact PEX [--baseline PEX] [--minutes N]`: the agent's memory, idle and over time.

Each artifact runs as the production agent process (the pex, as the installer starts it) against its own
real dockerd and server. Reported: idle RSS once online (before any request) in the process that enrolled,
and again after a restart on its state (every later start: no enrolment code loaded), then a soak that opens and
closes a log stream, a stats stream and an exec session, over and over, for N minutes; RSS is sampled
after every round. Growth compares the end with the RSS after a one-minute warm-up (the allocator's
first arenas and the handler modules loaded by the first requests are not growth).
Two artifacts (a candidate and the baseline) soak side by side, so they share the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from tests.fleet import short_tmpdir

from bench.engines import RealHost
from bench.fleetctl import rss_bytes

MIB = 2**20
WARMUP_S = 60.0


def tree(pid: int) -> list[int]:
    """`pid` and its descendants: the supervised artifact runs the agent as a child of its supervisor."""
    found = [pid]
    for p in found:
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                found.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                continue  # the task ended meanwhile
    return found


def tree_rss(pid: int) -> int:
    """What the host pays: the RSS of `pid` and of every process below it (supervisor plus agent)."""
    total = 0
    for p in tree(pid):
        try:
            total += rss_bytes(p)
        except OSError:
            continue
    return total


def leaf_rss(pid: int) -> int:
    """The agent's own RSS: the last process of the tree (the supervisor's child, or `pid` alone)."""
    return rss_bytes(tree(pid)[-1])


async def settled_rss(pid: int, timeout: float = 60.0, measure: Callable[[int], int] = tree_rss) -> int:
    """RSS once it holds still (five 1 s samples within 64 KiB), or the last sample after `timeout`."""
    samples: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        samples.append(measure(pid))
        last = samples[-5:]
        if len(last) == 5 and max(last) - min(last) <= 64 * 1024:
            break
        await asyncio.sleep(1.0)
    return samples[-1]


async def one_round(http: aiohttp.ClientSession, base: str, name: str) -> None:
    async with http.get(f"{base}/logs", params={"follow": "1", "tail": "10"}) as resp:
        resp.raise_for_status()
        await resp.content.readany()
    async with http.ws_connect(f"{base}/stats") as ws:
        msg = await ws.receive(timeout=30)
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise RuntimeError(f"stats answered {msg.type}: {msg.data!r}")
    async with http.ws_connect(f"{base}/exec", params=[("cmd", "cat"), ("tty", "0")]) as ws:
        await ws.send_bytes(b"ping\n")
        msg = await ws.receive(timeout=30)
        if msg.type != aiohttp.WSMsgType.BINARY:
            raise RuntimeError(f"exec answered {msg.type}: {msg.data!r}")


async def soak(label: str, artifact: Path, minutes: float, work: Path) -> dict[str, Any]:
    argv = [str(artifact), "run"]
    # As the installer starts it: with one interpreter named (this one, so both artifacts run the same
    # CPython), not the first python3.x on the PATH.
    env = {"PEX_ROOT": str(work / "pexroot"), "PEX_PYTHON": os.path.realpath(sys.executable)}
    # The first start unpacks the pex (a minute on a busy machine): do it before the enrolment clock runs.
    unpack = await asyncio.create_subprocess_exec(
        str(artifact), "--version", env={**os.environ, **env}, stdout=asyncio.subprocess.DEVNULL
    )
    if await unpack.wait() != 0:
        raise RuntimeError(f"{artifact} --version failed")
    async with RealHost(work, agent_argv=argv, agent_env=env) as host:
        assert host.api
        enrolling = await settled_rss(host.agent.pid)
        await host.restart_agent()
        pid = host.agent.pid
        idle = await settled_rss(pid)
        idle_agent = await settled_rss(pid, measure=leaf_rss)
        processes = len(tree(pid))
        name = "soak"
        host.engine.docker(
            "run", "-d", "--network", "none", "--name", name, "local/busybox:1",
            "sh", "-c", "while true; do echo soak line; sleep 1; done",
        )  # fmt: skip
        base = f"{host.server.url}/api/v1/hosts/{host.agent_id}/containers/{name}"
        headers = {"Authorization": f"Bearer {host.api.token}"}
        samples: list[tuple[float, int]] = []
        rounds = 0
        started = time.monotonic()
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(headers=headers, timeout=timeout) as http:
            while time.monotonic() - started < minutes * 60:
                await one_round(http, base, name)
                rounds += 1
                samples.append((time.monotonic() - started, tree_rss(pid)))
        warm = next((rss for t, rss in samples if t >= min(WARMUP_S, minutes * 30)), samples[0][1])
        end = await settled_rss(pid)
        end_agent = await settled_rss(pid, measure=leaf_rss)
        peak = max(rss for _, rss in samples)
    print(f"bench.soak: {label} done ({rounds} rounds)", file=sys.stderr, flush=True)
    return {
        "artifact": artifact.name,
        "artifact_mib": round(artifact.stat().st_size / MIB, 1),
        "enrolling_idle_rss_mib": round(enrolling / MIB, 1),
        "processes": processes,
        "idle_rss_mib": round(idle / MIB, 1),
        "idle_agent_rss_mib": round(idle_agent / MIB, 1),
        "end_agent_rss_mib": round(end_agent / MIB, 1),
        "warm_rss_mib": round(warm / MIB, 1),
        "end_rss_mib": round(end / MIB, 1),
        "peak_rss_mib": round(peak / MIB, 1),
        "growth_pct": round(100.0 * (end - warm) / warm, 1),
        "rounds": rounds,
        "minutes": minutes,
    }


async def run(artifacts: dict[str, Path], minutes: float) -> dict[str, Any]:
    works = {label: short_tmpdir(f"soak{label[:1]}") for label in artifacts}
    results = await asyncio.gather(
        *(soak(label, path, minutes, works[label]) for label, path in artifacts.items())
    )
    return dict(zip(artifacts, results, strict=True))


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.soak")
    parser.add_argument("--artifact", required=True, help="the agent pex to measure")
    parser.add_argument("--baseline", help="another agent pex, soaked side by side for comparison")
    parser.add_argument("--minutes", type=float, default=60.0, help="soak duration (default 60)")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    artifacts = {"candidate": Path(args.artifact).resolve()}
    if args.baseline:
        artifacts["baseline"] = Path(args.baseline).resolve()
    for path in artifacts.values():
        if not os.access(path, os.X_OK):
            parser.error(f"{path} is not an executable agent artifact")
    results = asyncio.run(run(artifacts, args.minutes))
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
