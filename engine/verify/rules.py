"""Rules against rules: guards and effects as conditions, and what they can never do.

Each rule is seen once per action it serves (:class:`Rule`): the condition under which it fires
and, for an effect, the condition under which it asks for each obligation (:class:`Emit`). The
built-in fact `action` is part of every condition, so a test on the action is understood too.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from ..errors import Location
from .logic import And, Cond, Logic, Or


@dataclass(frozen=True)
class Emit:
    obligation: str
    when: Cond                 # where the rule asks for it (the rule's own condition included)
    location: Location


@dataclass(frozen=True)
class Rule:
    id: str
    kind: str                  # guard | effect
    action: str
    fires: Cond                # a guard: where it denies; an effect: where it fires
    emits: tuple[Emit, ...]
    location: Location


def never_fire(rules: list[Rule], logic: Logic) -> Iterator[Rule]:
    """Rules that fire for none of their actions, whatever the facts' values (one per rule id)."""
    by_id: dict[str, list[Rule]] = {}
    for r in rules:
        by_id.setdefault(r.id, []).append(r)
    for group in by_id.values():
        if all(not logic.over(r.fires) for r in group):
            yield group[0]


def always_overridden(rules: list[Rule], overrides: Mapping[str, Mapping[str, tuple[str, ...]]],
                      logic: Logic) -> Iterator[tuple[Emit, Rule, list[str], list[str]]]:
    """Obligations that, wherever their rule asks for them, another obligation overrides.

    ``overrides``: action -> obligation -> the obligations it overrides. Yields the emit, its rule,
    the overriding obligations and the rules that ask for them.
    """
    by_key: dict[tuple[str, int], list[tuple[Rule, Emit]]] = {}
    for r in rules:
        for i, e in enumerate(r.emits):
            by_key.setdefault((r.id, i), []).append((r, e))
    for group in by_key.values():
        winners: set[str] = set()
        sources: set[str] = set()
        proven = True
        for rule, emit in group:
            if not logic.over(emit.when):
                continue
            beaters = {p for p, lost in overrides.get(rule.action, {}).items() if emit.obligation in lost}
            others = [(r, e) for r in rules if r.action == rule.action for e in r.emits
                      if e.obligation in beaters and e is not emit]
            cover = logic.under(Or(tuple(e.when for _, e in others)))
            if not others or not logic.covers(cover, logic.over(emit.when)):
                proven = False
                break
            winners |= {e.obligation for _, e in others}
            sources |= {r.id for r, _ in others}
        if proven and winners:
            rule, emit = group[0]
            yield emit, rule, sorted(winners), sorted(sources)


def fires_everywhere(rule: Rule, region: Cond, logic: Logic) -> bool:
    """``rule`` fires on every input of ``region``."""
    return logic.covers(logic.under(rule.fires), logic.over(And((region,))))
