"""The one lowering of the IR to Python: each action plan becomes one generated function.

The function reads and checks the facts of its action inline, evaluates its rules as plain
expressions over local variables and returns a ``Decision``: close to what a programmer would
write by hand for that one action, so cost does not depend on the other actions or rules of the
policy set. A trace, when asked for, is recorded by the same generated code (``t`` is ``None``
otherwise), so explanations never come from a second evaluator. Row tables become generated cell
tests and obligation builders behind an index (``rowindex``: exact values by dict, bands by
bisect), so a decision tries only the rows that can match (``runtime.run_rows``).

The source is registered in ``linecache`` under its file name (``<ordergate plan SYSTEM ACTION VERSION>``),
so tracebacks show it (the name ends with the start of the policy version, so code of two versions
never mixes); ``source_of`` gives it back (``ordergate plan`` prints it).
"""
from __future__ import annotations

import linecache
import re
from collections.abc import Callable
from itertools import chain, repeat
from operator import add, attrgetter
from typing import Any

from . import ir, rowindex, runtime
from .decision import Decision, DecisionError, Obligation, freeze, read_only

_CMP = {"at_least": ">=", "above": ">", "at_most": "<=", "below": "<"}
_UNSAFE = re.compile(r"[^A-Za-z0-9_]+")

DecideFn = Callable[[Any, "list[dict[str, Any]] | None"], Decision]


def file_name(plan: ir.ActionPlan, version: str) -> str:
    """The file name of generated code: the action and the policy version it was generated from."""
    return f"<ordergate plan {plan.system} {plan.action} {version[7:19]}>"


def source_of(fn: DecideFn) -> str:
    """The generated source of a decide function."""
    return "".join(linecache.getlines(fn.__code__.co_filename))


def static_obligation(use: ir.ObligationUse) -> tuple[Obligation, Any]:
    """The obligation a use with fixed parameters always gives, and its de-duplication key."""
    params = {p.name: p.value for p in use.params if isinstance(p, ir.StaticParam)}
    return Obligation(use.name, read_only(params)), (use.name, freeze(params))


