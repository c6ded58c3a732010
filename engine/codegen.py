"""Stage 3b: each action's plan becomes one generated Python function.

The function reads and checks the facts of its action inline, evaluates its rules as plain
expressions over local variables and returns a ``Decision``: close to what a programmer would
write by hand for that one action, so cost does not depend on the other actions or rules of
the policy set. The expressions come from the same condition trees as the closures (``.ir``);
a trace, when asked for, is recorded by the same generated code (``t`` is ``None`` otherwise),
so explanations never come from a second evaluator.
"""
from __future__ import annotations

from typing import Any

from .conditions import ABSENT, MissingFact, show
from .evaluate import Decision, DecisionError, Effect, Guard, RowTable

_CMP = {"at_least": ">=", "above": ">", "at_most": "<=", "below": "<"}


class _Gen:
    def __init__(self, plan, version: str):
        self.plan = plan
        self.version = version
        self.ns: dict[str, Any] = {"Decision": Decision, "ABSENT": ABSENT, "MissingFact": MissingFact,
                                   "show": show}
        self.lines: list[str] = []
        self.predecided: dict[str, str] = {}    # obligation constant -> decision constant
        self.single = False
        self.absent_ok: set[int] = set()      # slots that may hold ABSENT
        self.counter = 0

    # -- constants --------------------------------------------------------------------------
    def const(self, value: Any, prefix: str = "K") -> str:
        self.counter += 1
        name = f"{prefix}{self.counter}"
        self.ns[name] = value
        return name

    def lit(self, value: Any) -> str:
        if isinstance(value, (str, int, bool)) or value is None:
            return repr(value)
        return self.const(value)

    def emit(self, line: str, depth: int = 1) -> None:
        self.lines.append("    " * depth + line)

    # -- facts ----------------------------------------------------------------------------------
    def check_expr(self, ftype, x: str) -> str:
        kind = ftype.kind
        if kind == "boolean":
            return f"({x} is True or {x} is False)"
        if kind == "integer":
            parts = [f"type({x}) is int"]
            if ftype.min is not None:
                parts.append(f"{x} >= {ftype.min}")
            if ftype.max is not None:
                parts.append(f"{x} <= {ftype.max}")
            return "(" + " and ".join(parts) + ")"
        if kind == "string":
            return f"type({x}) is str" if ftype.allow_empty else f"(type({x}) is str and {x} != '')"
        if kind == "enum" and all(type(v) is str for v in ftype.values):
            return f"(type({x}) is str and {x} in {self.const(frozenset(ftype.values), 'S')})"
        return f"{self.const(ftype.checker, 'CHK')}({x})"

    def error(self, code: str, field: str | None, message: str) -> str:
        return self.const(Decision(False, (), (), DecisionError(code, field, message), self.version), "E")

    def facts(self) -> None:
        prefixes: dict[tuple, str] = {(): "inp"}
        for fr in self.plan.reads:
            path = fr.path
            for n in range(1, len(path)):
                pre = path[:n]
                if pre in prefixes:
                    continue
                parent = prefixes[path[: n - 1]]
                var = f"p{len(prefixes)}"
                prefixes[pre] = var
                dotted = ".".join(pre)
                bad = self.error("invalid_fact", dotted, f"`{dotted}` must be an object")
                if parent == "inp":
                    self.emit(f"{var} = inp.get({path[n - 1]!r})")
                else:
                    self.emit(f"{var} = {parent}.get({path[n - 1]!r}) if {parent} is not None else None")
                self.emit(f"if {var} is not None and type({var}) is not dict: return _fail({bad}, tr)")
            parent = prefixes[path[:-1]]
            v = f"f{fr.slot}"
            missing = self.error("missing_fact", fr.dotted, f"`{fr.dotted}` is required")
            self.emit(f"{v} = {parent}.get({path[-1]!r})" if parent == "inp" else
                      f"{v} = {parent}.get({path[-1]!r}) if {parent} is not None else None")
            self.emit(f"if {v} is None:")
            if fr.mode == "required":
                self.emit(f"return _fail({missing}, tr)", 2)
            elif fr.mode == "optional":
                self.emit(f"{v} = {self.lit(fr.default)}", 2)
            else:
                self.emit(f"if {self.cond(fr.condition.ir, None)}: return _fail({missing}, tr)", 2)
                self.emit(f"{v} = ABSENT", 2)
                self.absent_ok.add(fr.slot)
            invalid = self.const(fr, "FR")
            self.emit(f"elif not {self.check_expr(fr.ftype, v)}: return _invalid({invalid}, {v}, tr, V)")

    # -- conditions -------------------------------------------------------------------------------
    def value(self, fact) -> str:
        v = f"f{fact.slot}"
        if fact.name == "action":
            return self.lit(self.plan.action)
        if fact.slot in self.absent_ok:
            return f"(_absent({fact.dotted!r}) if {v} is ABSENT else {v})"
        return v

    def test(self, ir: tuple, x: str, depth: int = 0) -> str:
        op = ir[0]
        if op == "eq":
            if isinstance(ir[1], bool):       # facts are type-checked: identity is exact and cheaper
                return f"{x} is {ir[1]!r}"
            return f"{x} == {self.lit(ir[1])}"
        if op == "ne":
            return f"{x} != {self.lit(ir[1])}"
        if op == "in":
            return f"{x} in {self.const(ir[1], 'S')}"
        if op == "nin":
            return f"{x} not in {self.const(ir[1], 'S')}"
        if op == "cmp":
            return f"{x} {_CMP[ir[1]]} {ir[2]!r}"
        if op == "rank":
            return f"{self.const(ir[2], 'R')}[{x}] {_CMP[ir[1]]} {ir[3]!r}"
        if op == "contains":
            return f"{self.lit(ir[1])} in {x}"
        if op == "lacks":
            return f"{self.lit(ir[1])} not in {x}"
        if op in ("some", "every"):
            e = f"_x{depth}"
            fn = "any" if op == "some" else "all"
            return f"{fn}({self.test(ir[1], e, depth + 1)} for {e} in {x})"
        if op == "empty":
            return f"(len({x}) == 0)" if ir[1] else f"(len({x}) != 0)"
        if op == "entered":
            return f"({x} is not None and {x} != '')" if ir[1] else f"({x} is None or {x} == '')"
        if op == "eqfact":
            return f"{x} == {self.value(ir[1])}"
        if op == "infact":
            return f"{x} in {self.value(ir[1])}"
        if op == "and":
            return "(" + " and ".join(f"({self.test(p, x, depth)})" for p in ir[1]) + ")"
        raise ValueError(op)

    def cond(self, ir: tuple, t: str | None) -> str:
        kind = ir[0]
        if kind == "leaf":
            _, fact, tir, words = ir
            raw = f"f{fact.slot}" if fact.name != "action" else self.lit(self.plan.action)
            test = self.test(tir, raw)
            if fact.slot in self.absent_ok:
                test = f"(_absent({fact.dotted!r}) if {raw} is ABSENT else {test})"
            if t is None:
                return f"({test})"
            meta = self.const((fact, words), "L")
            return f"(({test}) if {t} is None else _leaf({t}, {meta}, {raw}, {test}))"
        if kind == "all":
            return "(" + " and ".join(self.cond(p, t) for p in ir[1]) + ")"
        if kind == "any":
            return "(" + " or ".join(self.cond(p, t) for p in ir[1]) + ")"
        if kind == "not":
            return f"(not {self.cond(ir[1], t)})"
        if kind == "always":
            return "True" if t is None else f"(True if {t} is None else _always({t}))"
        if kind == "move":
            fn = self.const(ir[6], "MV")      # the move closure reads facts by slot
            return f"{fn}(vals(), {t if t else 'None'})"
        raise ValueError(kind)

    # -- rules ------------------------------------------------------------------------------------
    def uses(self, uses: tuple, depth: int, t: str, rid: str = "") -> str:
        """Emit statements building the obligation list; returns its variable or constant."""
        if all(u.static is not None and u.when is None for u in uses):
            items = tuple((u.static, u.key) for u in uses)
            name = self.const(items, "OB")
            if rid and self.single:
                # the only effect of this action, with fixed obligations: its decision is a constant
                seen, obligations = set(), []
                for o, k in items:
                    if k not in seen:
                        seen.add(k)
                        obligations.append(o)
                self.predecided[name] = self.const(
                    Decision(True, tuple(obligations), (rid,), None, self.version), "D")
            return name
        self.emit("obs = []", depth)
        for u in uses:
            item = self.const((u.static, u.key), "U") if u.static is not None else f"{self.const(u, 'UD')}.make(vals())"
            if u.when is not None:
                self.emit(f"if {self.cond(u.when.ir, t)}: obs.append({item})", depth)
            else:
                self.emit(f"obs.append({item})", depth)
        return "obs"

    def emit_ob(self, var: str, depth: int) -> None:
        self.emit(f"ob = {var}", depth)
        if var in self.predecided:
            self.emit(f"if tr is None: return {self.predecided[var]}", depth)

    def units(self) -> None:
        plan = self.plan
        self.emit("den = []")
        self.emit("fired = []")
        single = sum(1 for u in plan.units if not isinstance(u, Guard)) == 1 and not any(
            isinstance(u, RowTable) for u in plan.units)
        self.single = single
        guards_done = False
        for unit in plan.units:
            if not isinstance(unit, Guard) and not guards_done:
                guards_done = True
                self.emit("if den: return Decision(False, (), tuple(den), None, V, _tt(tr))")
            rid = unit.id
            says = self.lit(unit.says)
            self.emit(f"# {rid}")
            self.emit("t = None if tr is None else []")
            if isinstance(unit, Guard):
                if unit.when is not None:
                    self.emit(f"w = {self.cond(unit.when.ir, 't')}")
                    self.emit(f"h = w and {self.cond(unit.deny.ir, 't')}")
                else:
                    self.emit("w = True")
                    self.emit(f"h = {self.cond(unit.deny.ir, 't')}")
                self.emit(f"if h: den.append({rid!r})")
                self.emit(f"if tr is not None: tr.append({{'rule': {rid!r}, 'kind': 'guard', 'says': {says}, "
                          f"'outcome': 'denied' if h else ('passed' if w else 'not applicable'), 'conditions': t}})")
            elif isinstance(unit, Effect):
                w = self.cond(unit.when.ir, "t") if unit.when is not None else "True"
                self.emit(f"w = {w}")
                self.emit("if w:")
                depth = 2
                for i, (cond, case_uses) in enumerate(unit.cases):
                    self.emit(f"{'if' if i == 0 else 'elif'} {self.cond(cond.ir, 't')}:", depth)
                    var = self.uses(case_uses, depth + 1, "t", rid)
                    self.emit_ob(var, depth + 1)
                if unit.cases:
                    self.emit("else:", depth)
                    var = self.uses(unit.otherwise, depth + 1, "t", rid)
                    self.emit_ob(var, depth + 1)
                else:
                    var = self.uses(unit.otherwise, depth, "t", rid)
                    self.emit_ob(var, depth)
                self.emit(f"fired.append(({rid!r}, ob))", depth)
                self.emit(f"if tr is not None: tr.append({{'rule': {rid!r}, 'kind': 'effect', 'says': {says}, "
                          f"'outcome': 'fired' if w else 'not applicable', "
                          f"'obligations': [o.to_dict() for o, _ in ob] if w else [], 'conditions': t}})")
            elif isinstance(unit, RowTable):
                self.emit(f"{self.const(unit, 'RT')}.run(vals(), tr, den, fired)")
            else:
                raise TypeError(unit)
        if not guards_done:
            self.emit("if den: return Decision(False, (), tuple(den), None, V, _tt(tr))")
        self.emit("return _finish(OV, fired, V, tr)")

    def build(self):
        size = self.plan.size
        self.ns.update(V=self.version, OV=self.plan.overrides, _finish=finish, _tt=_tt, _fail=_fail,
                       _invalid=_invalid, _leaf=_leaf, _always=_always, _absent=_absent)
        self.facts()
        body_start = len(self.lines)
        self.units()
        body = self.lines[body_start:]
        prelude = ""
        if any("vals()" in line for line in self.lines):
            # vals() gives the slot list that closures (row tables, moves, dynamic params) read
            slots = ", ".join(f"f{i}" if i != size - 1 else repr(self.plan.action) for i in range(size))
            read_slots = {fr.slot for fr in self.plan.reads}
            prelude = "".join(f"    f{i} = ABSENT\n" for i in range(size - 1) if i not in read_slots)
            prelude += f"    vals = lambda: [{slots}]\n"
        src = ("def decide(inp, tr):\n" + "\n".join(self.lines[:body_start]) + "\n" + prelude
               + "\n".join(body) + "\n")
        code = compile(src, f"<ordergate plan {self.plan.action}>", "exec")
        exec(code, self.ns)
        fn = self.ns["decide"]
        fn.source = src
        return fn


