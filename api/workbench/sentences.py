"""Guards and effects as sentences, and stage graphs as pictures, read from the compiled IR.

A rule reads as its id, its kind, what it ``says``, its sources (links when a source has a URL),
the actions it covers and its conditions and obligations in words (``ir.words`` for each test).
A stage graph written inline in a ``move`` condition is drawn by Graphviz ``dot`` as SVG on the
server (no script in the page); without ``dot`` the page lists its moves instead.
"""
from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from engine import ir

from .grids import Section, Source

DOT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Graph:
    rule: str
    stages: tuple[str, ...]
    edges: tuple[tuple[str, str], ...]
    start: tuple[str, ...]
    final: tuple[str, ...]
    svg: str | None            # None when Graphviz is not installed


@dataclass(frozen=True)
class RuleSentence:
    id: str
    kind: str                  # guard | effect
    system: str
    says: str
    sources: tuple[Source, ...]
    actions: tuple[str, ...]
    when: str | None
    deny: str | None           # guards: what denies
    obligations: tuple[str, ...]
    where: str                 # file:line
    graphs: tuple[Graph, ...]


# -- conditions in words --------------------------------------------------------------------------
def _fact_words(c: ir.FactCondition) -> str:
    said = ir.words(c.test)
    if isinstance(c.test, (ir.Contains, ir.Each)):
        return f"`{c.fact.name}` {said}"
    return f"`{c.fact.name}` is {said}"


def condition(c: ir.Condition) -> str:
    """A condition as a sentence: `sop` is yes and `statecode` is `submitted`."""
    if isinstance(c, ir.FactCondition):
        return _fact_words(c)
    if isinstance(c, ir.Always):
        return "always"
    if isinstance(c, ir.Not):
        return f"not ({condition(c.inner)})"
    if isinstance(c, ir.Move):
        graph = ("the stage graph below" if isinstance(c.graph, ir.StageGraph)
                 else f"the stage graph in `{c.graph.name}`")
        unlisted = "; a stage it does not list moves anywhere" if c.unlisted_allowed else ""
        return f"the move from `{c.source.name}` to `{c.target.name}` is one {graph} permits{unlisted}"
    parts = [_part(p) for p in c.parts]
    return "either " + " or ".join(parts) if isinstance(c, ir.AnyOf) else " and ".join(parts)


def _part(c: ir.Condition) -> str:
    grouped = isinstance(c, ir.AnyOf) or (isinstance(c, ir.AllOf) and len(c.parts) > 1)
    return f"({condition(c)})" if grouped else condition(c)


def _param(p: ir.Param) -> str:
    if isinstance(p, ir.StaticParam):
        return f"{p.name} = {ir.show(p.value)}"
    if isinstance(p, ir.FactParam):
        return f"{p.name} = the value of `{p.fact.name}`"
    return f"{p.name} = the first entered of " + ", ".join(f"`{f.name}`" for f in p.facts)


def obligation(use: ir.ObligationUse) -> str:
    text = f"`{use.name}`"
    if use.params:
        text += " (" + ", ".join(_param(p) for p in use.params) + ")"
    if use.when is not None:
        text += f" when {condition(use.when)}"
    return text


# -- stage graphs ---------------------------------------------------------------------------------
def _moves(c: ir.Condition | None) -> Iterator[ir.StageGraph]:
    if isinstance(c, ir.Move) and isinstance(c.graph, ir.StageGraph):
        yield c.graph
    elif isinstance(c, ir.Not):
        yield from _moves(c.inner)
    elif isinstance(c, (ir.AllOf, ir.AnyOf)):
        for part in c.parts:
            yield from _moves(part)


def _quote(value: Any) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def dot_source(graph: ir.StageGraph) -> str:
    lines = ["digraph stages {", "  rankdir=LR;", '  node [shape=box, style=rounded, fontname="sans-serif"];',
             '  edge [fontname="sans-serif"];']
    for stage in graph.start:
        lines.append(f"  {_quote(stage)} [style=\"rounded,bold\"];")
    for stage in graph.final:
        lines.append(f"  {_quote(stage)} [peripheries=2];")
    for stage, nexts in graph.next:
        lines.append(f"  {_quote(stage)};")
        lines.extend(f"  {_quote(stage)} -> {_quote(n)};" for n in nexts)
    return "\n".join(lines + ["}"]) + "\n"


_SVG: dict[str, str | None] = {}
_SVG_LOCK = threading.Lock()


def svg(dot: str) -> str | None:
    """The SVG Graphviz draws for ``dot`` (inline: no XML prolog), or None without ``dot``."""
    with _SVG_LOCK:
        if dot in _SVG:
            return _SVG[dot]
    program = shutil.which("dot")
    drawn = None
    if program is not None:
        done = subprocess.run([program, "-Tsvg"], input=dot, capture_output=True, text=True, timeout=DOT_TIMEOUT,
                              check=False)
        if done.returncode == 0 and "<svg" in done.stdout:
            drawn = done.stdout[done.stdout.index("<svg"):]
    with _SVG_LOCK:
        if len(_SVG) > 256:
            _SVG.clear()
        _SVG[dot] = drawn
    return drawn


def graph(rule_id: str, g: ir.StageGraph) -> Graph:
    stages: list[str] = []
    for stage, nexts in g.next:
        for s in (stage, *nexts):
            if str(s) not in stages:
                stages.append(str(s))
    edges = tuple((str(a), str(b)) for a, nexts in g.next for b in nexts)
    return Graph(rule_id, tuple(stages), edges, tuple(map(str, g.start)), tuple(map(str, g.final)),
                 svg(dot_source(g)))


# -- rules ----------------------------------------------------------------------------------------
def _units(policy_set: Any) -> dict[tuple[str, str], ir.Guard | ir.Effect]:
    found: dict[tuple[str, str], ir.Guard | ir.Effect] = {}
    for name, system in policy_set.ir.systems.items():
        for plan in system.plans.values():
            for unit in plan.units:
                if isinstance(unit, (ir.Guard, ir.Effect)):
                    found.setdefault((name, unit.id), unit)
    return found


def _sentence(info: Any, unit: ir.Guard | ir.Effect, sources: dict[str, Source]) -> RuleSentence:
    graphs = tuple(graph(info.id, g) for c in _conditions(unit) for g in _moves(c))
    if isinstance(unit, ir.Guard):
        deny: str | None = condition(unit.deny)
        uses: tuple[ir.ObligationUse, ...] = ()
    else:
        deny = None
        uses = unit.otherwise
    return RuleSentence(
        info.id, info.kind, info.system, info.says,
        tuple(sources.get(s) or Source(s, "", s, None) for s in info.sources), tuple(info.actions),
        None if unit.when is None else condition(unit.when), deny, tuple(obligation(u) for u in uses),
        f"{info.file}:{info.line}", graphs)


def _conditions(unit: ir.Guard | ir.Effect) -> Iterator[ir.Condition | None]:
    yield unit.when
    if isinstance(unit, ir.Guard):
        yield unit.deny
    else:
        for use in unit.otherwise:
            yield use.when


def sentences(policy_set: Any, sections: tuple[Section, ...]) -> tuple[RuleSentence, ...]:
    """Every guard and effect of a compiled version, in the order the rule files write them."""
    units = _units(policy_set)
    sources = {(s.system, src.id): src for s in sections for src in s.sources}
    out = []
    for info in policy_set.rules:
        unit = units.get((info.system, info.id))
        if unit is None or info.kind not in ("guard", "effect"):
            continue
        mine = {sid: src for (system, sid), src in sources.items() if system == info.system}
        out.append(_sentence(info, unit, mine))
    return tuple(out)