class _Namespace:
    """The constants a generated function refers to, each under a readable, unique name."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.by_id: dict[int, str] = {}
        self.by_value: dict[Any, str] = {}
        self.counts: dict[str, int] = {}          # name -> the last number given to it

    def add(self, hint: str, value: Any) -> str:
        known = self.by_id.get(id(value))
        if known is not None and self.values[known] is value:
            return known
        if isinstance(value, (runtime.Leaf, runtime.FactCheck, runtime.MoveCheck)):
            known = self.by_value.get(value)
            if known is not None:
                return known
            self.by_value[value] = self._new(hint, value)
            return self.by_value[value]
        return self._new(hint, value)

    def _new(self, hint: str, value: Any) -> str:
        base = _UNSAFE.sub("_", hint).strip("_") or "K"
        name, n = base, self.counts.get(base, 1)
        while name in self.values:
            n += 1
            name = f"{base}_{n}"
        self.counts[base] = n
        self.values[name] = value
        self.by_id[id(value)] = name
        return name


class _Gen:
    def __init__(self, plan: ir.ActionPlan, version: str):
        self.plan = plan
        self.version = version
        self.ns = _Namespace()
        self.lines: list[str] = []
        self.predecided: dict[str, str] = {}     # obligations constant -> decision constant
        self.single = False
        self.read: dict[int, ir.FactRead] = {r.fact.slot: r for r in plan.reads}
        self.maybe_absent = {r.fact.slot for r in plan.reads if r.mode == "conditional"}
        self.tables: list[tuple[str, _TableCode]] = []

    # -- names and constants ----------------------------------------------------------------------
    def const(self, hint: str, value: Any) -> str:
        return self.ns.add(hint, value)

    def lit(self, value: Any, hint: str = "VALUE") -> str:
        if isinstance(value, (str, int, bool)) or value is None:
            return repr(value)
        return self.const(hint, value)

    @staticmethod
    def var(fact: ir.Fact) -> str:
        return f"f_{fact.name}"

    def emit(self, line: str, depth: int = 1) -> None:
        self.lines.append("    " * depth + line)

    # -- facts --------------------------------------------------------------------------------------
    def check_expr(self, fact: ir.Fact, x: str) -> str:
        t = fact.type
        if isinstance(t, ir.BooleanType):
            return f"({x} is True or {x} is False)"
        if isinstance(t, ir.IntegerType):
            parts = [f"type({x}) is int"]
            if t.min is not None:
                parts.append(f"{x} >= {t.min}")
            if t.max is not None:
                parts.append(f"{x} <= {t.max}")
            return "(" + " and ".join(parts) + ")"
        if isinstance(t, ir.StringType):
            return f"type({x}) is str" if t.allow_empty else f"(type({x}) is str and {x} != '')"
        if isinstance(t, ir.EnumType) and all(type(v) is str for v in t.values):
            return f"(type({x}) is str and {x} in {self.const(f'VALUES_{fact.name}', frozenset(t.values))})"
        return f"{self.const(f'accepts_{fact.name}', t.accepts)}({x})"

    def error(self, code: str, field: str, message: str) -> str:
        hint = {"missing_fact": "MISSING", "invalid_fact": "NOT_AN_OBJECT"}[code]
        return self.const(f"{hint}_{field}", Decision(False, (), (), DecisionError(code, field, message), self.version))

    def facts(self) -> None:
        prefixes: dict[tuple[str, ...], str] = {(): "inp"}
        for fr in self.plan.reads:
            path = fr.fact.path
            for n in range(1, len(path)):
                pre = path[:n]
                if pre in prefixes:
                    continue
                parent = prefixes[path[: n - 1]]
                var = "p_" + "_".join(pre)
                prefixes[pre] = var
                dotted = ".".join(pre)
                bad = self.error("invalid_fact", dotted, f"`{dotted}` must be an object")
                self.emit(f"{var} = {self.child(parent, path[n - 1])}")
                self.emit(f"if {var} is not None and type({var}) is not dict: return _fail({bad}, tr)")
            self.read_fact(fr, prefixes[path[:-1]])

    @staticmethod
    def child(parent: str, key: str) -> str:
        if parent == "inp":
            return f"inp.get({key!r})"
        return f"{parent}.get({key!r}) if {parent} is not None else None"

    def read_fact(self, fr: ir.FactRead, parent: str) -> None:
        fact = fr.fact
        v = self.var(fact)
        missing = self.error("missing_fact", fact.dotted, f"`{fact.dotted}` is required")
        self.emit(f"{v} = {self.child(parent, fact.path[-1])}")
        self.emit(f"if {v} is None:")
        if fr.mode == "required":
            self.emit(f"return _fail({missing}, tr)", 2)
        elif fr.mode == "optional":
            self.emit(f"{v} = {self.lit(fr.default, f'DEFAULT_{fact.name}')}", 2)
        else:
            assert fr.required_when is not None
            self.emit(f"if {self.cond(fr.required_when, None)}: return _fail({missing}, tr)", 2)
            self.emit(f"{v} = ABSENT", 2)
        check = self.const(f"CHECK_{fact.name}", runtime.FactCheck(fact.dotted, fact.type.describe()))
        self.emit(f"elif not {self.check_expr(fact, v)}: return _invalid({check}, {v}, tr, V)")

    # -- values and tests -------------------------------------------------------------------------------
    def raw(self, fact: ir.Fact) -> str:
        """The variable holding a fact's value (ABSENT when a conditional fact was not given)."""
        if fact.name == "action":
            return repr(self.plan.action)
        if fact.slot not in self.read:
            return f"_absent({fact.dotted!r})"     # a branch the action never reaches
        return self.var(fact)

    def value(self, fact: ir.Fact) -> str:
        raw = self.raw(fact)
        if fact.slot in self.maybe_absent:
            return f"(_absent({fact.dotted!r}) if {raw} is ABSENT else {raw})"
        return raw

    def test(self, test: ir.Test, x: str, value: Callable[[ir.Fact], str], depth: int = 0) -> str:
        """A Python expression: does ``x`` pass ``test``? ``value`` gives the expression of another fact."""
        if isinstance(test, ir.Compare):
            return self.compare(test, x)
        if isinstance(test, ir.Member):
            options = self.const("ONE_OF", test.options)
            return f"{x} in {options}" if test.op == "in" else f"{x} not in {options}"
        if isinstance(test, ir.Contains):
            return f"{self.lit(test.value)} {'in' if test.op == 'contains' else 'not in'} {x}"
        if isinstance(test, ir.Each):
            e = f"_x{depth}"
            fn = "any" if test.op == "some" else "all"
            return f"{fn}({self.test(test.test, e, value, depth + 1)} for {e} in {x})"
        if isinstance(test, ir.Flag):
            if test.op == "empty":
                return f"(len({x}) == 0)" if test.value else f"(len({x}) != 0)"
            return f"({x} is not None and {x} != '')" if test.value else f"({x} is None or {x} == '')"
        if isinstance(test, ir.SameAs):
            return f"{x} {'==' if test.op == 'equals_fact' else 'in'} {value(test.other)}"
        return "(" + " and ".join(f"({self.test(p, x, value, depth)})" for p in test.tests) + ")"

    def compare(self, test: ir.Compare, x: str) -> str:
        if test.op == "is":
            if isinstance(test.value, bool):       # facts are type-checked: identity is exact and cheaper
                return f"{x} is {test.value!r}"
            return f"{x} == {self.lit(test.value)}"
        if test.op == "is_not":
            return f"{x} != {self.lit(test.value)}"
        if test.scale is not None:
            rank = self.const(f"RANK_{test.scale.name}", test.scale.rank)
            return f"{rank}[{x}] {_CMP[test.op]} {test.scale.rank[test.value]!r}"
        return f"{x} {_CMP[test.op]} {test.value!r}"

    def leaf_meta(self, c: ir.FactCondition) -> str:
        return self.const(f"LEAF_{c.fact.name}", runtime.Leaf(c.fact.name, c.fact.dotted, c.words, c.fact.label))

    def cond(self, c: ir.Condition, t: str | None) -> str:
        """A Python expression for a condition; with ``t`` it appends its trace records to ``t``."""
        if isinstance(c, ir.FactCondition):
            raw = self.raw(c.fact)
            test = self.test(c.test, raw, self.value)
            if c.fact.slot in self.maybe_absent:
                test = f"(_absent({c.fact.dotted!r}) if {raw} is ABSENT else {test})"
            if t is None:
                return f"({test})"
            return f"(({test}) if {t} is None else _leaf({t}, {self.leaf_meta(c)}, {raw}, {test}))"
        if isinstance(c, ir.AllOf):
            return "(" + " and ".join(self.cond(p, t) for p in c.parts) + ")"
        if isinstance(c, ir.AnyOf):
            return "(" + " or ".join(self.cond(p, t) for p in c.parts) + ")"
        if isinstance(c, ir.Not):
            return f"(not {self.cond(c.inner, t)})"
        if isinstance(c, ir.Always):
            return "True" if t is None else f"(True if {t} is None else _always({t}))"
        meta = self.const(f"MOVE_{c.source.name}_{c.target.name}",
                          runtime.MoveCheck(c.source.name, c.source.dotted, c.unlisted_allowed))
        graph = self.value(c.graph) if isinstance(c.graph, ir.Fact) else self.const("GRAPH", c.graph.edges)
        return f"_move({t or 'None'}, {meta}, {graph}, {self.value(c.source)}, {self.value(c.target)})"

    # -- obligations ----------------------------------------------------------------------------------
    def param(self, p: ir.Param, value: Callable[[ir.Fact], str]) -> str:
        if isinstance(p, ir.StaticParam):
            return self.lit(p.value, f"PARAM_{p.name}")
        if isinstance(p, ir.FactParam):
            return value(p.fact)
        out = "None"
        for f in reversed(p.facts):
            v = value(f)
            out = f"({v} if _entered({v}) else {out})"
        return out

    def made(self, use: ir.ObligationUse, value: Callable[[ir.Fact], str]) -> str:
        """An expression giving ``(Obligation, key)`` for one obligation use."""
        if use.is_static:
            return self.const(f"OBLIGATION_{use.name}", static_obligation(use))
        items = ", ".join(f"{p.name!r}: {self.param(p, value)}" for p in use.params)
        return f"_obligation({use.name!r}, {{{items}}})"

    def uses(self, uses: tuple[ir.ObligationUse, ...], depth: int, t: str, rid: str) -> str:
        """Emit statements building the obligation list; returns its variable or constant."""
        if all(u.is_static and u.when is None for u in uses):
            items = tuple(static_obligation(u) for u in uses)
            name = self.const(f"OBLIGATIONS_{rid}", items)
            if self.single:
                # the only effect of this action, with fixed obligations: its decision is a constant
                seen, obligations = set(), []
                for o, k in items:
                    if k not in seen:
                        seen.add(k)
                        obligations.append(o)
                self.predecided[name] = self.const(
                    f"DECISION_{rid}", Decision(True, tuple(obligations), (rid,), None, self.version))
            return name
        self.emit("obs = []", depth)
        for u in uses:
            item = self.made(u, self.value)
            if u.when is not None:
                self.emit(f"if {self.cond(u.when, t)}: obs.append({item})", depth)
            else:
                self.emit(f"obs.append({item})", depth)
        return "obs"

    def emit_obligations(self, var: str, depth: int) -> None:
        self.emit(f"ob = {var}", depth)
        if var in self.predecided:
            self.emit(f"if tr is None: return {self.predecided[var]}", depth)

    # -- rules ----------------------------------------------------------------------------------------
    def guard(self, unit: ir.Guard) -> None:
        rid, says = unit.id, self.lit(unit.says)
        if unit.when is not None:
            self.emit(f"w = {self.cond(unit.when, 't')}")
            self.emit(f"h = w and {self.cond(unit.deny, 't')}")
        else:
            self.emit("w = True")
            self.emit(f"h = {self.cond(unit.deny, 't')}")
        self.emit(f"if h: den.append({rid!r})")
        self.emit(f"if tr is not None: tr.append({{'rule': {rid!r}, 'kind': 'guard', 'says': {says}, "
                  f"'outcome': 'denied' if h else ('passed' if w else 'not applicable'), 'conditions': t}})")

    def effect(self, unit: ir.Effect) -> None:
        rid, says = unit.id, self.lit(unit.says)
        self.emit(f"w = {self.cond(unit.when, 't') if unit.when is not None else 'True'}")
        self.emit("if w:")
        depth = 2
        for i, case in enumerate(unit.cases):
            self.emit(f"{'if' if i == 0 else 'elif'} {self.cond(case.condition, 't')}:", depth)
            self.emit_obligations(self.uses(case.obligations, depth + 1, "t", rid), depth + 1)
        if unit.cases:
            self.emit("else:", depth)
            self.emit_obligations(self.uses(unit.otherwise, depth + 1, "t", rid), depth + 1)
        else:
            self.emit_obligations(self.uses(unit.otherwise, depth, "t", rid), depth)
        self.emit(f"fired.append(({rid!r}, ob))", depth)
        self.emit(f"if tr is not None: tr.append({{'rule': {rid!r}, 'kind': 'effect', 'says': {says}, "
                  f"'outcome': 'fired' if w else 'not applicable', "
                  f"'obligations': [o.to_dict() for o, _ in ob] if w else [], 'conditions': t}})")

    def units(self) -> None:
        plan = self.plan
        guards = any(isinstance(u, ir.Guard) for u in plan.units)
        # only guards and row tables (`no_match: deny`) deny: without them there is no list to keep
        denies = guards or any(isinstance(u, ir.RowTable) for u in plan.units)
        if denies:
            self.emit("den = []")
        self.emit("fired = []")
        self.single = (sum(1 for u in plan.units if not isinstance(u, ir.Guard)) == 1
                       and not any(isinstance(u, ir.RowTable) for u in plan.units))
        guards_done = False
        for unit in plan.units:
            if not isinstance(unit, ir.Guard) and not guards_done:
                guards_done = True
                if guards:
                    self.emit(self.denial())
            self.unit(unit)
        if denies and (not guards_done or any(isinstance(u, ir.RowTable) and u.no_match is not None
                                              for u in plan.units)):
            # (a row table's `no_match: deny` denies after the guards)
            self.emit(self.denial())
        self.emit("return _finish(OVERRIDES, fired, V, tr)")

    def unit(self, unit: ir.Unit) -> None:
        if isinstance(unit, ir.RowTable):
            code = _TableCode(self, unit)
            self.tables.append((self.const(f"TABLE_{unit.id}", code), code))
            self.emit(f"# table {unit.id}")
            if unit.no_match is None and not code.alone:
                self.emit(f"_run_rows({self.tables[-1][0]}, vals, tr, fired, den, V)")
            else:
                self.emit(f"stop = _run_rows({self.tables[-1][0]}, vals, tr, fired, den, V)")
                self.emit("if stop is not None: return stop")
            return
        self.emit(f"# {unit.id}")
        self.emit("t = None if tr is None else []")
        if isinstance(unit, ir.Guard):
            self.guard(unit)
        else:
            self.effect(unit)

    def denial(self) -> str:
        """The line answering the denials so far: one rule denying, without a trace, is a constant."""
        one = {u.id: Decision(False, (), (u.id,), None, self.version)
               for u in self.plan.units if isinstance(u, (ir.Guard, ir.RowTable))}
        return (f"if den: return {self.const('DENIED', one)}[den[0]] if tr is None and len(den) == 1 "
                f"else Decision(False, (), tuple(den), None, V, _frozen_trace(tr))")

    def build(self) -> DecideFn:
        plan = self.plan
        self.ns.values.update(
            Decision=Decision, ABSENT=runtime.ABSENT, V=self.version, OVERRIDES=plan.overrides,
            _finish=runtime.finish, _frozen_trace=runtime.frozen_trace, _fail=runtime.fail, _invalid=runtime.invalid,
            _leaf=runtime.leaf, _always=runtime.always, _absent=runtime.absent, _move=runtime.move,
            _entered=runtime.entered, _obligation=runtime.obligation, _run_rows=runtime.run_rows)
        self.facts()
        if any(isinstance(u, ir.RowTable) for u in plan.units):
            # the slot list that row tables read: facts by slot, unread ones ABSENT, the action last
            slots = [self.var(self.read[i].fact) if i in self.read else "ABSENT" for i in range(plan.slots - 1)]
            self.emit(f"vals = [{', '.join(slots + [repr(plan.action)])}]")
        self.units()
        name = "decide_" + _UNSAFE.sub("_", plan.action)
        src = f"def {name}(inp, tr):\n" + "\n".join(self.lines) + "\n" + "".join(
            "".join(code.source) for _, code in self.tables)
        fn: DecideFn = _exec(src, file_name(plan, self.version), self.ns.values, name)
        for const, code in self.tables:
            self.ns.values[const] = code.lowered()
        return fn


