"""Volume throughput host → host: a stack migration's copy vs a direct `tar c | tar x` pipe between engines.

    PYTHONPATH=src python -m bench.migration [--mb 256] [--rounds 3] [--json out.json]

Two real engines, a real server and two real `dockmesh-agent` processes (mTLS WebSocket links), all on this
machine. "Through dockmesh": the migration of a one-volume stack; the copy is timed from the snapshot that
enters phase `copying` to the one that leaves it, as a client following `/api/v1/migrations/{id}/events`
sees them (so it includes the per-volume SHA-256 on both ends and the helper containers). "Direct": `docker run
… tar c` on engine 1 piped into `docker run -i … tar x` on engine 2, the same data, timed around the pipe
(including both containers' start). Rounds alternate which path goes first; medians are reported.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.fleet import BUSYBOX_IMAGE, Engine, import_busybox, wait_for
from tests.integration.harness import AgentProc, ServerProc

STACK = f"""\
services:
  app:
    image: {BUSYBOX_IMAGE}
    command: ["sleep", "3600"]
    network_mode: none
    stop_grace_period: 1s
    volumes: ["data:/data"]
volumes:
  data: {{}}
"""


def direct(src: Engine, dst: Engine, volume: str) -> float:
    dst.docker("volume", "create", "bench-direct")
    out = ["docker", "-H", src.docker_host, "run", "--rm", "--network", "none"]
    into = ["docker", "-H", dst.docker_host, "run", "--rm", "-i", "--network", "none"]
    started = time.perf_counter()
    reader = subprocess.Popen(
        [*out, "-v", f"{volume}:/data:ro", BUSYBOX_IMAGE, "tar", "c", "-C", "/data", "."],
        stdout=subprocess.PIPE,
    )
    writer = subprocess.run(
        [*into, "-v", "bench-direct:/data", BUSYBOX_IMAGE, "tar", "x", "-C", "/data"],
        stdin=reader.stdout,
        check=True,
    )
    assert reader.stdout is not None
    reader.stdout.close()
    if reader.wait() != 0 or writer.returncode != 0:
        raise RuntimeError("the direct pipe failed")
    elapsed = time.perf_counter() - started
    dst.docker("volume", "rm", "bench-direct")
    return elapsed


def migrate(server: ServerProc, to: str) -> tuple[float, int]:
    """(seconds in phase copying, bytes copied) of one migration, as a follower sees it."""
    api = server.api
    started = api.post("/api/v1/stacks/bench/migrate", {"host": to}, expect=202)
    begin = end = None
    last: dict[str, Any] = {}
    req = urllib.request.Request(f"{server.url}/api/v1/migrations/{started['id']}/events")
    req.add_header("Authorization", f"Bearer {api.token}")
    with urllib.request.urlopen(req, timeout=600) as resp:
        lines = [(time.perf_counter(), line) for line in resp if line.strip()]
    for now, line in lines:
        last = json.loads(line)
        if last["phase"] == "copying" and begin is None:
            begin = now
        if last["phase"] != "copying" and begin is not None and end is None:
            end = now
    if last.get("state") != "done" or begin is None or end is None:
        raise RuntimeError(f"the migration did not finish: {last}")
    return end - begin, int(last["bytes_done"])


def run(base: Path, mb: int, rounds: int) -> dict[str, Any]:
    engines = [Engine(f"mb{i}", base / f"e{i}") for i in (1, 2)]
    server: ServerProc | None = None
    agents: list[AgentProc] = []
    try:
        for engine in engines:
            engine.start()
            import_busybox(engine)
        server = ServerProc(base / "s").start()
        ids = []
        for i, engine in enumerate(engines):
            created = server.create_agent(f"bench-{i}")
            agent = AgentProc(base / f"a{i}", server, engine.docker_host, created["token"], created["id"])
            agents.append(agent.start())
            ids.append(created["id"])
        for agent_id in ids:
            wait_for(lambda a=agent_id: (server.api.host(a) or {}).get("metrics"), 60, message="host not up")
        assert server.api.call("PUT", "/api/v1/stacks/bench", {"compose": STACK})[0] == 200
        deploy = server.api.post("/api/v1/stacks/bench/deploy", {"host": ids[0]}, expect=202)
        wait_for(lambda: server.api.get(f"/api/v1/deploys/{deploy['id']}")["state"] == "done", 120)
        engines[0].docker(
            "run", "--rm", "--network", "none", "-v", "bench_data:/data", BUSYBOX_IMAGE,
            "sh", "-c", f"dd if=/dev/urandom of=/data/blob bs=1M count={mb} 2>/dev/null",
        )  # fmt: skip
        times: dict[str, list[float]] = {"direct": [], "dockmesh": []}
        where = 0  # index of the engine holding the stack
        copied = 0
        for r in range(rounds):
            for path in ("direct", "dockmesh") if r % 2 == 0 else ("dockmesh", "direct"):
                if path == "direct":
                    times[path].append(direct(engines[where], engines[1 - where], "bench_data"))
                else:
                    seconds, copied = migrate(server, ids[1 - where])
                    times[path].append(seconds)
                    engines[where].docker(
                        "volume", "rm", "bench_data"
                    )  # the kept copy; the next move needs room
                    where = 1 - where
        d, m = statistics.median(times["direct"]), statistics.median(times["dockmesh"])
        size = mb * 2**20
        return {
            "mb": mb,
            "rounds": rounds,
            "bytes_copied": copied,
            "direct_s": times["direct"],
            "dockmesh_s": times["dockmesh"],
            "direct_mb_s": size / d / 1e6,
            "dockmesh_mb_s": size / m / 1e6,
            "ratio": d / m,
        }
    finally:
        for agent in agents:
            agent.stop()
        if server is not None:
            server.stop()
        for engine in engines:
            engine.stop()


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.migration")
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="write the raw results here")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="dmm", dir="/tmp"))
    try:
        results = run(base, args.mb, args.rounds)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    print("| volume | direct `tar \\| tar` (median) | through dockmesh (median) | ratio | target |")
    print("|---|---|---|---|---|")
    print(
        f"| {results['mb']} MiB | {results['direct_mb_s']:.1f} MB/s | {results['dockmesh_mb_s']:.1f} MB/s "
        f"| {results['ratio']:.2f} | ≥ 0.5 |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
