"""Conditions: the `when` / `deny_when` language compiled to closures.

A compiled condition is ``fn(vals, trace) -> bool``: ``vals`` holds the validated facts of the
request by slot, ``trace`` is ``None`` or a list that receives one record per test that was
evaluated. Explanations therefore come from the very code that decides. Reading a fact the
request did not give raises ``MissingFact``: the decision becomes ``missing_fact``, never an allow.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .errors import Location, PolicyError, did_you_mean
from .types import TypeSpec

ABSENT = object()  # a fact not given in the request (and without a default)

Cond = Callable[[list, "list | None"], bool]
COMBINATORS = ("all", "any", "not", "move")
SCALE_OPS = {"at_least": lambda a, b: a >= b, "above": lambda a, b: a > b,
             "at_most": lambda a, b: a <= b, "below": lambda a, b: a < b}
OP_WORDS = {"is": "is", "is_not": "is not", "in": "is one of", "not_in": "is none of",
            "at_least": "is at least", "above": "is above", "at_most": "is at most", "below": "is below",
            "contains": "contains", "lacks": "does not contain", "some": "has some element that",
            "every": "has every element that", "empty": "is empty", "entered": "is entered",
            "equals_fact": "equals", "in_fact": "is listed in"}
TEST_OPS = tuple(OP_WORDS)


class MissingFact(Exception):
    """A rule needed a fact that the request did not give."""

    def __init__(self, path: str):
        super().__init__(path)
        self.path = path


@dataclass(frozen=True)
class Fact:
    name: str
    path: tuple[str, ...]
    type: TypeSpec
    slot: int
    has_default: bool
    default: Any
    says: str
    location: Location

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


def show(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return f"`{value}`" if value else "empty"
    return f"`{value}`"


class Compiler:
    """Compiles conditions for one system; collects errors instead of stopping."""

    def __init__(self, facts: Mapping[str, Fact], locate: Callable[[tuple], Location],
                 errors: list[PolicyError]):
        self.facts = facts
        self.locate = locate
        self.errors = errors

    # -- helpers -----------------------------------------------------------------------------
    def error(self, code: str, message: str, path: tuple, help: str | None = None, key: bool = False) -> None:
        self.errors.append(PolicyError(code, message, self.locate(path, key), help))

    def fact(self, name: Any, path: tuple, key: bool = False) -> Fact | None:
        """The declared fact ``name``; ``key`` when the name is written as a mapping key."""
        fact = self.facts.get(name) if isinstance(name, str) else None
        if fact is None:
            self.error("compile_unknown_fact", f"unknown fact `{name}`", path,
                       did_you_mean(name, self.facts) or "declare it under `facts`", key=key)
        return fact

    def literal(self, value: Any, spec: TypeSpec, path: tuple, what: str) -> bool:
        """Is ``value`` a possible value of ``spec``? Reports the problem when not."""
        if spec.kind == "enum":
            if value in spec.values and type(value) is type(spec.values[0]):
                return True
            self.error("compile_unknown_value", f"`{value}` is not a value of {what}", path,
                       did_you_mean(str(value), [str(v) for v in spec.values])
                       or "expected " + spec.describe())
            return False
        if value is None or not spec.checker(value):
            self.error("compile_bad_value", f"`{value}` does not fit {what}, which is {spec.describe()}", path)
            return False
        return True

    # -- conditions --------------------------------------------------------------------------
    def condition(self, cond: Any, path: tuple, used: set[str]) -> Cond | None:
        """Compile a condition mapping; ``used`` collects the fact names it reads."""
        if cond == "always":
            return _tag(_always, ("always",))
        if not isinstance(cond, dict) or not cond:
            self.error("compile_bad_test", "a condition must be a non-empty mapping of facts to tests", path)
            return None
        parts: list[Cond] = []
        ok = True
        for key, spec in cond.items():
            sub = path + (key,)
            if key in ("all", "any"):
                if not isinstance(spec, list) or not spec:
                    self.error("compile_bad_test", f"`{key}` takes a non-empty list of conditions", sub)
                    ok = False
                    continue
                inner = [self.condition(c, sub + (i,), used) for i, c in enumerate(spec)]
                if any(c is None for c in inner):
                    ok = False
                    continue
                parts.append(_tag(_all(inner), ("all", tuple(c.ir for c in inner))) if key == "all"
                             else _tag(_any(inner), ("any", tuple(c.ir for c in inner))))
            elif key == "not":
                inner = self.condition(spec, sub, used)
                if inner is None:
                    ok = False
                    continue
                parts.append(_tag(_not(inner), ("not", inner.ir)))
            elif key == "move":
                fn = self.move(spec, sub, used)
                if fn is None:
                    ok = False
                    continue
                parts.append(fn)
            else:
                fact = self.fact(key, sub, key=True)
                if fact is None:
                    ok = False
                    continue
                used.add(fact.name)
                fn = self.fact_test(fact, spec, sub, used)
                if fn is None:
                    ok = False
                    continue
                parts.append(fn)
        if not ok:
            return None
        return parts[0] if len(parts) == 1 else _tag(_all(parts), ("all", tuple(p.ir for p in parts)))

    def fact_test(self, fact: Fact, spec: Any, path: tuple, used: set[str]) -> Cond | None:
        test = self.test(spec, fact.type, path, f"fact `{fact.name}`", used)
        if test is None:
            return None
        fn, words, ir = test
        return _tag(_leaf(fact, fn, words), ("leaf", fact, ir, words))

    def test(self, spec: Any, ftype: TypeSpec, path: tuple, what: str, used: set[str]):
        """Compile a test on one value: returns ``(fn(value, vals) -> bool, words)``."""
        if not isinstance(spec, dict):
            if isinstance(spec, list) and ftype.kind != "list":
                self.error("compile_bad_test", f"a list cannot equal {what}", path,
                           "to test for one of several values write `{in: [...]}`")
                return None
            if not self.literal(spec, ftype, path, what):
                return None
            value = spec
            return (lambda v, vals: v == value), show(value), ("eq", value)
        if not spec:
            self.error("compile_bad_test", "an empty test", path)
            return None
        tests = []
        for op, arg in spec.items():
            sub = path + (op,)
            made = self.op(op, arg, ftype, sub, what, used)
            if made is None:
                return None
            tests.append(made)
        if len(tests) == 1:
            return tests[0]
        fns = [t[0] for t in tests]
        return ((lambda v, vals: all(f(v, vals) for f in fns)), " and ".join(t[1] for t in tests),
                ("and", tuple(t[2] for t in tests)))

    def op(self, op: Any, arg: Any, ftype: TypeSpec, path: tuple, what: str, used: set[str]):
        kind = ftype.kind
        if op not in TEST_OPS:
            self.error("compile_bad_test", f"unknown test `{op}` on {what}", path,
                       did_you_mean(op, TEST_OPS) or "tests: " + ", ".join(f"`{o}`" for o in TEST_OPS))
            return None
        if op in ("is", "is_not"):
            if not self.literal(arg, ftype, path, what):
                return None
            if op == "is":
                return (lambda v, vals: v == arg), show(arg), ("eq", arg)
            return (lambda v, vals: v != arg), f"not {show(arg)}", ("ne", arg)
        if op in ("in", "not_in"):
            if not isinstance(arg, list) or not arg:
                self.error("compile_bad_test", f"`{op}` takes a non-empty list", path)
                return None
            if not all([self.literal(a, ftype, path + (i,), what) for i, a in enumerate(arg)]):
                return None
            options = frozenset(arg)
            words = ", ".join(show(a) for a in arg)
            if op == "in":
                return (lambda v, vals: v in options), f"one of {words}", ("in", options)
            return (lambda v, vals: v not in options), f"none of {words}", ("nin", options)
        if op in SCALE_OPS:
            cmp = SCALE_OPS[op]
            if kind == "integer":
                if type(arg) is not int:
                    self.error("compile_bad_value", f"`{op}` on {what} needs a whole number, not `{arg}`", path)
                    return None
                return (lambda v, vals: cmp(v, arg)), f"{OP_WORDS[op][3:]} {arg}", ("cmp", op, arg)
            if kind == "enum" and ftype.scale is not None:
                if not self.literal(arg, ftype, path, what):
                    return None
                rank = ftype.scale.rank
                limit = rank[arg]
                return (lambda v, vals: cmp(rank[v], limit)), f"{OP_WORDS[op][3:]} {show(arg)}", ("rank", op, rank, limit)
            self.error("compile_bad_test", f"`{op}` needs a number or a value on a scale, but {what} is {ftype.describe()}",
                       path, "declare the fact with `scale:` to compare statuses by rank" if kind == "enum" else None)
            return None
        if op in ("contains", "lacks"):
            if kind != "list" or ftype.items is None:
                self.error("compile_bad_test", f"`{op}` needs a list, but {what} is {ftype.describe()}", path)
                return None
            if not self.literal(arg, ftype.items, path, f"the elements of {what}"):
                return None
            if op == "contains":
                return (lambda v, vals: arg in v), f"contains {show(arg)}", ("contains", arg)
            return (lambda v, vals: arg not in v), f"does not contain {show(arg)}", ("lacks", arg)
        if op in ("some", "every"):
            if kind != "list" or ftype.items is None:
                self.error("compile_bad_test", f"`{op}` needs a list, but {what} is {ftype.describe()}", path)
                return None
            inner = self.test(arg, ftype.items, path, f"the elements of {what}", used)
            if inner is None:
                return None
            fn, words, iir = inner
            if op == "some":
                return (lambda v, vals: any(fn(x, vals) for x in v)), f"has some element {words}", ("some", iir)
            return (lambda v, vals: all(fn(x, vals) for x in v)), f"has every element {words}", ("every", iir)
        if op in ("empty", "entered"):
            if not isinstance(arg, bool):
                self.error("compile_bad_value", f"`{op}` takes `true` or `false`", path)
                return None
            if op == "empty":
                if kind not in ("list", "map"):
                    self.error("compile_bad_test", f"`empty` needs a list, but {what} is {ftype.describe()}", path)
                    return None
                return (lambda v, vals: (len(v) == 0) == arg), "empty" if arg else "not empty", ("empty", arg)
            return ((lambda v, vals: (v is not None and v != "") == arg),
                    "entered" if arg else "not entered", ("entered", arg))
        # equals_fact / in_fact
        other = self.fact(arg, path)
        if other is None:
            return None
        used.add(other.name)
        if op == "equals_fact":
            return (lambda v, vals: _read(vals, other) == v), f"equal to {other.says or other.name}", ("eqfact", other)
        if other.type.kind != "list":
            self.error("compile_bad_test", f"`in_fact` needs a list fact, but `{other.name}` is {other.type.describe()}", path)
            return None
        return (lambda v, vals: v in _read(vals, other)), f"listed in {other.says or other.name}", ("infact", other)

    def move(self, spec: Any, path: tuple, used: set[str]) -> Cond | None:
        if not isinstance(spec, dict) or not {"from", "to", "graph"} <= set(spec):
            self.error("compile_bad_test", "`move` needs `from`, `to` and `graph`", path)
            return None
        extra = set(spec) - {"from", "to", "graph", "unlisted"}
        if extra:
            self.error("compile_bad_test", f"unknown key `{sorted(extra)[0]}` in `move`", path)
            return None
        src = self.fact(spec["from"], path + ("from",))
        dst = self.fact(spec["to"], path + ("to",))
        unlisted = spec.get("unlisted", "allowed")
        if unlisted not in ("allowed", "denied"):
            self.error("compile_bad_value", "`unlisted` is `allowed` or `denied`", path + ("unlisted",))
            return None
        graph = spec["graph"]
        gfact = None
        if isinstance(graph, str):
            gfact = self.fact(graph, path + ("graph",))
            if gfact is None:
                return None
            if gfact.type.kind != "map":
                self.error("compile_bad_test", f"`graph` fact `{graph}` must be a map of stage to next stages", path + ("graph",))
                return None
            used.add(gfact.name)
        elif isinstance(graph, dict) and all(isinstance(v, list) for v in graph.values()):
            for stage, nexts in graph.items():
                if src is not None and src.type.kind == "enum":
                    self.literal(stage, src.type, path + ("graph", stage), f"fact `{src.name}`")
                for i, n in enumerate(nexts):
                    if dst is not None and dst.type.kind == "enum":
                        self.literal(n, dst.type, path + ("graph", stage, i), f"fact `{dst.name}`")
        else:
            self.error("compile_bad_test", "`graph` is a map fact or a mapping of stage to a list of next stages", path + ("graph",))
            return None
        if src is None or dst is None:
            return None
        used.update((src.name, dst.name))
        allow_unlisted = unlisted == "allowed"
        inline = None if gfact else {k: frozenset(v) for k, v in graph.items()}

        def permitted(vals, tr):
            g = _read(vals, gfact) if gfact else inline
            a, b = _read(vals, src), _read(vals, dst)
            if g is not None and a in g:
                r = b in g[a]
                why = f"{show(b)} is {'' if r else 'not '}listed as a next stage of {show(a)}"
            else:
                r = allow_unlisted
                why = f"no next stages are listed for {show(a)}, so every move is {'allowed' if r else 'denied'}"
            if tr is not None:
                tr.append({"fact": src.name, "path": src.dotted, "test": "move", "value": [a, b],
                           "held": r, "says": f"the move from {show(a)} to {show(b)} is permitted: {why}"})
            return r
        return _tag(permitted, ("move", src, dst, gfact, inline, allow_unlisted, permitted))


def _tag(fn, ir):
    """Attach the condition's tree to its closure: the code generator reads the tree."""
    fn.ir = ir
    return fn


