"""Upgrade rollouts, pure: split hosts into waves, and decide what a wave's outcomes mean (docs/upgrades.md).

No I/O here: the service (`services/rollouts.py`) persists the plan and feeds the outcomes in.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from dockmesh.server.selector import Selector, SelectorError, parse

MAX_STEPS = 10
_PERCENT = re.compile(r"([0-9]{1,3})%")

# A host's state inside a rollout. `pending`/`offered` are open; the others are settled.
OPEN = ("pending", "offered")
FAILURES = ("failed", "rolled_back", "refused")
SETTLED = ("done", "current", "skipped", *FAILURES)
HOST_STATES = (*OPEN, *SETTLED)


class PlanError(ValueError):
    """A step that does not parse; `index` is the 0-based step."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.message = message
        self.index = index


@dataclass(frozen=True)
class Candidate:
    id: str
    name: str
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Step:
    text: str
    percent: int | None = None  # cumulative share of all planned hosts
    selector: Selector | None = None


def parse_step(text: str, index: int = 0) -> Step:
    text = text.strip()
    m = _PERCENT.fullmatch(text)
    if m is not None:
        percent = int(m.group(1))
        if not 1 <= percent <= 100:
            raise PlanError(f"wave {index + 1}: a percentage is 1%-100%, not {text}", index)
        return Step(text, percent=percent)
    if not text:
        raise PlanError(f"wave {index + 1} is empty: give a selector (tag:canary) or a percentage", index)
    if text.endswith("%"):
        raise PlanError(f"wave {index + 1}: {text!r} is not a percentage (1%-100%)", index)
    try:
        selector = parse(text)
    except SelectorError as exc:
        raise PlanError(f"wave {index + 1}: {exc.message} (at {exc.position})", index) from None
    return Step(text, selector=selector)


def parse_steps(texts: Sequence[str]) -> list[Step]:
    if not 1 <= len(texts) <= MAX_STEPS:
        raise PlanError(f"give 1 to {MAX_STEPS} waves", 0)
    return [parse_step(t, i) for i, t in enumerate(texts)]


def plan(hosts: Sequence[Candidate], steps: Sequence[Step]) -> list[list[Candidate]]:
    """One list of hosts per step, in order; a host is in at most one wave, hosts no step takes are out.

    Hosts are sorted by (name, id) first, so the same fleet always gives the same plan.
    """
    ordered = sorted(hosts, key=lambda h: (h.name, h.id))
    taken: set[str] = set()
    waves: list[list[Candidate]] = []
    for step in steps:
        if step.percent is not None:
            goal = max(1, math.ceil(step.percent * len(ordered) / 100)) if ordered else 0
            wave = [h for h in ordered if h.id not in taken][: max(0, goal - len(taken))]
        else:
            assert step.selector is not None
            sel = step.selector
            wave = [h for h in ordered if h.id not in taken and sel.matches(h.id, h.name, h.tags)]
        taken.update(h.id for h in wave)
        waves.append(wave)
    return waves


@dataclass(frozen=True)
class Verdict:
    outcome: str  # "wait", "next" (the wave is healthy), "halt"
    reason: str = ""


def decide(states: Sequence[str], max_failure_rate: float) -> Verdict:
    """What the current wave's host states mean: wait, go on to the next wave, or halt the rollout.

    attempted = hosts offered (settled or not, minus `current`/`skipped`/`pending`); a failure rate above
    `max_failure_rate` halts as soon as it is reached, without waiting for the rest of the wave.
    """
    failures = sum(1 for s in states if s in FAILURES)
    attempted = sum(1 for s in states if s in ("offered", "done", *FAILURES))
    if attempted and failures / attempted > max_failure_rate:
        return Verdict(
            "halt",
            f"{failures} of {attempted} hosts failed in this wave (more than {max_failure_rate:.0%} allowed)",
        )
    if all(s in SETTLED for s in states):
        return Verdict("next")
    return Verdict("wait")


def expire(state: str) -> tuple[str, str | None]:
    """A host's state when its wave's deadline passes: the offline are skipped, the unsettled failed."""
    if state == "pending":
        return "skipped", "offline until the wave's deadline"
    if state == "offered":
        return "failed", "no outcome before the wave's deadline"
    return state, None
