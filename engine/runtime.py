"""What generated decide functions call: building decisions and their traces, row tables behind
their index, moves over stage graphs. Nothing here knows a policy; ``codegen`` passes it the
lowered pieces of one."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from . import rowindex
from .decision import Decision, DecisionError, Obligation, freeze, read_only
from .ir import show

Trace = list[dict[str, Any]] | None
Made = tuple[Obligation, Any]                 # an obligation and its de-duplication key
Fired = list[tuple[str, Any]]                 # (rule id, obligations it asks for)


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()   # a fact not given in the request (and without a default)


class MissingFact(Exception):
    """A rule needed a fact that the request did not give."""

    def __init__(self, path: str):
        super().__init__(path)
        self.path = path


class EvaluationError(Exception):
    """Evaluation found the policy itself at fault (e.g. two rows of a `unique` table matched)."""


class Leaf(NamedTuple):
    """What a trace record of one fact test says, fixed at compile time."""

    fact: str
    path: str
    words: str
    label: str


class FactCheck(NamedTuple):
    """How a generated function reports a value of the wrong type."""

    dotted: str
    expected: str


class MoveCheck(NamedTuple):
    fact: str
    path: str
    unlisted_allowed: bool


class Cell(NamedTuple):
    slot: int
    test: Callable[[Any, list[Any]], bool]
    leaf: Leaf


class LoweredRow(NamedTuple):
    id: str
    says: str
    cells: tuple[Cell, ...]
    obligations: Callable[[list[Any], Trace], list[Made]]
    static: bool                      # its obligations read no fact: the same for every request


class LoweredNoMatch(NamedTuple):
    outcome: str                                                      # deny | error | an outcome name
    obligations: Callable[[list[Any], Trace], list[Made]] | None      # of the named outcome


class LoweredTable(NamedTuple):
    """A row table as generated code runs it: the rows to try come from its index (``rowindex``)."""

    id: str
    says: str
    hit: str
    when: Callable[[list[Any], Trace], bool] | None
    rows: tuple[LoweredRow, ...]
    tree: rowindex.Node               # without a trace: the rows a request can match
    absent_slots: tuple[int, ...]     # columns whose fact may be ABSENT: then the scan below is used
    scan: rowindex.Scan               # with a trace: the rows of one column's value, every cell tested
    no_match: LoweredNoMatch | None
    alone: Mapping[str, tuple[str, ...]] | None   # the action's overrides when nothing else can fire
    decided: dict[int, Decision]                    # row -> its decision, when the table is alone


def absent(path: str) -> Any:
    raise MissingFact(path)


def frozen_trace(tr: Trace) -> tuple[dict[str, Any], ...] | None:
    return tuple(read_only(tr)) if tr is not None else None


def fail(decision: Decision, tr: Trace) -> Decision:
    return decision if tr is None else decision._replace(trace=frozen_trace(tr))


def invalid(check: FactCheck, value: Any, tr: Trace, version: str) -> Decision:
    shown = "an object" if isinstance(value, dict) else "a list" if isinstance(value, list) else show(value)
    return Decision(False, (), (), DecisionError("invalid_fact", check.dotted,
                                                 f"`{check.dotted}` must be {check.expected}, not {shown}"),
                    version, frozen_trace(tr))


def leaf(t: list[dict[str, Any]], meta: Leaf, value: Any, held: bool) -> bool:
    t.append({"fact": meta.fact, "path": meta.path, "test": meta.words, "value": value, "held": held,
              "says": f"{meta.label}: expected {meta.words}, found {show(value)} "
                      f"({'holds' if held else 'does not hold'})"})
    return held


def always(t: list[dict[str, Any]]) -> bool:
    t.append({"test": "always", "held": True, "says": "this rule always applies"})
    return True


def entered(value: Any) -> bool:
    return value is not None and value != ""


def obligation(name: str, params: dict[str, Any]) -> Made:
    """An obligation whose parameters were read from facts (a read-only copy of them)."""
    return Obligation(name, read_only(params)), (name, freeze(params))


def move(t: Trace, meta: MoveCheck, graph: Any, a: Any, b: Any) -> bool:
    if graph is not None and a in graph:
        held = b in graph[a]
        why = f"{show(b)} is {'' if held else 'not '}listed as a next stage of {show(a)}"
    else:
        held = meta.unlisted_allowed
        why = f"no next stages are listed for {show(a)}, so every move is {'allowed' if held else 'denied'}"
    if t is not None:
        t.append({"fact": meta.fact, "path": meta.path, "test": "move", "value": [a, b], "held": held,
                  "says": f"the move from {show(a)} to {show(b)} is permitted: {why}"})
    return held


def _candidates(table: LoweredTable, vals: list[Any]) -> Iterable[int]:
    slot, buckets, wildcards = table.scan
    if slot is None:
        return range(len(table.rows))
    v = vals[slot]
    if v is ABSENT:
        return range(len(table.rows))
    try:
        return buckets.get(v, wildcards)
    except TypeError:  # unhashable value: try every row
        return range(len(table.rows))


def _row_holds(row: LoweredRow, vals: list[Any], sub: Trace) -> bool:
    for cell in row.cells:
        v = vals[cell.slot]
        if v is ABSENT:
            raise MissingFact(cell.leaf.path)
        held = cell.test(v, vals)
        if sub is not None:
            leaf(sub, cell.leaf, v, held)
        if not held:
            return False
    return True


def no_row_matched(table_id: str, outcome: str, made: list[Made] | None, version: str, tr: Trace,
                   fired: Fired, denied: list[str]) -> Decision | None:
    """A row table's declared `no_match`: deny (the table is cited), an error decision (returned), or
    the obligations of the named outcome; the trace says that no row matched."""
    says = f"no row of table `{table_id}` matched"
    record: dict[str, Any] = {"rule": table_id, "kind": "table", "says": says, "outcome": "no row matched",
                              "no_match": outcome}
    if made is not None:
        fired.append((table_id, made))
        record["obligations"] = [o.to_dict() for o, _ in made]
    elif outcome == "deny":
        denied.append(table_id)
    if tr is not None:
        tr.append(record)
    if outcome == "error":
        return Decision(False, (), (), DecisionError("evaluation_error", None, says), version, frozen_trace(tr))
    return None


def run_rows(table: LoweredTable, vals: list[Any], tr: Trace, fired: Fired, denied: list[str],
             version: str) -> Decision | None:
    """Apply a row table: every matching row fires (`first`: only the first; `unique`: more than one
    is an evaluation error); when none does, its `no_match` (if declared) decides. Returns the
    decision when that ends the evaluation: `no_match: error`, or, when the table alone decides its
    action (``table.alone``), the decision of the first row that matched."""
    sub: Trace = [] if tr is not None else None
    if table.when is not None and not table.when(vals, sub):
        if tr is not None:
            tr.append({"rule": table.id, "kind": "table", "says": table.says, "outcome": "not applicable",
                       "conditions": sub})
        return None
    entries = None
    if tr is None:
        for slot in table.absent_slots:
            if vals[slot] is ABSENT:     # a scan says which missing fact a row needed first
                break
        else:
            entries = rowindex.lookup(table.tree, vals)    # None: a value does not fit the index
    if entries is not None:
        matched = _quick(table, entries, vals, fired, version)
        if isinstance(matched, Decision):
            return matched           # the decision of the first row that matched
    else:
        matched = _traced(table, _candidates(table, vals), vals, tr, fired)
    if table.hit == "unique" and len(matched) > 1:
        ids = ", ".join(table.rows[i].id for i in matched)
        raise EvaluationError(f"table `{table.id}` has hit policy unique but rows {ids} all match")
    if matched or table.no_match is None:
        return None
    nm = table.no_match
    made = nm.obligations(vals, tr) if nm.obligations is not None else None
    return no_row_matched(table.id, nm.outcome, made, version, tr, fired, denied)


def _quick(table: LoweredTable, entries: tuple[rowindex.Entry, ...], vals: list[Any], fired: Fired,
           version: str) -> list[int] | Decision:
    """Without a trace: test only the rest of each entry. Returns the rows that matched, or the
    decision of the first one when the table alone decides (computed once per row, then kept)."""
    matched: list[int] = []
    first = table.hit == "first"
    for i, rest in entries:
        for cell in rest:
            if not cell.test(vals[cell.slot], vals):
                break
        else:
            row = table.rows[i]
            if first and table.alone is not None and row.static:
                decision = table.decided.get(i)
                if decision is None:
                    decision = table.decided[i] = finish(table.alone, [(row.id, row.obligations(vals, None))],
                                                         version, None)
                return decision
            matched.append(i)
            fired.append((row.id, row.obligations(vals, None)))
            if first:
                break
    return matched


def _traced(table: LoweredTable, candidates: Iterable[int], vals: list[Any], tr: Trace,
            fired: Fired) -> list[int]:
    """Every cell of each candidate row tested (and recorded in the trace when there is one)."""
    matched = []
    for i in candidates:
        row = table.rows[i]
        row_sub: Trace = [] if tr is not None else None
        if _row_holds(row, vals, row_sub):
            matched.append(i)
            fired.append((row.id, row.obligations(vals, row_sub)))
            if tr is not None:
                tr.append({"rule": row.id, "kind": "table row", "table": table.id, "says": row.says,
                           "outcome": "fired", "conditions": row_sub})
            if table.hit == "first":
                break
            continue
        if tr is not None:
            tr.append({"rule": row.id, "kind": "table row", "table": table.id, "says": row.says,
                       "outcome": "not matched", "conditions": row_sub})
    return matched


def finish(overrides: Mapping[str, tuple[str, ...]], fired: Fired, version: str, tr: Trace) -> Decision:
    """Deny-overrides already passed: combine the obligations of the effects that fired."""
    if not fired:
        return Decision(True, (), (), None, version, frozen_trace(tr))
    if len(fired) == 1:
        rid, obls = fired[0]
        if not obls:
            return Decision(True, (), (rid,), None, version, frozen_trace(tr))
        if len(obls) == 1:
            return Decision(True, (obls[0][0],), (rid,), None, version, frozen_trace(tr))
    dropped: set[str] = set()
    if overrides:
        for _, obls in fired:
            for o, _ in obls:
                more = overrides.get(o.name)
                if more:
                    dropped.update(more)
    rules: list[str] = []
    obligations: list[Obligation] = []
    seen: set[Any] = set()
    for rid, obls in fired:
        kept = [(o, k) for o, k in obls if o.name not in dropped] if dropped else obls
        if obls and not kept:
            continue  # every obligation of this rule was overridden: it did not decide
        if rid not in rules:
            rules.append(rid)
        for o, k in kept:
            if k not in seen:
                seen.add(k)
                obligations.append(o)
    return Decision(True, tuple(obligations), tuple(rules), None, version, frozen_trace(tr))
