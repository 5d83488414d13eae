"""The drain planner (issue 13): which stack goes where, in which order, or why it stays.

Pure: stacks and candidate hosts in, an ordered plan out; no clock, no I/O. The drain service feeds it what
the source's stacks need (volume bytes, memory, architecture, shared external volumes and networks) and what
each destination has free, and runs the plan it returns; the dry run shows the same plan unrun.

Placement is greedy in the plan's order: each stack (or, in dependency-aware order, each group of stacks
sharing an external volume or network, which must land on one host together) goes to the usable host that
keeps the most memory free after it, and that host's free memory and disk shrink by what it took. Later
stacks therefore see what earlier ones used, so the plan never promises one host's last gigabyte twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

ORDERS = ("smallest", "largest", "deps")
# A stack that sets no memory limit still uses memory: it is counted as this much when ranking and
# reserving, so such stacks spread over the destinations instead of all landing on the host that had the
# most free memory at its last heartbeat. The fit check itself uses only the stack's declared limits.
NOMINAL_MEMORY = 256 << 20


class PlanError(ValueError):
    """Inputs the planner cannot work with (an unknown order)."""


@dataclass(frozen=True)
class StackNeed:
    """One stack on the source. `arch` is the architecture its images need (None: any); `shared` are the
    external volumes and networks it uses (stacks sharing one move together in `deps` order); `problem` is a
    reason known before placement (e.g. the stack's record is gone) — the stack is then skipped with it."""

    name: str
    volume_bytes: int = 0
    memory_bytes: int = 0
    arch: str | None = None
    shared: frozenset[str] = frozenset()
    problem: tuple[str, str] | None = None


@dataclass(frozen=True)
class Candidate:
    """A host that may receive stacks. Free memory/disk None: unknown (no metrics yet) — not held against
    the host here (the migration's own pre-flight measures it), but it ranks below any known amount."""

    id: str
    name: str
    online: bool = True
    cordoned: bool = False
    arch: str | None = None
    memory_free: int | None = None
    disk_free: int | None = None


@dataclass(frozen=True)
class Step:
    """One stack's line in the plan: a destination, or a skip reason (`code`, `message`)."""

    stack: str
    position: int
    group: int
    volume_bytes: int
    memory_bytes: int
    destination: str | None = None
    destination_name: str | None = None
    skip_code: str | None = None
    skip_message: str | None = None

    @property
    def skipped(self) -> bool:
        return self.destination is None


@dataclass(frozen=True)
class Plan:
    order: str
    steps: tuple[Step, ...]
    destinations: tuple[Candidate, ...] = field(default=())

    @property
    def moving(self) -> list[Step]:
        return [s for s in self.steps if not s.skipped]

    @property
    def skipped(self) -> list[Step]:
        return [s for s in self.steps if s.skipped]

    @property
    def bytes_total(self) -> int:
        return sum(s.volume_bytes for s in self.moving)


def groups(stacks: Sequence[StackNeed]) -> list[list[StackNeed]]:
    """Stacks joined by a shared external volume or network (transitively), each group sorted by name."""
    parent = list(range(len(stacks)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, stack in enumerate(stacks):
        for name in stack.shared:
            if name in owner:
                parent[root(i)] = root(owner[name])
            else:
                owner[name] = i
    joined: dict[int, list[StackNeed]] = {}
    for i, stack in enumerate(stacks):
        joined.setdefault(root(i), []).append(stack)
    return [sorted(g, key=lambda s: s.name) for g in joined.values()]


def _size(stacks: Iterable[StackNeed]) -> tuple[int, int]:
    items = list(stacks)
    return sum(s.volume_bytes for s in items), sum(s.memory_bytes for s in items)


def _units(stacks: Sequence[StackNeed], order: str) -> list[list[StackNeed]]:
    """What moves as one, in run order. Ties break by name so the same inputs give the same plan."""
    if order == "deps":
        units = groups(stacks)
        units.sort(key=lambda g: (*_size(g), g[0].name))
        return units
    units = [[s] for s in stacks]
    units.sort(key=lambda u: (u[0].volume_bytes, u[0].memory_bytes, u[0].name))
    if order == "largest":
        # Largest first, names still ascending within equal sizes.
        units.sort(key=lambda u: (u[0].volume_bytes, u[0].memory_bytes), reverse=True)
    return units


def _why_not(host: Candidate, arch: set[str], memory: int, disk: int) -> tuple[str, str] | None:
    if not host.online:
        return "destination_offline", f"host {host.name} is offline"
    if host.cordoned:
        return "destination_cordoned", f"host {host.name} is cordoned"
    if arch and (host.arch is None or {host.arch} != arch):
        need = ", ".join(sorted(arch))
        return "arch_mismatch", f"needs {need}; host {host.name} is {host.arch or 'of unknown architecture'}"
    if host.memory_free is not None and memory > host.memory_free:
        return "no_memory", f"needs {memory} bytes of memory; host {host.name} has {host.memory_free} free"
    if host.disk_free is not None and disk > host.disk_free:
        return "no_disk", f"needs {disk} bytes of disk; host {host.name} has {host.disk_free} free"
    return None


def _choose(
    hosts: dict[str, Candidate], unit: list[StackNeed], placed: dict[str, int]
) -> tuple[Candidate | None, tuple[str, str] | None]:
    """The best host for a unit, or the reason of the host that came closest (the most telling refusal)."""
    disk, memory = _size(unit)
    arch = {s.arch for s in unit if s.arch}
    if len(arch) > 1:
        return None, ("arch_mismatch", f"stacks moving together need different architectures: {sorted(arch)}")
    fits: list[Candidate] = []
    reasons: list[tuple[str, str]] = []
    for host in hosts.values():
        reason = _why_not(host, arch, memory, disk)
        if reason is None:
            fits.append(host)
        else:
            reasons.append(reason)
    if fits:
        best = max(
            fits,
            key=lambda h: (
                _left(h.memory_free, memory),
                -placed.get(h.id, 0),
                _left(h.disk_free, disk),
                _neg(h.name),
            ),
        )
        return best, None
    if not reasons:
        return None, ("no_destination", "no destination host was selected")
    rank = ("no_disk", "no_memory", "arch_mismatch", "destination_cordoned", "destination_offline")
    reasons.sort(key=lambda r: rank.index(r[0]) if r[0] in rank else len(rank))
    code = reasons[0][0]
    if len(hosts) > 1:
        return None, (code, "no destination fits: " + "; ".join(m for _c, m in reasons))
    return None, reasons[0]


def _left(free: int | None, taken: int) -> int:
    return -1 if free is None else free - taken


def _less(free: int | None, taken: int) -> int | None:
    return None if free is None else free - taken


def _neg(name: str) -> tuple[int, ...]:
    # max() with names ascending as the last tie-break: compare negated code points.
    return tuple(-ord(c) for c in name)


def plan(source: str, stacks: Sequence[StackNeed], candidates: Sequence[Candidate], order: str) -> Plan:
    """The ordered plan for draining `source` (its id) to `candidates` (the source itself is never one)."""
    if order not in ORDERS:
        raise PlanError(f"unknown order {order!r}; use one of {', '.join(ORDERS)}")
    hosts = {c.id: c for c in sorted(candidates, key=lambda c: c.name) if c.id != source}
    ready = [s for s in stacks if s.problem is None]
    steps: list[Step] = []
    placed: dict[str, int] = {}
    for number, unit in enumerate(_units(ready, order)):
        best, reason = _choose(hosts, unit, placed)
        if best is not None:
            placed[best.id] = placed.get(best.id, 0) + len(unit)
            disk = _size(unit)[0]
            memory = sum(max(s.memory_bytes, NOMINAL_MEMORY) for s in unit)
            hosts[best.id] = replace(
                best, memory_free=_less(best.memory_free, memory), disk_free=_less(best.disk_free, disk)
            )
        for stack in unit:
            steps.append(
                Step(
                    stack.name,
                    len(steps),
                    number,
                    stack.volume_bytes,
                    stack.memory_bytes,
                    destination=best.id if best else None,
                    destination_name=best.name if best else None,
                    skip_code=reason[0] if reason else None,
                    skip_message=reason[1] if reason else None,
                )
            )
    group = len({s.group for s in steps})
    for stack in sorted((s for s in stacks if s.problem is not None), key=lambda s: s.name):
        assert stack.problem is not None
        steps.append(
            Step(
                stack.name,
                len(steps),
                group,
                stack.volume_bytes,
                stack.memory_bytes,
                skip_code=stack.problem[0],
                skip_message=stack.problem[1],
            )
        )
        group += 1
    return Plan(
        order, tuple(steps), tuple(sorted((c for c in candidates if c.id != source), key=lambda c: c.name))
    )