def generate(plan, version: str):
    """The generated decide function of one action plan: ``fn(input, trace) -> Decision``."""
    return _Gen(plan, version).build()


# -- helpers called by generated code --------------------------------------------------------------
def _tt(tr):
    return tuple(tr) if tr is not None else None


def _fail(decision: Decision, tr) -> Decision:
    return decision if tr is None else decision._replace(trace=tuple(tr))


def _invalid(fr, value, tr, version: str) -> Decision:
    shown = show(value) if not isinstance(value, (dict, list)) else ("an object" if isinstance(value, dict) else "a list")
    return Decision(False, (), (), DecisionError("invalid_fact", fr.dotted, f"`{fr.dotted}` must be {fr.expected}, not {shown}"),
                    version, _tt(tr))


def _absent(path: str):
    raise MissingFact(path)


def _leaf(t: list, meta, value, held: bool) -> bool:
    fact, words = meta
    label = fact.says or fact.name
    t.append({"fact": fact.name, "path": fact.dotted, "test": words, "value": value, "held": held,
              "says": f"{label}: expected {words}, found {show(value)} ({'holds' if held else 'does not hold'})"})
    return held


def _always(t: list) -> bool:
    t.append({"test": "always", "held": True, "says": "this rule always applies"})
    return True


def finish(overrides: dict, fired: list, version: str, tr) -> Decision:
    """Deny-overrides already passed: combine the obligations of the effects that fired."""
    if not fired:
        return Decision(True, (), (), None, version, _tt(tr))
    if len(fired) == 1:
        rid, obls = fired[0]
        if len(obls) <= 1:
            return Decision(True, tuple(o for o, _ in obls), (rid,), None, version, _tt(tr))
    dropped: set = set()
    if overrides:
        for _, obls in fired:
            for o, _ in obls:
                more = overrides.get(o.name)
                if more:
                    dropped.update(more)
    rules: list = []
    obligations: list = []
    seen: set = set()
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
    return Decision(True, tuple(obligations), tuple(rules), None, version, _tt(tr))
