"""Start order: every service after the services it depends on (file order otherwise)."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["start_order"]


def start_order(deps: dict[str, list[str]], cycle: Callable[[str, str], Exception]) -> list[str]:
    """Depth-first topological order; ``cycle(service, "a -> b -> a")`` builds the error for a loop."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(name: str) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            loop = [*stack[stack.index(name) :], name]
            raise cycle(loop[0], " -> ".join(loop))
        state[name] = 1
        stack.append(name)
        for dep in deps.get(name, []):
            visit(dep)
        stack.pop()
        state[name] = 2
        order.append(name)

    for name in deps:
        visit(name)
    return order
