"""Findings about rules against rules and about stage graphs (all warnings)."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from ..errors import Location
from .adapter import Section
from .findings import WARNING, Finding, names
from .graphs import closed_cycles, dead_ends, unreachable
from .logic import And, Atom, Logic
from .rules import Rule, always_overridden, fires_everywhere, never_fire


class _Declared(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def location(self) -> Location | None: ...


def _unused(declared: Iterable[_Declared], used: set[str], code: str, message: str, help: str) -> Iterator[Finding]:
    """A warning for each declared name (a fact, an obligation) that nothing uses."""
    for decl in declared:
        if decl.name not in used:
            yield Finding(WARNING, code, message.format(decl.name), decl.location, help)


def rule_findings(section: Section) -> Iterator[Finding]:
    logic = section.logic()
    rules = section.rules()
    for rule in never_fire(rules, logic):
        what = "deny" if rule.kind == "guard" else "fire"
        yield Finding(WARNING, "rule_never_fires",
                      f"rule `{rule.id}` can never {what}: no values of the facts satisfy its conditions",
                      rule.location, "look for two tests that contradict each other, or a value outside the "
                      "fact's `values`, `min` or `max`", rules=(rule.id,))
    for emit, rule, winners, sources in always_overridden(rules, section.overrides(), logic):
        yield Finding(WARNING, "obligation_always_overridden",
                      f"obligation `{emit.obligation}` of rule `{rule.id}` is always overridden by "
                      f"{names(winners)} (asked for by {names(sources)})", emit.location,
                      f"remove `{emit.obligation}` from rule `{rule.id}`, or narrow the rules that override it",
                      rules=(rule.id, *sources))
    yield from _unused(section.declared_facts(), section.facts_read(), "fact_never_read",
                       "fact `{}` is declared but no action or rule reads it",
                       "add it to the `reads` of the actions that need it, or remove it")
    yield from _unused(section.declared_obligations(), section.obligations_emitted(), "obligation_never_emitted",
                       "obligation `{}` is declared but no rule or table asks for it",
                       "ask for it in a rule or a table outcome, or remove it from `obligations`")
    yield from _graph_findings(section, rules, logic)


def _graph_findings(section: Section, rules: list[Rule], logic: Logic) -> Iterator[Finding]:
    for g in section.graphs():
        for stage in unreachable(g):
            yield Finding(WARNING, "stage_unreachable",
                          f"stage `{stage}` of the graph of rule `{g.rule}` cannot be reached from the start "
                          f"stages {names(g.start)}", g.location,
                          f"list `{stage}` as a next stage of a reachable stage, or remove it", rules=(g.rule,))
        for stage in dead_ends(g):
            yield Finding(WARNING, "stage_dead_end",
                          f"stage `{stage}` of the graph of rule `{g.rule}` has no way out and is not final",
                          g.location, "list its next stages, or declare it in `final:`", rules=(g.rule,))
        for cycle in closed_cycles(g):
            yield Finding(WARNING, "stage_cycle_without_exit",
                          f"stages {names(cycle)} of the graph of rule `{g.rule}` move only among themselves "
                          "and reach no final stage", g.location,
                          "add a move out of the cycle, or declare one of its stages in `final:`", rules=(g.rule,))
        seen = set()
        for stage, nexts in g.next:
            for nxt in nexts:
                for rule in rules:
                    if rule.kind != "guard" or rule.id == g.rule or rule.action not in g.actions:
                        continue
                    region = And((Atom("action", section.domains["action"].literal(rule.action)),
                                  Atom(g.source, section.domains[g.source].literal(stage)),
                                  Atom(g.target, section.domains[g.target].literal(nxt))))
                    key = (stage, nxt, rule.id)
                    if key not in seen and fires_everywhere(rule, region, logic):
                        seen.add(key)
                        yield Finding(WARNING, "move_always_denied",
                                      f"the graph of rule `{g.rule}` allows the move from `{stage}` to `{nxt}`, "
                                      f"but guard `{rule.id}` always denies it", g.location,
                                      f"remove `{nxt}` from the next stages of `{stage}`, or narrow guard `{rule.id}`",
                                      rules=(g.rule, rule.id))