def _exec(src: str, filename: str, namespace: dict[str, Any], name: str) -> Any:
    """Compile generated source under ``filename`` (registered in linecache) and return ``name``."""
    linecache.cache[filename] = (len(src), None, src.splitlines(keepends=True), filename)
    exec(compile(src, filename, "exec"), namespace)
    return namespace[name]


class _SlotGen(_Gen):
    """Lowers the conditions of row tables, which read the slot list ``vals`` (any fact may be ABSENT)."""

    def __init__(self, parent: _Gen):
        super().__init__(parent.plan, parent.version)
        self.ns = parent.ns
        self.maybe_absent = set(range(parent.plan.slots - 1))

    def raw(self, fact: ir.Fact) -> str:
        return repr(self.plan.action) if fact.name == "action" else f"vals[{fact.slot}]"


_MADE_COMPARE = {"is": "==", "is_not": "!="}     # a table cell of one of these is made by a maker


class _TableCode:
    """A row table as generated functions: a test per distinct cell, an obligation builder per
    outcome, the table's `when`; ``lowered`` assembles them once they are defined."""

    def __init__(self, gen: _Gen, table: ir.RowTable):
        self.table = table
        self.plan = gen.plan
        # nothing but this table can fire (guards have passed when it runs): a matched row decides
        self.alone = all(u is table or isinstance(u, ir.Guard) for u in gen.plan.units)
        self.ns = gen.ns
        self.absent = gen.maybe_absent
        self.read = gen.read
        self.slots = _SlotGen(gen)
        self.source: list[str] = []
        self.when = self.function(f"when_{table.id}", "vals, t", [f"return {self.slots.cond(table.when, 't')}"]) \
            if table.when is not None else None
        self.outcomes: dict[str, str] = {}
        nm = table.no_match
        if nm is not None and nm.outcome not in ("deny", "error"):
            self.outcomes[nm.outcome] = self.obligations(f"outcome_{table.id}_{nm.outcome}", nm.obligations)
        self.cells: dict[tuple[int, ir.Test], str | tuple[str, Any]] = {}   # a function, or a maker and its value
        self.makers: dict[str, str] = {}
        for row in table.rows:
            if row.outcome not in self.outcomes:
                self.outcomes[row.outcome] = self.obligations(f"outcome_{table.id}_{row.outcome}", row.obligations)
        # each distinct cell once (compile shares equal cells), in the order first written
        every = list(chain.from_iterable(map(attrgetter("cells"), table.rows)))
        self.distinct = dict(zip(map(id, every), every, strict=True))
        for cell in self.distinct.values():
            if isinstance(cell, ir.FactCondition) and (cell.fact.slot, cell.test) not in self.cells:
                self.cells[(cell.fact.slot, cell.test)] = self.cell(cell)

    def cell(self, cell: ir.FactCondition) -> str | tuple[str, Any]:
        """The function testing a cell; a cell that compares with one value (a table's most common,
        thousands of them in a large table) is a closure of one generated maker per comparison, not
        generated source of its own (compiling it would cost more than all the rest)."""
        test = cell.test
        if isinstance(test, ir.Compare) and test.op in _MADE_COMPARE and not isinstance(test.value, bool):
            maker = self.makers.get(test.op)
            if maker is None:
                maker = self.makers[test.op] = self.function(   # as ``compare`` writes it, the value named K
                    f"cells_{test.op}", "K", ["def cell(v, vals):", f"    return v {_MADE_COMPARE[test.op]} K",
                                              "return cell"])
            return maker, test.value
        expr = self.slots.test(test, "v", self.slots.value)
        return self.function(f"cell_{cell.fact.name}", "v, vals", [f"return {expr}"])

    def function(self, hint: str, params: str, body: list[str]) -> str:
        name = self.ns.add(hint, object())     # reserve the name; the definition replaces it
        self.source.append(f"\n\ndef {name}({params}):\n" + "".join(f"    {line}\n" for line in body))
        return name

    def obligations(self, hint: str, uses: tuple[ir.ObligationUse, ...]) -> str:
        gen = self.slots
        body = ["obs = []"]
        for u in uses:
            item = gen.made(u, gen.value)
            body.append(f"if {gen.cond(u.when, 't')}: obs.append({item})" if u.when is not None
                        else f"obs.append({item})")
        return self.function(hint, "vals, t", body + ["return obs"])

    def lowered(self) -> runtime.LoweredTable:
        table, defined = self.table, self.ns.values
        tested = self.tested()
        rows = self.rows(tested)

        def cell_of(r: int, c: int) -> runtime.Cell:
            return tested[id(table.rows[r].cells[c])]

        nm = table.no_match
        unmatched = None if nm is None else runtime.LoweredNoMatch(
            nm.outcome, defined[self.outcomes[nm.outcome]] if nm.outcome in self.outcomes else None)
        absent = tuple(f.slot for f in table.columns if f.slot in self.absent or f.slot not in self.read)
        tree, scan = rowindex.index(table, cell_of)
        return runtime.LoweredTable(table.id, table.says, table.hit, defined[self.when] if self.when else None,
                                    rows, tree, absent, scan, unmatched,
                                    self.plan.overrides if self.alone else None, {})

    def tested(self) -> dict[int, runtime.Cell]:
        """The check of each distinct tested cell, by its id (compile shares equal cells; `-` is not tested)."""
        defined = self.ns.values
        functions: dict[tuple[int, ir.Test], Any] = {}
        for key, made in self.cells.items():
            functions[key] = defined[made] if isinstance(made, str) else defined[made[0]](made[1])
        return {i: runtime.Cell(c.fact.slot, functions[(c.fact.slot, c.test)],
                                runtime.Leaf(c.fact.name, c.fact.dotted, c.words, c.fact.label))
                for i, c in self.distinct.items() if isinstance(c, ir.FactCondition)}

    def rows(self, tested: dict[int, runtime.Cell]) -> tuple[runtime.LoweredRow, ...]:
        defined, rows = self.ns.values, self.table.rows
        # an outcome's obligations are the same in every row that chooses it: one row of each
        one = dict(zip(map(attrgetter("outcome"), rows), rows, strict=True))
        made = {outcome: (defined[self.outcomes[outcome]], all(u.is_static and u.when is None for u in r.obligations))
                for outcome, r in one.items()}
        # per row, each step a call made in C (a large table has thousands of rows): its tested cells,
        # where filter drops the `-` cells (no test, their look-up gives None), then the row's id, says
        # and tested cells with its outcome's obligations, made a LoweredRow without a Python-level call
        tests = map(tuple, map(filter, repeat(None), map(map, repeat(tested.get),
                                                        map(map, repeat(id), map(attrgetter("cells"), rows)))))
        parts = map(add, zip(map(attrgetter("id"), rows), map(attrgetter("says"), rows), tests, strict=True),
                    map(made.__getitem__, map(attrgetter("outcome"), rows)))
        return tuple(map(tuple.__new__, repeat(runtime.LoweredRow), parts))


def generate(plan: ir.ActionPlan, version: str) -> DecideFn:
    """The generated decide function of one action plan: ``fn(input, trace) -> Decision``."""
    fn: DecideFn = _Gen(plan, version).build()
    return fn
