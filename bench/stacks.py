"""Deploy time of the issue-10 stack through the link vs the same containers created directly on the engine.

    PYTHONPATH=src python -m bench.stacks [--rounds 5] [--json out.json]

"Through the link": the agent's handlers served over the in-process link (the code path of every
host: stacks.deploy stream, deploy job, compose engine), timed from opening the stream to the result.
"Direct": the same network, volume and container bodies posted straight to the engine with aiodocker,
waiting for db's health the cheapest way (its health_status event), timed the same way.
Each round tears the stack down (untimed); the two paths alternate which goes first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiodocker
from tests.fleet import Engine, import_busybox
from tests.integration.compose_stack import STACK

from dockmesh.agent.handlers import Handlers
from dockmesh.compose import Project, load_project
from dockmesh.docker import compose
from dockmesh.docker.compose_config import container_body, network_body, volume_body
from dockmesh.docker.engine import connect
from dockmesh.docker.events import engine_events
from dockmesh.link import Link
from dockmesh.link.memory import socket_pair
from dockmesh.link.packets import PacketStream, decode_json
from dockmesh.proto import Role
from dockmesh.proto.methods import Stacks

HEALTHY = STACK  # the "done when" stack, as the integration tests deploy it
# The same stack without the health wait: the orchestration's own cost, not the healthcheck's interval.
PLAIN = HEALTHY.replace("condition: service_healthy", "condition: service_started")


async def direct(docker: aiodocker.Docker, project: Project) -> float:
    started = time.perf_counter()
    ids: dict[str, tuple[str, float]] = {}  # service -> (container id, wall time before its start)
    for net in project.networks.values():
        await docker.networks.create(network_body(project, net))
    for vol in project.volumes.values():
        await docker._query_json("volumes/create", method="POST", data=volume_body(project, vol))
    for service in project.services.values():  # already in depends_on order
        for dep, condition in service.depends_on:
            if condition == "service_healthy":
                await healthy(docker, *ids[dep])
        body = container_body(project, service)
        container = await docker.containers.create(body, name=f"{project.name}-{service.name}-1")
        ids[service.name] = (container.id, time.time())
        await container.start()
    return time.perf_counter() - started


async def healthy(docker: aiodocker.Docker, cid: str, since: float) -> None:
    # By id and from its start: a name would also match the previous round's container and its verdict.
    info = await docker.containers.container(cid).show()
    if info["State"].get("Health", {}).get("Status") == "healthy":
        return
    events = engine_events(docker, {"type": "container", "container": [cid]}, since=since)
    async for event in events:
        if event.get("Action") == "health_status: healthy":
            break
    with contextlib.suppress(Exception):
        await events.aclose()  # type: ignore[attr-defined]


async def linked(link: Link, name: str, text: str, n: int) -> float:
    started = time.perf_counter()
    stream = link.open_stream(Stacks.DEPLOY, {"deploy_id": f"bench-{n}", "project": name, "compose": text})
    packets = PacketStream(stream)
    last: dict[str, Any] = {}
    while (packet := await packets.recv()) is not None:
        last = decode_json(packet[1])
    elapsed = time.perf_counter() - started
    if last.get("state") != "done":
        raise RuntimeError(f"deploy failed: {last}")
    return elapsed


async def run(base: Path, rounds: int) -> dict[str, Any]:
    engine = Engine("bench", base / "e")
    engine.start()
    try:
        import_busybox(engine)
        docker = connect(engine.docker_host)
        handlers = Handlers(docker, journal=base / "deploys.json")
        server_end, host_end = socket_pair()
        server = Link(server_end, Role.ACCEPTOR)
        host = Link(host_end, Role.DIALER, on_request=handlers.handle, on_stream=handlers.stream)
        tasks = [asyncio.create_task(server.run()), asyncio.create_task(host.run())]
        results: dict[str, Any] = {"rounds": rounds}
        n = 0
        try:
            for label, text in (("healthcheck", HEALTHY), ("plain", PLAIN)):
                project = load_project("bench", text)
                times: dict[str, list[float]] = {"direct": [], "linked": []}
                for r in range(rounds):
                    order = ["direct", "linked"] if r % 2 == 0 else ["linked", "direct"]
                    for path in order:
                        n += 1
                        if path == "direct":
                            times[path].append(await direct(docker, project))
                        else:
                            times[path].append(await linked(server, "bench", text, n))
                        await compose.down(docker, "bench", volumes=True)
                d, li = statistics.median(times["direct"]), statistics.median(times["linked"])
                results[label] = {
                    "direct_s": times["direct"],
                    "linked_s": times["linked"],
                    "direct_median_s": d,
                    "linked_median_s": li,
                    "ratio": li / d,
                }
        finally:
            await handlers.close()
            await server.close()
            await host.close()
            await asyncio.gather(*tasks, return_exceptions=True)
            await docker.close()
        return results
    finally:
        engine.stop()


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.stacks")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", help="write the raw results here")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="dms", dir="/tmp"))
    try:
        results = asyncio.run(run(base, args.rounds))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    print("| stack | direct (median) | through the link (median) | ratio |")
    print("|---|---|---|---|")
    for label in ("healthcheck", "plain"):
        r = results[label]
        print(
            f"| {label} | {r['direct_median_s']:.3f} s | {r['linked_median_s']:.3f} s | {r['ratio']:.2f}× |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
