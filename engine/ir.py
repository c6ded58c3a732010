"""The typed intermediate representation of a compiled policy: the policy as data.

Compile produces only this (``PolicySet.ir``); every consumer reads only this: code generation
(the one lowering to Python), the interpreter that checks it (``engine.interpret``), explanations,
and tools that reason over rules (verification, impact). Every value is a frozen dataclass;
collections are tuples (or read-only mappings built once); every construct written in a rule file
carries the ``Location`` where it was written.

The parts, from the leaves up:

* fact types (``BooleanType``, ``IntegerType``, ``StringType``, ``EnumType``, ``ListType``,
  ``MapType``, ``ObjectType``) and ``Scale``; a ``Fact`` has a name, a path, a type and a slot;
* tests on one value (``Compare``, ``Member``, ``Contains``, ``Each``, ``Flag``, ``SameAs``,
  ``Both``), each with an explicit operator written as in the rule files;
* conditions (``FactCondition``, ``AllOf``, ``AnyOf``, ``Not``, ``Always``, ``Move`` over a
  ``StageGraph`` or a map fact);
* obligations used by rules (``ObligationUse`` with ``StaticParam``, ``FactParam``,
  ``FirstEnteredParam``), declared as ``ObligationDecl``;
* rules (``Guard``, ``Effect``) and decision tables (``ActionMatrix`` with ``MatrixRow`` and
  ``MatrixCell``; ``RowTable`` with ``Row`` cells and its ``NoMatch``);
* per action an ``ActionPlan`` (facts to read, rules to apply in order); per system a
  ``SystemIR``; the whole ``PolicyIR``.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, NamedTuple

from .errors import Location, SourceRef

__all__ = [
    "ActionMatrix", "ActionPlan", "AllOf", "Always", "AnyOf", "BooleanType", "Both", "Case", "Compare",
    "Condition", "Contains", "Each", "Effect", "EnumType", "Fact", "FactCondition", "FactParam", "FactRead",
    "FactType", "FirstEnteredParam", "Flag", "Guard", "IntegerType", "ListType", "Location", "MapType",
    "MatrixCell", "MatrixRow", "Member", "Move", "NoMatch", "Not", "ObjectType", "ObligationDecl",
    "ObligationUse", "Outcome", "Param", "PolicyIR", "Row", "RowCell", "RowTable", "SameAs", "Scale",
    "StageGraph", "StaticParam", "StringType", "SystemIR", "Test", "Unit", "Wildcard", "show", "words",
]


def show(value: Any) -> str:
    """A value as explanations print it."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return f"`{value}`" if value else "empty"
    return f"`{value}`"


# -- fact types -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scale:
    """An ordered status scale; the values of one step share a rank."""

    name: str
    steps: tuple[tuple[Any, ...], ...]
    location: Location

    @cached_property
    def rank(self) -> Mapping[Any, int]:
        return {value: r for r, step in enumerate(self.steps) for value in step}

    @property
    def values(self) -> tuple[Any, ...]:
        return tuple(self.rank)


@dataclass(frozen=True)
class BooleanType:
    kind: Literal["boolean"] = "boolean"

    def describe(self) -> str:
        return "`true` or `false`"

    def accepts(self, v: Any) -> bool:
        return v is True or v is False


@dataclass(frozen=True)
class IntegerType:
    min: int | None = None
    max: int | None = None
    kind: Literal["integer"] = "integer"

    def describe(self) -> str:
        return "a whole number" + (f" ≥ {self.min}" if self.min is not None else "")

    def accepts(self, v: Any) -> bool:
        return (type(v) is int and (self.min is None or v >= self.min)
                and (self.max is None or v <= self.max))


@dataclass(frozen=True)
class StringType:
    allow_empty: bool = False
    kind: Literal["string"] = "string"

    def describe(self) -> str:
        return "text" if self.allow_empty else "non-empty text"

    def accepts(self, v: Any) -> bool:
        return type(v) is str and (self.allow_empty or v != "")


