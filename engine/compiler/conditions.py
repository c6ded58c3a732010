"""The condition language (`when`, `deny_when`, `required_when`, table words and cells): checks
and lowering to ``ir.Condition``. Errors are collected across the parts of a mapping, so one
run reports every wrong part; a refused condition raises ``Rejected``."""
from __future__ import annotations

from typing import Any

from .. import ir
from ..errors import did_you_mean
from .context import Context, Path, Rejected, lower_all

TEST_OPS = ("is", "is_not", "in", "not_in", "at_least", "above", "at_most", "below", "contains", "lacks", "some",
            "every", "empty", "entered", "equals_fact", "in_fact")
ORDER_OPS = ("at_least", "above", "at_most", "below")


def check_literal(ctx: Context, value: Any, spec: ir.FactType, path: Path, what: str) -> bool:
    """Is ``value`` a possible value of ``spec``? Reports the problem when not."""
    if isinstance(spec, ir.EnumType):
        if value in spec.values and type(value) is type(spec.values[0]):
            return True
        ctx.error("compile_unknown_value", f"`{value}` is not a value of {what}", path,
                  did_you_mean(str(value), [str(v) for v in spec.values]) or "expected " + spec.describe())
        return False
    if value is None or not spec.accepts(value):
        ctx.error("compile_bad_value", f"`{value}` does not fit {what}, which is {spec.describe()}", path)
        return False
    return True


def literal(ctx: Context, value: Any, spec: ir.FactType, path: Path, what: str) -> Any:
    if not check_literal(ctx, value, spec, path, what):
        raise Rejected()
    return value


def condition(ctx: Context, cond: Any, path: Path, used: set[str]) -> ir.Condition:
    """Lower a condition mapping; ``used`` collects the names of the facts it reads."""
    from .moves import move

    where = ctx.loc(path)
    if cond == "always":
        return ir.Always(where)
    if not isinstance(cond, dict) or not cond:
        raise ctx.reject("compile_bad_test", "a condition must be a non-empty mapping of facts to tests", path)

    def part(item: tuple[Any, Any]) -> ir.Condition:
        key, spec = item
        sub = path + (key,)
        if key in ("all", "any"):
            return _combined(ctx, key, spec, sub, used)
        if key == "not":
            return ir.Not(condition(ctx, spec, sub, used), ctx.loc(sub))
        if key == "move":
            return move(ctx, spec, sub, used)
        fact = ctx.fact(key, sub, key=True)
        used.add(fact.name)
        return fact_condition(ctx, fact, spec, sub, used)

    parts = lower_all(cond.items(), part)
    return parts[0] if len(parts) == 1 else ir.AllOf(tuple(parts), where)


def _combined(ctx: Context, key: str, spec: Any, path: Path, used: set[str]) -> ir.Condition:
    if not isinstance(spec, list) or not spec:
        raise ctx.reject("compile_bad_test", f"`{key}` takes a non-empty list of conditions", path)
    inner = lower_all(enumerate(spec), lambda ic: condition(ctx, ic[1], path + (ic[0],), used))
    return (ir.AllOf if key == "all" else ir.AnyOf)(tuple(inner), ctx.loc(path))


def fact_condition(ctx: Context, fact: ir.Fact, spec: Any, path: Path, used: set[str]) -> ir.FactCondition:
    return ir.FactCondition(fact, test(ctx, spec, fact.type, path, f"fact `{fact.name}`", used), ctx.ref(path))


def test(ctx: Context, spec: Any, ftype: ir.FactType, path: Path, what: str, used: set[str]) -> ir.Test:
    """Lower the test written for one value: a literal, or a mapping of operators to operands."""
    if not isinstance(spec, dict):
        if isinstance(spec, list) and not isinstance(ftype, ir.ListType):
            raise ctx.reject("compile_bad_test", f"a list cannot equal {what}", path,
                             "to test for one of several values write `{in: [...]}`")
        return ir.Compare("is", literal(ctx, spec, ftype, path, what))
    if not spec:
        raise ctx.reject("compile_bad_test", "an empty test", path)
    tests = tuple(operator(ctx, op, arg, ftype, path + (op,), what, used) for op, arg in spec.items())
    return tests[0] if len(tests) == 1 else ir.Both(tests)


