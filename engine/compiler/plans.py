"""Action plans: per action, the facts to read (in an order where every `required_when` comes after
the facts it reads) and the rules to apply (guards first)."""
from __future__ import annotations

from .. import ir
from .conditions import condition
from .context import Context, ReadMode, Rejected


def _read(ctx: Context, action: str, fname: str, how: ReadMode,
          modes: dict[str, ReadMode]) -> tuple[ir.FactRead, set[str]]:
    """One fact read, and the facts its `required_when` reads."""
    fact = ctx.facts[fname]
    mode, fpath = how.mode, how.path
    default = fact.default
    where = ctx.loc(fpath)
    if isinstance(mode, dict) and "default" in mode:
        default = mode["default"]
        if default is not None and not fact.type.accepts(default):
            ctx.error("compile_bad_value", f"the default `{default}` of `{fname}` is not {fact.type.describe()}",
                      fpath + ("default",))
        mode = "optional"
    if not isinstance(mode, dict):
        return ir.FactRead(fact, mode, default, None, where), set()
    used: set[str] = set()
    cond = condition(ctx, mode["required_when"], fpath + ("required_when",), used)
    missing = sorted(used - set(modes) - {"action"})
    for m in missing:
        ctx.error("compile_fact_not_read",
                  f"`required_when` of `{fname}` reads fact `{m}`, which action `{action}` does not read",
                  fpath + ("required_when",))
    if missing:
        raise Rejected()
    return ir.FactRead(fact, "conditional", default, cond, where), used


def plan(ctx: Context, action: str, modes: dict[str, ReadMode]) -> ir.ActionPlan:
    reads: list[ir.FactRead] = []
    conditional: list[tuple[ir.FactRead, set[str]]] = []
    for fname, how in modes.items():
        try:
            read, used = _read(ctx, action, fname, how, modes)
        except Rejected:
            continue
        (conditional.append((read, used)) if read.mode == "conditional" else reads.append(read))
    # conditional facts after the facts their condition reads; placing one may unblock the next
    placed = {r.fact.name for r in reads}
    pending = list(conditional)
    while pending:
        progress = False
        for item in list(pending):
            read, used = item
            if used - {read.fact.name, "action"} <= placed:
                reads.append(read)
                placed.add(read.fact.name)
                pending.remove(item)
                progress = True
        if not progress:
            names = ", ".join(f"`{r.fact.name}`" for r, _ in pending)
            ctx.error("compile_circular_requirement", f"the `required_when` conditions of {names} depend on each other",
                      ctx.action_paths[action], "a fact's `required_when` may read only facts that do not depend on it")
            break
    units = ctx.units.get(action, [])
    ordered = [u for u in units if isinstance(u, ir.Guard)] + [u for u in units if not isinstance(u, ir.Guard)]
    overrides = {name: d.overrides for name, d in ctx.obligations.items() if d.overrides}
    return ir.ActionPlan(ctx.system, action, len(ctx.doc["facts"]) + 1, tuple(reads), tuple(ordered), overrides,
                         ctx.loc(ctx.action_paths[action]))


def build_plans(ctx: Context) -> None:
    for action, modes in ctx.actions.items():
        ctx.plans[action] = plan(ctx, action, modes)