@dataclass(frozen=True)
class EnumType:
    values: tuple[Any, ...]
    scale: Scale | None = None
    kind: Literal["enum"] = "enum"

    def describe(self) -> str:
        return "one of " + ", ".join(f"`{v}`" for v in self.values)

    @cached_property
    def _allowed(self) -> frozenset[Any]:
        return frozenset(self.values)

    @cached_property
    def _types(self) -> frozenset[type]:
        return frozenset(type(x) for x in self.values)

    def accepts(self, v: Any) -> bool:
        types = self._types
        if types == {str}:
            return type(v) is str and v in self._allowed
        return type(v) in types and v in self._allowed and not ((type(v) is bool) ^ (bool in types))


@dataclass(frozen=True)
class ListType:
    items: FactType | None = None
    kind: Literal["list"] = "list"

    def describe(self) -> str:
        return f"a list of {self.items.describe() if self.items else 'values'}"

    def accepts(self, v: Any) -> bool:
        items = self.items
        return type(v) is list and (items is None or all(items.accepts(x) for x in v))


@dataclass(frozen=True)
class MapType:
    values: FactType | None = None
    kind: Literal["map"] = "map"

    def describe(self) -> str:
        return "a mapping"

    def accepts(self, v: Any) -> bool:
        inner = self.values
        return type(v) is dict and all(type(k) is str and (inner is None or inner.accepts(x)) for k, x in v.items())


@dataclass(frozen=True)
class ObjectType:
    kind: Literal["object"] = "object"

    def describe(self) -> str:
        return "an object"

    def accepts(self, v: Any) -> bool:
        return type(v) is dict


FactType = BooleanType | IntegerType | StringType | EnumType | ListType | MapType | ObjectType
SCALAR_KINDS = frozenset({"boolean", "integer", "string", "enum"})


@dataclass(frozen=True, slots=True)
class Fact:
    """A declared fact: where the request carries it, its type, and its slot in a plan."""

    name: str
    path: tuple[str, ...]
    type: FactType
    slot: int
    has_default: bool
    default: Any
    says: str
    location: Location

    @property
    def dotted(self) -> str:
        return ".".join(self.path)

    @property
    def label(self) -> str:
        return self.says or self.name


# -- tests on one value ---------------------------------------------------------------------------
CompareOp = Literal["is", "is_not", "at_least", "above", "at_most", "below"]


@dataclass(frozen=True, slots=True)
class Compare:
    """``is``/``is_not`` a literal, or an order comparison: by number, or by rank on ``scale``."""

    op: CompareOp
    value: Any
    scale: Scale | None = None


@dataclass(frozen=True, slots=True)
class Member:
    """``in`` / ``not_in`` a list of literals (in the order written)."""

    op: Literal["in", "not_in"]
    values: tuple[Any, ...]

    @property
    def options(self) -> frozenset[Any]:
        return frozenset(self.values)


@dataclass(frozen=True, slots=True)
class Contains:
    """A list value ``contains`` / ``lacks`` a literal."""

    op: Literal["contains", "lacks"]
    value: Any


@dataclass(frozen=True, slots=True)
class Each:
    """``some`` / ``every`` element of a list value passes ``test``."""

    op: Literal["some", "every"]
    test: Test


@dataclass(frozen=True, slots=True)
class Flag:
    """``empty`` (a list or map) or ``entered`` (not null, not empty text), as ``value`` says."""

    op: Literal["empty", "entered"]
    value: bool


@dataclass(frozen=True, slots=True)
class SameAs:
    """``equals_fact`` / ``in_fact``: compared with the value of another fact."""

    op: Literal["equals_fact", "in_fact"]
    other: Fact


@dataclass(frozen=True, slots=True)
class Both:
    """Several tests written in one mapping; all must hold (tested in order)."""

    tests: tuple[Test, ...]
    op: Literal["and"] = "and"


Test = Compare | Member | Contains | Each | Flag | SameAs | Both

_CMP_WORDS = {"at_least": "at least", "above": "above", "at_most": "at most", "below": "below"}