def _read(vals: list, fact: Fact):
    v = vals[fact.slot]
    if v is ABSENT:
        raise MissingFact(fact.dotted)
    return v


def _leaf(fact: Fact, fn, words: str) -> Cond:
    slot, dotted = fact.slot, fact.dotted
    label = fact.says or fact.name

    def leaf(vals, tr):
        v = vals[slot]
        if v is ABSENT:
            raise MissingFact(dotted)
        r = fn(v, vals)
        if tr is not None:
            tr.append({"fact": fact.name, "path": dotted, "test": words, "value": v, "held": r,
                       "says": f"{label}: expected {words}, found {show(v)} ({'holds' if r else 'does not hold'})"})
        return r
    return leaf


def _all(parts: list[Cond]) -> Cond:
    if len(parts) == 2:
        a, b = parts
        return lambda vals, tr: a(vals, tr) and b(vals, tr)

    def all_(vals, tr):
        for p in parts:
            if not p(vals, tr):
                return False
        return True
    return all_


def _any(parts: list[Cond]) -> Cond:
    def any_(vals, tr):
        for p in parts:
            if p(vals, tr):
                return True
        return False
    return any_


def _always(vals, tr):
    if tr is not None:
        tr.append({"test": "always", "held": True, "says": "this rule always applies"})
    return True


