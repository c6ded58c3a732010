"""The action catalogue of a system section, the facts each action reads, and the check that a rule
reads only facts its actions read."""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .. import ir
from ..errors import did_you_mean
from .context import Context, Path, ReadMode, expand

_ACTION = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")


def declare_actions(ctx: Context) -> None:
    for g, group in enumerate(ctx.doc["actions"]):
        reads = group["reads"]
        modes: dict[str, ReadMode] = {}
        items = reads.items() if isinstance(reads, dict) else ((n, None) for n in reads)
        for i, (fname, mode) in enumerate(items):
            fpath = ("actions", g, "reads", fname if isinstance(reads, dict) else i)
            fact = ctx.facts.get(fname)
            if fact is None and fname in ctx.refused_facts:
                continue
            if fact is None:
                ctx.error("compile_unknown_fact", f"unknown fact `{fname}`", fpath,
                          did_you_mean(fname, ctx.facts) or "declare it under `facts`", key=isinstance(reads, dict))
                continue
            if mode is None:
                mode = "optional" if fact.has_default else "required"
            modes[fname] = ReadMode(mode, fpath)
        for n, pattern in enumerate(group["names"]):
            for action in expand(pattern):
                apath = ("actions", g, "names", n)
                if not _ACTION.match(action):
                    ctx.error("compile_bad_value", f"`{action}` is not an action name", apath,
                              "write actions as `<entity>.<operation>` in lower snake case")
                elif action in ctx.actions:
                    ctx.error("compile_duplicate_action", f"action `{action}` is declared twice", apath)
                else:
                    ctx.actions[action] = modes
                    ctx.action_paths[action] = apath


def actions_of(ctx: Context, patterns: list[Any], path: Path) -> list[str]:
    out = []
    for i, pattern in enumerate(patterns):
        for action in expand(str(pattern)):
            if action not in ctx.actions:
                ctx.error("compile_unknown_action", f"action `{action}` is not in the catalogue of `{ctx.system}`",
                          path + (i,), did_you_mean(action, ctx.actions) or "declare it under `actions`")
            else:
                out.append(action)
    return out


def check_reads(ctx: Context, rule_id: str, used: set[str], actions: Iterable[str], path: Path) -> None:
    for action in actions:
        modes = ctx.actions.get(action, {})
        for fname in sorted((used & set(ctx.facts)) - set(modes) - {"action"}):
            ctx.error("compile_fact_not_read",
                      f"rule `{rule_id}` reads fact `{fname}`, which action `{action}` does not read", path,
                      f"add `{fname}` to the `reads` of `{action}`, or take `{action}` out of the rule")


def check_coverage(ctx: Context) -> None:
    """Every action of the catalogue is decided by some rule (a refused rule counts: its own error
    is the root cause)."""
    for action, path in ctx.action_paths.items():
        if not ctx.units.get(action) and action not in ctx.broken:
            ctx.error("compile_action_without_rules", f"no rule decides action `{action}`", path,
                      "add the action to a rule's `actions`, or remove it from the catalogue")


# -- which facts a rule may read for one action -----------------------------------------------------
def _action_value(test: ir.Test, action: str) -> bool | None:
    """The value of a test on the built-in `action` fact, known at compile time."""
    if isinstance(test, ir.Compare) and test.op in ("is", "is_not"):
        return bool(test.value == action) == (test.op == "is")
    if isinstance(test, ir.Member):
        return (action in test.values) == (test.op == "in")
    if isinstance(test, ir.Both):
        values = [_action_value(t, action) for t in test.tests]
        return None if None in values else all(values)
    return None


def _tested_facts(test: ir.Test) -> set[str]:
    if isinstance(test, ir.SameAs):
        return {test.other.name}
    if isinstance(test, ir.Both):
        return set().union(*(_tested_facts(t) for t in test.tests))
    return set()


def reads_of(cond: ir.Condition, action: str) -> tuple[set[str], bool | None]:
    """Facts a condition may read when deciding ``action``, and its value if known statically.

    Conditions are evaluated left to right and stop early, so a branch behind a test on
    `action` that is false for this action never reads its facts.
    """
    if isinstance(cond, ir.Always):
        return set(), True
    if isinstance(cond, ir.FactCondition):
        if cond.fact.name == "action":
            return set(), _action_value(cond.test, action)
        return {cond.fact.name} | _tested_facts(cond.test), None
    if isinstance(cond, ir.Not):
        r, v = reads_of(cond.inner, action)
        return r, None if v is None else not v
    if isinstance(cond, ir.Move):
        graph = {cond.graph.name} if isinstance(cond.graph, ir.Fact) else set()
        return {cond.source.name, cond.target.name} | graph, None
    stop = isinstance(cond, ir.AnyOf)          # the value that ends the evaluation early
    reads: set[str] = set()
    results = []
    for part in cond.parts:
        r, v = reads_of(part, action)
        reads |= r
        results.append(v)
        if v is stop:
            return reads, stop
    return reads, (not stop) if all(v is (not stop) for v in results) else None


def rule_reads(rule: ir.Guard | ir.Effect, action: str) -> set[str]:
    """The facts a guard or effect may read when deciding ``action``."""
    reads, value = reads_of(rule.when, action) if rule.when is not None else (set(), True)
    if value is False:
        return reads
    if isinstance(rule, ir.Guard):
        return reads | reads_of(rule.deny, action)[0]
    for use in rule.otherwise:
        r, v = reads_of(use.when, action) if use.when is not None else (set(), True)
        reads |= r
        if v is not False:
            for p in use.params:
                if isinstance(p, ir.FactParam):
                    reads.add(p.fact.name)
                elif isinstance(p, ir.FirstEnteredParam):
                    reads.update(f.name for f in p.facts)
    return reads
