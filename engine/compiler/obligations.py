"""Obligations: their declarations (parameters, which others they override) and their uses in rules."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .. import ir
from ..errors import PolicyError, did_you_mean
from .conditions import condition
from .context import Context, Path, Rejected, lower_all, refs
from .facts import fact_type


def declare_obligations(ctx: Context) -> None:
    decls = ctx.doc.get("obligations") or {}
    for name, decl in decls.items():
        decl = decl or {}
        params: list[tuple[str, ir.FactType]] = []
        for pname, pspec in (decl.get("params") or {}).items():
            try:
                params.append((pname, fact_type(ctx, pspec, ("obligations", name, "params", pname))))
            except Rejected:
                continue
        overrides = decl.get("overrides") or []
        for i, other in enumerate(overrides):
            if other not in decls:
                ctx.error("compile_unknown_obligation", f"unknown obligation `{other}`",
                          ("obligations", name, "overrides", i), did_you_mean(other, decls))
        ctx.obligations[name] = ir.ObligationDecl(name, decl.get("says", ""), tuple(params), tuple(overrides),
                                                  ctx.loc(("obligations", name), key=True))
    ctx.errors.extend(mutual_overrides(ctx))


def mutual_overrides(ctx: Context) -> Iterator[PolicyError]:
    for name, decl in ctx.obligations.items():
        for other in decl.overrides:
            theirs = ctx.obligations.get(other)
            if other == name or (theirs is not None and name in theirs.overrides):
                yield PolicyError("compile_contradictory_obligations",
                                  f"obligations `{name}` and `{other}` override each other",
                                  ctx.loc(("obligations", name, "overrides")),
                                  "only one of them can win; keep one `overrides`")


def uses(ctx: Context, items: list[Any], path: Path, used: set[str]) -> tuple[ir.ObligationUse, ...]:
    """The obligations a rule (or a table outcome) asks for; every wrong item is reported."""
    out = lower_all(enumerate(items), lambda ii: use(ctx, ii[1], path + (ii[0],), used))
    ctx.errors.extend(asked_with_overridden(ctx, out, path))
    return tuple(out)


def asked_with_overridden(ctx: Context, out: list[ir.ObligationUse], path: Path) -> Iterator[PolicyError]:
    names = {u.name for u in out if u.when is None}
    for u in out:
        if u.when is None:
            for other in ctx.obligations[u.name].overrides:
                if other in names:
                    yield PolicyError("compile_contradictory_obligations",
                                      f"`{u.name}` and `{other}` are asked for together, and `{u.name}` overrides "
                                      f"`{other}`", ctx.loc(path), f"remove `{other}` from this list")


def use(ctx: Context, item: Any, path: Path, used: set[str]) -> ir.ObligationUse:
    params: dict[str, Any]
    if isinstance(item, str):
        name, params, when = item, {}, None
    else:
        name, params, when = item["name"], item.get("params") or {}, item.get("when")
    decl = ctx.obligations.get(name)
    if decl is None:
        raise ctx.reject("compile_unknown_obligation", f"unknown obligation `{name}`", path,
                         did_you_mean(name, ctx.obligations) or "declare it under `obligations`")
    cond = condition(ctx, when, path + ("when",), used) if when is not None else None
    return ir.ObligationUse(name, parameters(ctx, decl, params, path + ("params",), used), cond, ctx.loc(path))


def parameters(ctx: Context, decl: ir.ObligationDecl, given: dict[str, Any], path: Path,
               used: set[str]) -> tuple[ir.Param, ...]:
    """Fixed parameters first, then those read from facts, each in the order written."""
    declared = dict(decl.params)
    refused = False
    for pname in given:
        if pname not in declared:
            ctx.error("compile_bad_param", f"obligation `{decl.name}` has no parameter `{pname}`", path + (pname,),
                      did_you_mean(pname, declared), key=True)
            refused = True
    for pname in declared:
        if pname not in given:
            ctx.error("compile_bad_param", f"obligation `{decl.name}` needs parameter `{pname}`", path)
            refused = True
    if refused:
        raise Rejected()
    static: list[ir.Param] = []
    dynamic: list[ir.Param] = []
    for pname, value in given.items():
        ppath = path + (pname,)
        if isinstance(value, dict) and set(value) == {"fact"}:
            fact = ctx.fact(value["fact"], ppath + ("fact",))
            used.add(fact.name)
            dynamic.append(ir.FactParam(pname, fact))
        elif isinstance(value, dict) and set(value) == {"first_entered"}:
            names = refs(value["first_entered"])
            if not names:
                raise Rejected()
            facts = tuple(ctx.fact(f, ppath + ("first_entered", i)) for i, f in enumerate(names))
            used.update(f.name for f in facts)
            dynamic.append(ir.FirstEnteredParam(pname, facts))
        elif not declared[pname].accepts(value):
            raise ctx.reject("compile_bad_param",
                             f"parameter `{pname}` of `{decl.name}` must be {declared[pname].describe()}", ppath)
        else:
            static.append(ir.StaticParam(pname, value))
    return tuple(static + dynamic)