def _not(inner: Cond) -> Cond:
    return lambda vals, tr: not inner(vals, tr)


def _action_test(spec: Any, action: str) -> bool | None:
    """The value of a test on the built-in `action` fact, known at compile time."""
    if not isinstance(spec, dict):
        return spec == action
    result = True
    for op, arg in spec.items():
        if op == "is":
            ok = arg == action
        elif op == "is_not":
            ok = arg != action
        elif op == "in":
            ok = isinstance(arg, list) and action in arg
        elif op == "not_in":
            ok = isinstance(arg, list) and action not in arg
        else:
            return None
        result = result and ok
    return result


def reads_for(cond: Any, action: str) -> tuple[set[str], bool | None]:
    """Facts a condition may read when deciding ``action``, and its value if known statically.

    Conditions are evaluated left to right and stop early, so a branch behind a test on
    `action` that is false for this action never reads its facts.
    """
    if cond == "always":
        return set(), True
    if not isinstance(cond, dict):
        return set(), None
    reads: set[str] = set()
    known = True
    for key, spec in cond.items():
        value: bool | None
        if key in ("all", "any") and isinstance(spec, list):
            results = []
            for c in spec:
                r, v = reads_for(c, action)
                reads |= r
                results.append(v)
                if (key == "all" and v is False) or (key == "any" and v is True):
                    break
            if key == "all":
                value = False if False in results else (True if all(v is True for v in results) else None)
            else:
                value = True if True in results else (False if all(v is False for v in results) else None)
        elif key == "not":
            r, v = reads_for(spec, action)
            reads |= r
            value = None if v is None else not v
        elif key == "move" and isinstance(spec, dict):
            reads |= {spec.get(k) for k in ("from", "to", "graph") if isinstance(spec.get(k), str)}
            value = None
        elif key == "action":
            value = _action_test(spec, action)
        else:
            reads.add(key)
            if isinstance(spec, dict):
                reads |= {v for k, v in spec.items() if k in ("equals_fact", "in_fact") and isinstance(v, str)}
            value = None
        if value is False:
            return reads, False
        if value is None:
            known = False
    return reads, True if known else None
