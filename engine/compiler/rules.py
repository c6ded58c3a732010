"""Guards and effects: the rules written one by one. (Tables are in ``tables.py``.)"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import ir
from .catalogue import actions_of, check_reads, rule_reads
from .conditions import condition
from .context import Context, Path, Rejected, expand, lower_all
from .obligations import uses


def _both(first: Callable[[], Any], second: Callable[[], Any]) -> tuple[Any, Any]:
    """Run both lowerings, so each reports its errors, then refuse if either was refused."""
    results = lower_all((first, second), lambda lower: lower())
    return results[0], results[1]


def guard(ctx: Context, rule: dict[str, Any], path: Path, used: set[str]) -> ir.Guard:
    when, deny = _both(lambda: condition(ctx, rule["when"], path + ("when",), used) if "when" in rule else None,
                       lambda: condition(ctx, rule["deny_when"], path + ("deny_when",), used))
    return ir.Guard(rule["id"], rule["says"], when, deny, ctx.loc(path))


def effect(ctx: Context, rule: dict[str, Any], path: Path, used: set[str]) -> ir.Effect:
    when, obligations = _both(
        lambda: condition(ctx, rule["when"], path + ("when",), used) if "when" in rule else None,
        lambda: uses(ctx, rule["obligations"], path + ("obligations",), used))
    return ir.Effect(rule["id"], rule["says"], when, (), obligations, ctx.loc(path))


def rule(ctx: Context, spec: dict[str, Any], path: Path) -> None:
    """A guard or an effect: checked, lowered, and added to the plans of its actions."""
    rid = spec["id"]
    ctx.register_id(rid, path + ("id",))
    sources = ctx.sources_of(spec["source"], path + ("source",))
    actions = actions_of(ctx, spec["actions"], path + ("actions",))
    try:
        unit = (guard if spec["kind"] == "guard" else effect)(ctx, spec, path, set())
    except Rejected:
        ctx.broken.update(actions)
    else:
        ctx.add_unit(actions, unit)
        for action in actions:
            check_reads(ctx, rid, rule_reads(unit, action), [action], path + ("id",))
    ctx.info(rid, spec["kind"], spec["says"], sources, actions, path, spec)


def named_actions(ctx: Context, spec: Any) -> set[str]:
    """The actions a rule the schema refused would decide, as far as its text tells; all of the
    system's when it does not tell."""
    from .tables import covered_actions

    try:
        if spec["kind"] == "table":
            return covered_actions(spec)
        return {a for p in spec["actions"] for a in expand(str(p))}
    except (KeyError, TypeError, IndexError, AttributeError):
        return set(ctx.actions)


def compile_rules(ctx: Context) -> None:
    from .tables import table

    for r, spec in enumerate(ctx.doc["rules"]):
        if r in ctx.skip:       # its schema errors are the root cause; what it decides is not reported again
            ctx.broken.update(named_actions(ctx, spec))
        elif spec["kind"] == "table":
            table(ctx, spec, ("rules", r))
        else:
            rule(ctx, spec, ("rules", r))