def words(test: Test) -> str:
    """The test in the words of explanations (``at least `confirmed```, ``one of `a`, `b```)."""
    if isinstance(test, Compare):
        if test.op == "is":
            return show(test.value)
        if test.op == "is_not":
            return f"not {show(test.value)}"
        shown = show(test.value) if test.scale is not None else str(test.value)
        return f"{_CMP_WORDS[test.op]} {shown}"
    if isinstance(test, Member):
        listed = ", ".join(show(a) for a in test.values)
        return f"one of {listed}" if test.op == "in" else f"none of {listed}"
    if isinstance(test, Contains):
        return f"contains {show(test.value)}" if test.op == "contains" else f"does not contain {show(test.value)}"
    if isinstance(test, Each):
        return f"has {'some' if test.op == 'some' else 'every'} element {words(test.test)}"
    if isinstance(test, Flag):
        return test.op if test.value else f"not {test.op}"
    if isinstance(test, SameAs):
        return f"{'equal to' if test.op == 'equals_fact' else 'listed in'} {test.other.label}"
    return " and ".join(words(t) for t in test.tests)


# -- conditions -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FactCondition:
    """One fact passes one test."""

    fact: Fact
    test: Test
    written: SourceRef                 # where; its location is looked up when read

    @property
    def location(self) -> Location:
        return self.written.location

    @property
    def words(self) -> str:
        return words(self.test)


@dataclass(frozen=True, slots=True)
class AllOf:
    parts: tuple[Condition, ...]
    location: Location


@dataclass(frozen=True, slots=True)
class AnyOf:
    parts: tuple[Condition, ...]
    location: Location


@dataclass(frozen=True, slots=True)
class Not:
    inner: Condition
    location: Location


@dataclass(frozen=True, slots=True)
class Always:
    location: Location


@dataclass(frozen=True)
class StageGraph:
    """Stages and the stages each may move to, as written; ``start`` and ``final`` (may be empty)
    declare where a life cycle begins and its intended ends (read by the verifier, not by decisions)."""

    next: tuple[tuple[Any, tuple[Any, ...]], ...]
    location: Location
    start: tuple[Any, ...] = ()
    final: tuple[Any, ...] = ()

    @cached_property
    def edges(self) -> Mapping[Any, frozenset[Any]]:
        return {stage: frozenset(nexts) for stage, nexts in self.next}


@dataclass(frozen=True, slots=True)
class Move:
    """The move from ``source``'s stage to ``target``'s is permitted by ``graph`` (inline, or a map
    fact); a stage the graph does not list moves anywhere when ``unlisted_allowed``, nowhere otherwise."""

    source: Fact
    target: Fact
    graph: StageGraph | Fact
    unlisted_allowed: bool
    location: Location


Condition = FactCondition | AllOf | AnyOf | Not | Always | Move


# -- obligations ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StaticParam:
    name: str
    value: Any


@dataclass(frozen=True, slots=True)
class FactParam:
    name: str
    fact: Fact


@dataclass(frozen=True, slots=True)
class FirstEnteredParam:
    """The first of ``facts`` that is entered (not null, not empty text), else null."""

    name: str
    facts: tuple[Fact, ...]


Param = StaticParam | FactParam | FirstEnteredParam


@dataclass(frozen=True, slots=True)
class ObligationUse:
    """An obligation a rule asks for; parameters in the order a decision lists them (fixed ones
    first); ``when`` (if any) must hold for it to be asked for."""

    name: str
    params: tuple[Param, ...]
    when: Condition | None
    location: Location

    @property
    def is_static(self) -> bool:
        return all(isinstance(p, StaticParam) for p in self.params)


@dataclass(frozen=True)
class ObligationDecl:
    name: str
    says: str
    params: tuple[tuple[str, FactType], ...]
    overrides: tuple[str, ...]
    location: Location


# -- rules and tables -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Guard:
    """Denies when ``when`` (if any) and ``deny`` hold."""

    id: str
    says: str
    when: Condition | None
    deny: Condition
    location: Location


@dataclass(frozen=True, slots=True)
class Case:
    condition: Condition
    obligations: tuple[ObligationUse, ...]


