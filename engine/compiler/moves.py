"""`move`: a stage change checked against a stage graph (written inline, or read from a map fact)."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from .. import ir
from .conditions import check_literal
from .context import Context, Path, Rejected


def _fact_or_none(ctx: Context, name: Any, path: Path) -> ir.Fact | None:
    try:
        return ctx.fact(name, path)
    except Rejected:
        return None


def move(ctx: Context, spec: Any, path: Path, used: set[str]) -> ir.Move:
    if not isinstance(spec, dict) or not {"from", "to", "graph"} <= set(spec):
        raise ctx.reject("compile_bad_test", "`move` needs `from`, `to` and `graph`", path)
    extra = set(spec) - {"from", "to", "graph", "unlisted", "start", "final"}
    if extra:
        raise ctx.reject("compile_bad_test", f"unknown key `{sorted(extra)[0]}` in `move`", path)
    # both ends are looked up before the graph, so each unknown name is reported
    src = _fact_or_none(ctx, spec["from"], path + ("from",))
    dst = _fact_or_none(ctx, spec["to"], path + ("to",))
    unlisted = spec.get("unlisted", "allowed")
    if unlisted not in ("allowed", "denied"):
        raise ctx.reject("compile_bad_value", "`unlisted` is `allowed` or `denied`", path + ("unlisted",))
    graph = stage_graph(ctx, spec["graph"], src, dst, path + ("graph",), used)
    if isinstance(graph, ir.StageGraph):
        graph = replace(graph, start=_stages(ctx, spec, "start", src, path),
                        final=_stages(ctx, spec, "final", dst, path))
    elif "start" in spec or "final" in spec:
        raise ctx.reject("compile_bad_test", "`start` and `final` need a graph written in the rule",
                         path + ("start" if "start" in spec else "final",), key=True)
    if src is None or dst is None:
        raise Rejected()
    used.update((src.name, dst.name))
    return ir.Move(src, dst, graph, unlisted == "allowed", ctx.loc(path))


def _stages(ctx: Context, spec: dict[str, Any], key: str, fact: ir.Fact | None, path: Path) -> tuple[Any, ...]:
    """The stages listed under ``start`` or ``final``, each checked like a stage of the graph."""
    stages = spec.get(key, [])
    if not isinstance(stages, list):
        raise ctx.reject("compile_bad_test", f"`{key}` takes a list of stages", path + (key,))
    if fact is not None and isinstance(fact.type, ir.EnumType):
        for i, stage in enumerate(stages):
            check_literal(ctx, stage, fact.type, path + (key, i), f"fact `{fact.name}`")
    return tuple(stages)


def stage_graph(ctx: Context, graph: Any, src: ir.Fact | None, dst: ir.Fact | None, path: Path,
                used: set[str]) -> ir.StageGraph | ir.Fact:
    if isinstance(graph, str):
        gfact = ctx.fact(graph, path)
        if not isinstance(gfact.type, ir.MapType):
            raise ctx.reject("compile_bad_test", f"`graph` fact `{graph}` must be a map of stage to next stages", path)
        used.add(gfact.name)
        return gfact
    if not (isinstance(graph, dict) and all(isinstance(v, list) for v in graph.values())):
        raise ctx.reject("compile_bad_test", "`graph` is a map fact or a mapping of stage to a list of next stages",
                         path)
    for stage, nexts in graph.items():
        if src is not None and isinstance(src.type, ir.EnumType):
            check_literal(ctx, stage, src.type, path + (stage,), f"fact `{src.name}`")
        for i, n in enumerate(nexts):
            if dst is not None and isinstance(dst.type, ir.EnumType):
                check_literal(ctx, n, dst.type, path + (stage, i), f"fact `{dst.name}`")
    return ir.StageGraph(tuple((stage, tuple(nexts)) for stage, nexts in graph.items()), ctx.loc(path))
