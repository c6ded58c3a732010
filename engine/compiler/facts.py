"""Declarations of a system section: status scales, fact types and facts."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .. import ir
from ..errors import PolicyError, did_you_mean
from .context import Context, Path, Rejected

RESERVED = ("all", "any", "not", "move", "action")
_APPLIES = {"values": "enum", "scale": "enum", "items": "list", "values_type": "map", "min": "integer",
            "max": "integer", "allow_empty": "string"}


def duplicate_scale_values(ctx: Context, name: str, steps: list[Any]) -> Iterator[PolicyError]:
    seen: set[Any] = set()
    for r, step in enumerate(steps):
        for j, value in enumerate(step if isinstance(step, list) else [step]):
            if value in seen:
                path = ("scales", name, r) + ((j,) if isinstance(step, list) else ())
                yield PolicyError("compile_bad_value", f"`{value}` appears twice on scale `{name}`", ctx.loc(path))
            seen.add(value)


def declare_scales(ctx: Context) -> None:
    for name, steps in (ctx.doc.get("scales") or {}).items():
        ctx.errors.extend(duplicate_scale_values(ctx, name, steps))
        rank: dict[Any, int] = {}
        for r, step in enumerate(steps):
            for value in step if isinstance(step, list) else [step]:
                rank[value] = r
        grouped = tuple(tuple(v for v, r in rank.items() if r == i) for i in range(len(steps)))
        ctx.scales[name] = ir.Scale(name, grouped, ctx.loc(("scales", name), key=True))


def fact_type(ctx: Context, spec: dict[str, Any], path: Path) -> ir.FactType:
    """The type a `type:` mapping declares; raises Rejected after reporting what is wrong."""
    kind = spec["type"]
    for key, applies in _APPLIES.items():
        if key in spec and kind != applies:
            raise ctx.reject("compile_bad_value", f"`{key}` does not apply to type `{kind}`", path + (key,), key=True)
    if kind == "enum":
        return _enum(ctx, spec, path)
    if kind == "list":
        return ir.ListType(fact_type(ctx, spec["items"], path + ("items",)) if "items" in spec else None)
    if kind == "map":
        inner = fact_type(ctx, spec["values_type"], path + ("values_type",)) if "values_type" in spec else None
        return ir.MapType(inner)
    if kind == "boolean":
        return ir.BooleanType()
    if kind == "integer":
        return ir.IntegerType(spec.get("min"), spec.get("max"))
    if kind == "string":
        return ir.StringType(spec.get("allow_empty", False))
    return ir.ObjectType()


def _enum(ctx: Context, spec: dict[str, Any], path: Path) -> ir.EnumType:
    if "scale" in spec:
        scale = ctx.scales.get(spec["scale"])
        if scale is None:
            raise ctx.reject("compile_unknown_scale", f"unknown scale `{spec['scale']}`", path + ("scale",),
                             did_you_mean(spec["scale"], ctx.scales) or "declare it under `scales`")
        return ir.EnumType(scale.values, scale)
    if "values" not in spec:
        raise ctx.reject("compile_missing_field", "an `enum` needs `values` or `scale`", path)
    return ir.EnumType(tuple(spec["values"]))


def declare_facts(ctx: Context) -> None:
    paths: dict[str, str] = {}
    facts = ctx.doc["facts"]
    for slot, (name, spec) in enumerate(facts.items()):
        path = ("facts", name)
        if name in RESERVED:
            ctx.error("compile_bad_value", f"`{name}` is a reserved word and cannot name a fact", path, key=True)
            continue
        try:
            ftype = fact_type(ctx, spec, path)
        except Rejected:
            ctx.refused_facts.add(name)
            continue
        if spec["path"] in paths:
            ctx.error("compile_duplicate_fact", f"facts `{paths[spec['path']]}` and `{name}` have the same path",
                      path + ("path",))
        paths[spec["path"]] = name
        default = spec.get("default")
        if default is not None and not ftype.accepts(default):
            ctx.error("compile_bad_value", f"the default `{default}` of fact `{name}` is not {ftype.describe()}",
                      path + ("default",))
        ctx.facts[name] = ir.Fact(name, tuple(spec["path"].split(".")), ftype, slot, "default" in spec, default,
                                  spec.get("says", name), ctx.loc(path, key=True))
    # `action` is a built-in fact: the request's action name, in the slot after the facts
    ctx.facts["action"] = ir.Fact("action", ("action",), ir.StringType(), len(facts), False, None, "the action",
                                  ctx.loc(()))
