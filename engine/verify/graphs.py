"""Stage graphs written inline in a `move`: unreachable stages, dead ends, cycles with no exit.

A stage's ways out are its listed next stages; a stage the graph does not list may move to any
stage when unlisted moves are allowed, and nowhere otherwise. Staying on a stage is no way out.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import Location


@dataclass(frozen=True)
class Graph:
    rule: str                                  # the rule whose `move` holds the graph
    actions: tuple[str, ...]
    source: str                                # the facts holding the current and the next stage
    target: str
    next: tuple[tuple[Any, tuple[Any, ...]], ...]
    unlisted_allowed: bool
    start: tuple[Any, ...]
    final: tuple[Any, ...]
    location: Location

    @property
    def stages(self) -> list[Any]:
        """Every stage the graph names, in the order written."""
        seen: dict[Any, None] = {}
        for stage, nexts in self.next:
            seen.setdefault(stage, None)
            for n in nexts:
                seen.setdefault(n, None)
        for s in self.start + self.final:
            seen.setdefault(s, None)
        return list(seen)

    def exits(self, stage: Any) -> list[Any]:
        listed = dict(self.next)
        if stage in listed:
            return [n for n in listed[stage] if n != stage]
        return [s for s in self.stages if s != stage] if self.unlisted_allowed else []


def unreachable(g: Graph) -> list[Any]:
    """Stages no path from a start stage reaches (nothing when no start is declared)."""
    if not g.start:
        return []
    seen, todo = set(g.start), list(g.start)
    while todo:
        for n in g.exits(todo.pop()):
            if n not in seen:
                seen.add(n)
                todo.append(n)
    return [s for s in g.stages if s not in seen]


def dead_ends(g: Graph) -> list[Any]:
    """Stages that are not final and have no way out."""
    return [s for s in g.stages if s not in g.final and not g.exits(s)]


def closed_cycles(g: Graph) -> list[list[Any]]:
    """Groups of two or more stages that move among themselves only, with no final stage among them."""
    stages = g.stages
    index = {s: i for i, s in enumerate(stages)}
    reach = [{index[n] for n in g.exits(s) if n in index} for s in stages]
    # transitive closure: small graphs (tens of stages)
    for k in range(len(stages)):
        for i in range(len(stages)):
            if k in reach[i]:
                reach[i] |= reach[k]
    out, done = [], set()
    for i in range(len(stages)):
        if i in done or i not in reach[i]:
            continue
        group = sorted(j for j in reach[i] if i in reach[j])
        done.update(group)
        leaves = any(reach[j] - set(group) for j in group)
        if len(group) > 1 and not leaves and not any(stages[j] in g.final for j in group):
            out.append([stages[j] for j in group])
    return out