def operator(ctx: Context, op: Any, arg: Any, ftype: ir.FactType, path: Path, what: str, used: set[str]) -> ir.Test:
    if op not in TEST_OPS:
        raise ctx.reject("compile_bad_test", f"unknown test `{op}` on {what}", path,
                         did_you_mean(op, TEST_OPS) or "tests: " + ", ".join(f"`{o}`" for o in TEST_OPS))
    if op in ("is", "is_not"):
        return ir.Compare(op, literal(ctx, arg, ftype, path, what))
    if op in ("in", "not_in"):
        if not isinstance(arg, list) or not arg:
            raise ctx.reject("compile_bad_test", f"`{op}` takes a non-empty list", path)
        checked = [check_literal(ctx, a, ftype, path + (i,), what) for i, a in enumerate(arg)]   # every one reports
        if not all(checked):
            raise Rejected()
        return ir.Member(op, tuple(arg))
    if op in ORDER_OPS:
        return _order(ctx, op, arg, ftype, path, what)
    if op in ("contains", "lacks", "some", "every"):
        return _element(ctx, op, arg, ftype, path, what, used)
    if op in ("empty", "entered"):
        return _flag(ctx, op, arg, ftype, path, what)
    return _same_as(ctx, op, arg, path, used)


def _order(ctx: Context, op: Any, arg: Any, ftype: ir.FactType, path: Path, what: str) -> ir.Test:
    if isinstance(ftype, ir.IntegerType):
        if type(arg) is not int:
            raise ctx.reject("compile_bad_value", f"`{op}` on {what} needs a whole number, not `{arg}`", path)
        return ir.Compare(op, arg)
    if isinstance(ftype, ir.EnumType) and ftype.scale is not None:
        return ir.Compare(op, literal(ctx, arg, ftype, path, what), ftype.scale)
    hint = "declare the fact with `scale:` to compare statuses by rank" if isinstance(ftype, ir.EnumType) else None
    raise ctx.reject("compile_bad_test",
                     f"`{op}` needs a number or a value on a scale, but {what} is {ftype.describe()}", path, hint)


def _element(ctx: Context, op: Any, arg: Any, ftype: ir.FactType, path: Path, what: str, used: set[str]) -> ir.Test:
    if not isinstance(ftype, ir.ListType) or ftype.items is None:
        raise ctx.reject("compile_bad_test", f"`{op}` needs a list, but {what} is {ftype.describe()}", path)
    inner = f"the elements of {what}"
    if op in ("contains", "lacks"):
        return ir.Contains(op, literal(ctx, arg, ftype.items, path, inner))
    return ir.Each(op, test(ctx, arg, ftype.items, path, inner, used))


def _flag(ctx: Context, op: Any, arg: Any, ftype: ir.FactType, path: Path, what: str) -> ir.Test:
    if not isinstance(arg, bool):
        raise ctx.reject("compile_bad_value", f"`{op}` takes `true` or `false`", path)
    if op == "empty" and not isinstance(ftype, (ir.ListType, ir.MapType)):
        raise ctx.reject("compile_bad_test", f"`empty` needs a list, but {what} is {ftype.describe()}", path)
    return ir.Flag(op, arg)


def _same_as(ctx: Context, op: Any, arg: Any, path: Path, used: set[str]) -> ir.Test:
    other = ctx.fact(arg, path)
    used.add(other.name)
    if op == "in_fact" and not isinstance(other.type, ir.ListType):
        raise ctx.reject("compile_bad_test",
                         f"`in_fact` needs a list fact, but `{other.name}` is {other.type.describe()}", path)
    return ir.SameAs(op, other)
