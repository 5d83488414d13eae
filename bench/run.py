"""`python -m bench.run [--smoke] [--out BENCHMARKS.md]`: every benchmark, one report.

The full run takes about 15 minutes on 2 cores; `--smoke` runs each benchmark at a tiny size in about
a minute so CI notices when one breaks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import ssl
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from tests.pg import Postgres

import bench.engines as engines
from bench.engines import RealHost, enrol_online, logs_and_exec
from bench.report import render
from bench.simulated import fleet_ops, held, restart


def machine() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as fh:
        mem_kib = int(fh.readline().split()[1])
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "python": platform.python_version(),
        "openssl": ssl.OPENSSL_VERSION,
        "aiohttp": aiohttp.__version__,
        "kernel": platform.release(),
        "date": time.strftime("%Y-%m-%d"),
    }


async def on_postgresql(
    base: Path, n_held: int, n_restart: int, procs: tuple[int, int], settle: float, pause: float
) -> Any:
    """The largest hold and the restart again, with the server on PostgreSQL (the tests' throwaway cluster,
    on this machine too, so its CPU is in the figures like the load generator's)."""
    pg = Postgres()
    try:
        pg.start()
        held_env = {"DOCKMESH_DATABASE_URL": pg.create_database("held")}
        print(f"bench: holding {n_held} agents on PostgreSQL", file=sys.stderr, flush=True)
        result = {"held": await held(base / "pg-held", n_held, procs[0], settle, env=held_env)}
        print(f"bench: restart at {n_restart} hosts on PostgreSQL", file=sys.stderr, flush=True)
        restart_env = {"DOCKMESH_DATABASE_URL": pg.create_database("restart")}
        result["restart_agents"] = n_restart
        result["restart_s"] = await restart(base / "pg-restart", n_restart, procs[1], pause, env=restart_env)
        return result
    finally:
        pg.stop()


async def run(smoke: bool, base: Path, engines_: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine(), "smoke": smoke}
    sizes = [20] if smoke else [1000, 5000, 10000]
    procs = 1 if smoke else 4
    settle = 2.0 if smoke else 25.0
    cpu_window = 2.0 if smoke else 10.0
    results["held"] = []
    for n in sizes:
        print(f"bench: holding {n} agents", file=sys.stderr, flush=True)
        results["held"].append(await held(base / f"held-{n}", n, procs, settle, cpu_window=cpu_window))
    n_base = sizes[0]
    print(f"bench: stock 256 KiB TLS buffer at {n_base} agents (baseline)", file=sys.stderr, flush=True)
    results["held_stock"] = await held(
        base / "stock", n_base, procs, settle, env={"DOCKMESH_TLS_READ_BUFFER": str(256 * 1024)}
    )
    n_ops = 20 if smoke else 1000
    print(f"bench: fan-out, dashboard, restart at {n_ops} hosts", file=sys.stderr, flush=True)
    results["ops"] = await fleet_ops(base / "ops", n_ops, 1 if smoke else 2, pause=1.0 if smoke else 12.0)
    print("bench: real engine (enrol, logs, exec)", file=sys.stderr, flush=True)
    if smoke:
        engines.LOG_MB = 4
        engines.ROUNDS = 1
        engines.RTT_SAMPLES = 30
    async with RealHost(base / "real") as host:
        results["enrol"] = await enrol_online(host, 2 if smoke else 5)
        results["streams"] = await logs_and_exec(host)
    if "postgresql" in engines_:
        results["postgresql"] = await on_postgresql(
            base, sizes[-1], n_ops + 2, (procs, 1 if smoke else 2), settle, 1.0 if smoke else 12.0
        )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.run")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, about a minute")
    parser.add_argument("--out", help="write the Markdown report here (default: print it)")
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--from-json", help="render the report from raw results saved earlier; run nothing")
    parser.add_argument(
        "--engines",
        default="sqlite,postgresql",
        help="database engines for the server (comma-separated); every benchmark runs on SQLite, the largest "
        "hold and the restart also on each other engine listed (default: sqlite,postgresql)",
    )
    args = parser.parse_args()
    engines_ = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not set(engines_) <= {"sqlite", "postgresql"} or "sqlite" not in engines_:
        parser.error("--engines: sqlite (always) and optionally postgresql")
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
    else:
        base = Path(tempfile.mkdtemp(prefix="dmb", dir="/tmp"))
        try:
            results = asyncio.run(run(args.smoke, base, engines_))
        finally:
            shutil.rmtree(base, ignore_errors=True)
    report = render(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if args.out:
        Path(args.out).write_text(report)
    else:
        print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
