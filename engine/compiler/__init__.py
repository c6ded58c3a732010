"""Compile: validated rule documents to the typed IR (``engine.ir``), with every problem reported.

Each system section goes through the same named stages, in order, each reading what the stages
before it declared (like the stage list of OPA's compiler). A stage reports every problem it
finds; a construct it refuses is left out and whatever depends on it is not reported again, so
the first error of a chain is the one shown.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, NamedTuple

from .. import ir
from ..errors import Location, PolicyError, SourceRef
from ..evaluate import RuleInfo, canonical_json
from ..load import LoadedFile
from ..validate import SchemaProblem
from .catalogue import check_coverage, declare_actions
from .context import Context
from .facts import declare_facts, declare_scales
from .obligations import declare_obligations
from .plans import build_plans
from .rules import compile_rules

Stage = Callable[[Context], None]

STAGES: tuple[tuple[str, Stage], ...] = (
    ("scales", declare_scales),            # status scales
    ("facts", declare_facts),              # fact types and paths
    ("obligations", declare_obligations),  # obligations, their parameters and overrides
    ("actions", declare_actions),          # the action catalogue and what each action reads
    ("rules", compile_rules),              # guards, effects and tables, lowered per action
    ("coverage", check_coverage),          # every action is decided by some rule
    ("plans", build_plans),                # per action: facts in order, guards first
)


def version_of(files: list[LoadedFile], display_root: str) -> str:
    """The policy version names the content only: paths relative to the rules folder, never how the
    folder was named on the command line, so the same files give the same id everywhere."""
    content = {f.path[len(display_root):] if f.path.startswith(display_root) else f.path: f.documents
               for f in files}
    text = canonical_json(content, acyclic=True, plain=all(f.plain for f in files))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class Document(NamedTuple):
    """One system section to compile; ``skip``: its rules (by index) that the schema refused."""

    loaded: LoadedFile
    section: int                       # the document's index in its file
    doc: dict[str, Any]
    skip: frozenset[int] = frozenset()


def rules_at_fault(problems: list[SchemaProblem]) -> frozenset[int] | None:
    """The rules a document's schema problems lie in, or None when a problem lies outside the rules
    (in what every rule depends on: then the document is not compiled and only its schema errors show)."""
    rules: set[int] = set()
    for p in problems:
        rel = p.path[1:]
        if len(rel) < 2 or rel[0] != "rules" or not isinstance(rel[1], int):
            return None
        rules.add(rel[1])
    return frozenset(rules)


def lower(files: list[LoadedFile], docs: list[Document], errors: list[PolicyError],
          display_root: str = "") -> tuple[ir.PolicyIR, tuple[RuleInfo, ...]]:
    """The IR of the documents and the rules' descriptions; problems go to ``errors``."""
    ids: dict[str, SourceRef] = {}
    systems: dict[str, ir.SystemIR] = {}
    infos: list[RuleInfo] = []
    seen: dict[str, Location] = {}
    for loaded, index, doc, skip in docs:
        ctx = Context(loaded, index, doc, errors, ids, skip=skip)
        if ctx.system in seen:
            ctx.error("compile_duplicate_system", f"system `{ctx.system}` has two sections", ("system",),
                      f"the first is at {seen[ctx.system]}; put its rules in one section")
            continue
        seen[ctx.system] = ctx.loc(("system",))
        for _, stage in STAGES:
            stage(ctx)
        systems[ctx.system] = ir.SystemIR(ctx.system, tuple(ctx.facts.values()), tuple(ctx.scales.values()),
                                          tuple(ctx.obligations.values()), tuple(ctx.tables), ctx.plans,
                                          ctx.loc(("system",)))
        infos.extend(ctx.rule_infos)
    return ir.PolicyIR(version_of(files, display_root), systems), tuple(infos)
