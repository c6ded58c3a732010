"""What the compile stages of one system section share: where things are written, what is declared
so far, and the list every problem is reported into."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

from .. import ir
from ..errors import Location, PolicyError, SourceRef, did_you_mean
from ..evaluate import RuleInfo
from ..load import LoadedFile

_BRACES = re.compile(r"\{([^{}]*)\}")

Path = tuple[Any, ...]


class Rejected(Exception):
    """A construct was refused; its errors are already reported. Raised to skip what depends on it."""


T = TypeVar("T")
U = TypeVar("U")


def lower_all(items: Iterable[T], lower: Callable[[T], U]) -> list[U]:
    """Lower every item, so each reports its errors; then refuse all if any was refused."""
    out: list[U] = []
    refused = False
    for item in items:
        try:
            out.append(lower(item))
        except Rejected:
            refused = True
    if refused:
        raise Rejected()
    return out


def expand(pattern: str) -> list[str]:
    """Shell-like brace expansion: ``"{a,b}.{x,y}"`` -> a.x, a.y, b.x, b.y."""
    m = _BRACES.search(pattern)
    if not m:
        return [pattern]
    out: list[str] = []
    for choice in m.group(1).split(","):
        out.extend(expand(pattern[: m.start()] + choice.strip() + pattern[m.end():]))
    return out


def refs(value: Any) -> list[Any]:
    """A reference written as one name or a list of names."""
    return [value] if isinstance(value, str) else list(value or [])


@dataclass(frozen=True)
class ReadMode:
    """How an action reads a fact, as declared in its `reads`."""

    mode: Any                       # "required" | "optional" | {"default": ...} | {"required_when": ...}
    path: Path


@dataclass
class Context:
    """One system section of a rule file while it compiles."""

    loaded: LoadedFile
    index: int
    doc: dict[str, Any]
    errors: list[PolicyError]
    ids: dict[str, SourceRef]                      # rule id -> where first defined (all systems)
    scales: dict[str, ir.Scale] = field(default_factory=dict)
    facts: dict[str, ir.Fact] = field(default_factory=dict)
    obligations: dict[str, ir.ObligationDecl] = field(default_factory=dict)
    actions: dict[str, dict[str, ReadMode]] = field(default_factory=dict)   # action -> fact -> mode
    action_paths: dict[str, Path] = field(default_factory=dict)
    units: dict[str, list[ir.Unit]] = field(default_factory=dict)           # action -> its rules
    tables: list[ir.ActionMatrix | ir.RowTable] = field(default_factory=list)
    rule_infos: list[RuleInfo] = field(default_factory=list)
    broken: set[str] = field(default_factory=set)  # actions named by a refused rule
    plans: dict[str, ir.ActionPlan] = field(default_factory=dict)
    skip: frozenset[int] = frozenset()            # rules the schema refused: not compiled
    refused_facts: set[str] = field(default_factory=set)   # declared, but refused: uses are not reported

    @cached_property
    def system(self) -> str:
        return str(self.doc["system"])

    @property
    def file(self) -> str:
        return self.loaded.path

    def loc(self, path: Path, key: bool = False) -> Location:
        return self.loaded.source.at((self.index,) + tuple(path), key=key)

    def ref(self, path: Path) -> SourceRef:
        """``loc`` of ``path``, looked up when read."""
        return SourceRef(self.loaded.source, (self.index,) + tuple(path))

    def error(self, code: str, message: str, path: Path | SourceRef, help: str | None = None,
              key: bool = False) -> None:
        where = path.location if isinstance(path, SourceRef) else self.loc(path, key)
        self.errors.append(PolicyError(code, message, where, help))

    def reject(self, code: str, message: str, path: Path, help: str | None = None, key: bool = False) -> Rejected:
        """Report an error; the caller raises the returned exception to skip what depends on it."""
        self.error(code, message, path, help, key)
        return Rejected()

    def fact(self, name: Any, path: Path, key: bool = False) -> ir.Fact:
        """The declared fact ``name``; ``key`` when the name is written as a mapping key."""
        fact = self.facts.get(name) if isinstance(name, str) else None
        if fact is None and name in self.refused_facts:
            raise Rejected()          # its declaration's error is the root cause
        if fact is None:
            raise self.reject("compile_unknown_fact", f"unknown fact `{name}`", path,
                              did_you_mean(name, self.facts) or "declare it under `facts`", key=key)
        return fact

    def add_unit(self, actions: list[str], unit: ir.Unit) -> None:
        for action in actions:
            self.units.setdefault(action, []).append(unit)

    def info(self, rule_id: str, kind: str, says: str, sources: tuple[str, ...], actions: list[str] | tuple[str, ...],
             path: Path | Location | SourceRef, definition: Any) -> None:
        line = path if isinstance(path, SourceRef) else (path if isinstance(path, Location) else self.loc(path)).line
        self.rule_infos.append(RuleInfo._make((rule_id, kind, says, sources, self.system, tuple(actions),
                                               self.file, line, definition)))

    def register_id(self, rule_id: str, path: Path | SourceRef) -> None:
        first = self.ids.get(rule_id)
        if first is not None:
            self.error("compile_duplicate_rule", f"rule id `{rule_id}` is used twice", path,
                       f"the first `{rule_id}` is at {first.location}")
        else:
            # its location is looked up only for an error
            self.ids[rule_id] = path if isinstance(path, SourceRef) else self.ref(path)

    def sources_of(self, value: Any, path: Path) -> tuple[str, ...]:
        declared = self.doc.get("sources") or {}
        names = refs(value)
        for i, name in enumerate(names):
            if name not in declared:
                self.error("compile_unknown_source", f"unknown source `{name}`",
                           path + ((i,) if isinstance(value, list) else ()),
                           did_you_mean(name, declared) or "declare it under `sources`")
        return tuple(names)
