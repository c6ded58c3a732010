"""What would change the outcome: the smallest sets of fact changes that flip a decision.

For a denial the search looks for ``to_allow``, for an allow ``to_deny``: it tries one fact at a
time over its declared domain (see :mod:`engine.domains`), then pairs of facts, and so on, and
stops at the first size that flips the decision, so every answer is a smallest set. A set is only
tried when none of its parts already flips it. Every answer was decided by the same
``PolicySet.decide`` as the request itself: applied to the input, it flips the outcome.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations, product
from typing import Any

from .domains import OTHER_TEXT, fact_domains, read_value, with_value
from .ir import show

_ABSENT = object()


@dataclass(frozen=True)
class Change:
    """One fact set to another value."""

    fact: str
    path: str
    before: Any
    after: Any
    says: str

    def to_dict(self) -> dict[str, Any]:
        return {"fact": self.fact, "path": self.path,
                "from": None if self.before is _ABSENT else self.before, "to": self.after, "says": self.says}


@dataclass(frozen=True)
class Alternative:
    """A smallest set of changes that flips the decision, and the rules that decide it then."""

    changes: tuple[Change, ...]
    allow: bool                  # the changed request's outcome
    rules: tuple[str, ...]       # the rules the changed request's decision cites
    clears: tuple[str, ...]      # to_allow: the denying rules the change clears

    def to_dict(self) -> dict[str, Any]:
        out = {"changes": [c.to_dict() for c in self.changes], "rules": list(self.rules), "says": self.says}
        if self.clears:
            out["clears"] = list(self.clears)
        return out

    @property
    def says(self) -> str:
        text = "; ".join(c.says for c in self.changes)
        rules = ", ".join(self.rules)
        if self.clears:
            return f"{text} (clears {', '.join(self.clears)})"
        if self.allow:
            return f"{text} (then allowed by {rules})"
        return f"{text} (then denied by {rules})" if rules else f"{text} (then no rule allows it)"


@dataclass(frozen=True)
class WhyNot:
    """``to_allow`` (for a denial) or ``to_deny`` (for an allow), with how far the search went."""

    direction: str               # to_allow | to_deny
    alternatives: tuple[Alternative, ...]
    complete: bool               # False when the search budget ran out first

    def to_dict(self) -> dict[str, Any]:
        return {self.direction: [a.to_dict() for a in self.alternatives], "complete": self.complete}


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _change(domain: Any, before: Any, after: Any) -> Change:
    if before is _ABSENT and domain.mode == "optional":
        before, now = domain.default, f"{show(domain.default)} by default"
    else:
        now = "not given" if before is _ABSENT else show(before)
    return Change(domain.name, domain.dotted, before, after, f"{domain.says}: {show(after)} (now {now})")


def _distance(change: Change) -> int:
    before = change.before
    return abs(change.after - before) if type(change.after) is int and type(before) is int else 0


def _nearest(hits: list[Alternative]) -> list[Alternative]:
    """Of the alternatives that change the same facts, keep only those whose whole numbers are
    nearest to the request's (the bound just across a threshold, not every number beyond it)."""
    def key(a: Alternative) -> tuple[str, ...]:
        return tuple(repr(c.after) for c in a.changes if type(c.after) is not int or type(c.before) is not int)

    best: dict[tuple[str, ...], int] = {}
    for a in hits:
        best[key(a)] = min(best.get(key(a), sum(map(_distance, a.changes))), sum(map(_distance, a.changes)))
    return [a for a in hits if sum(map(_distance, a.changes)) == best[key(a)]]


class _OutOfBudget(Exception):
    """More decisions would be needed than the budget allows."""


class _Search:
    """Tries the changes of a set of facts, counting the decisions it asks for."""

    def __init__(self, policy_set: Any, action: str, data: Any, decision: Any, domains: tuple[Any, ...],
                 budget: int):
        self.policy_set, self.action, self.data, self.decision = policy_set, action, data, decision
        self.domains, self.budget, self.tried = domains, budget, 0
        self.target = not decision.allow
        self.current = [read_value(data, d.path, _ABSENT) for d in domains]
        self.choices = [tuple(v for v in d.values if v is not OTHER_TEXT and not _same(v, self.current[i]))
                        for i, d in enumerate(domains)]

    def flips(self, combo: tuple[int, ...]) -> list[Alternative]:
        """Every change of exactly the facts in ``combo`` that flips the decision."""
        hits: list[Alternative] = []
        for values in product(*(self.choices[i] for i in combo)):
            if self.tried >= self.budget:
                raise _OutOfBudget()
            self.tried += 1
            changed = self.data
            for i, value in zip(combo, values, strict=True):
                changed = with_value(changed, self.domains[i].path, value)
            after = self.policy_set.decide(self.action, changed)
            if after.error is None and after.allow == self.target:
                hits.append(Alternative(
                    tuple(_change(self.domains[i], self.current[i], v) for i, v in zip(combo, values, strict=True)),
                    after.allow, tuple(after.rules),
                    tuple(r for r in self.decision.rules if r not in after.rules) if self.target else ()))
        return hits


def why_not(policy_set: Any, action: str, data: Any, *, max_changes: int = 3, budget: int = 20_000) -> WhyNot | None:
    """The smallest sets of fact changes that flip the decision of ``action`` on ``data``.

    :returns: ``None`` when the request does not reach the rules (an unknown system or action,
        a missing or invalid fact): it must be corrected before any change can be weighed.
    """
    decision = policy_set.decide(action, data)
    if decision.error is not None:
        return None
    domains = fact_domains(policy_set, data["context"]["system"], action) or ()
    search = _Search(policy_set, action, data, decision, domains, budget)
    kind = "to_allow" if search.target else "to_deny"
    found: list[Alternative] = []
    solved: list[frozenset[int]] = []
    for size in range(1, max_changes + 1):
        for combo in combinations(range(len(domains)), size):
            if any(s <= set(combo) for s in solved):
                continue
            try:
                hits = search.flips(combo)
            except _OutOfBudget:
                return WhyNot(kind, tuple(found), False)
            if hits:
                solved.append(frozenset(combo))
                found.extend(_nearest(hits))
        if found:
            break
    return WhyNot(kind, tuple(found), True)