@dataclass(frozen=True, slots=True)
class Effect:
    """Fires when ``when`` (if any) holds, asking for the obligations of the first case that holds,
    else ``otherwise``. An effect rule has no cases; an action-matrix cell ``o when w`` has one."""

    id: str
    says: str
    when: Condition | None
    cases: tuple[Case, ...]
    otherwise: tuple[ObligationUse, ...]
    location: Location


@dataclass(frozen=True)
class Outcome:
    name: str
    obligations: tuple[ObligationUse, ...]
    location: Location


@dataclass(frozen=True, slots=True)
class MatrixCell:
    """One cell of an action matrix: ``outcome`` for ``action``, when one of ``words`` holds
    (else the table's ``otherwise``); no words: always ``outcome``."""

    action: str
    outcome: str
    words: tuple[str, ...]
    location: Location


@dataclass(frozen=True)
class MatrixRow:
    id: str
    entity: str
    says: str
    cells: tuple[MatrixCell, ...]
    location: Location


@dataclass(frozen=True)
class ActionMatrix:
    id: str
    says: str
    hit: str
    words: tuple[tuple[str, Condition], ...]
    outcomes: tuple[Outcome, ...]
    otherwise: str | None
    operations: tuple[str, ...]
    rows: tuple[MatrixRow, ...]
    location: Location


@dataclass(frozen=True, slots=True)
class Wildcard:
    """A ``-`` (or empty) cell of a row table: any value."""

    written: SourceRef                 # where; its location is looked up when read

    @property
    def location(self) -> Location:
        return self.written.location


RowCell = FactCondition | Wildcard


class Row(NamedTuple):
    """A row of a row table. A named tuple, not a frozen dataclass like the rest: a table has
    thousands of rows, and a named tuple is made in a third of the time."""

    id: str
    says: str
    cells: tuple[RowCell, ...]         # one per column, in the order of RowTable.columns
    outcome: str
    obligations: tuple[ObligationUse, ...]
    written: SourceRef                 # where; its location is looked up when read

    @property
    def location(self) -> Location:
        return self.written.location


@dataclass(frozen=True)
class NoMatch:
    """What a row table decides when no row matches: ``deny`` (the decision is a denial citing the
    table), ``error`` (an evaluation error), or a named outcome (its obligations, citing the table)."""

    outcome: str                                  # "deny" | "error" | an outcome name
    obligations: tuple[ObligationUse, ...]        # of the named outcome; empty for deny and error
    location: Location

    @property
    def says(self) -> str:
        return "no row matched"


@dataclass(frozen=True)
class RowTable:
    id: str
    says: str
    hit: Literal["unique", "first", "collect"]
    when: Condition | None
    columns: tuple[Fact, ...]
    rows: tuple[Row, ...]
    no_match: NoMatch | None              # None: no row matching decides nothing (an allow)
    location: Location


Unit = Guard | Effect | RowTable


# -- plans ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FactRead:
    """A fact an action reads: ``required``, ``optional`` (``default`` when absent), or
    ``conditional`` (required when ``required_when`` holds, else absent)."""

    fact: Fact
    mode: Literal["required", "optional", "conditional"]
    default: Any
    required_when: Condition | None
    location: Location


@dataclass(frozen=True)
class ActionPlan:
    """Everything one action's decision does, in order: read and check the facts, apply the guards,
    then the effects and tables; ``overrides`` says which obligations drop which."""

    system: str
    action: str
    slots: int                                   # facts of the system + the built-in `action`
    reads: tuple[FactRead, ...]
    units: tuple[Unit, ...]
    overrides: Mapping[str, tuple[str, ...]]
    location: Location


@dataclass(frozen=True)
class SystemIR:
    name: str
    facts: tuple[Fact, ...]                      # the built-in `action` fact last
    scales: tuple[Scale, ...]
    obligations: tuple[ObligationDecl, ...]
    tables: tuple[ActionMatrix | RowTable, ...]
    plans: Mapping[str, ActionPlan]              # action -> plan
    location: Location


@dataclass(frozen=True)
class PolicyIR:
    version: str
    systems: Mapping[str, SystemIR] = field(default_factory=dict)

    def plan(self, system: str, action: str) -> ActionPlan | None:
        s = self.systems.get(system)
        return s.plans.get(action) if s is not None else None
