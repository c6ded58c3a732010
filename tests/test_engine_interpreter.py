"""The generated code and a direct interpreter of the IR give the same decision on every action.

Inputs are drawn per action from the facts it reads: values from each fact's domain (the literals
its rules compare it with, the values of its enum or scale, its bounds), other values of its type,
wrong types, nulls and missing facts. Traces must agree too, except for actions with a row table,
where the generated code tries only the rows its index selects.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from corpus_record import POLICY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine
from engine import ir
from engine.domains import fact_domains, with_value

NO_MATCH = Path(__file__).parent / "fixtures" / "no_match"
POLICIES = {"corpus": engine.load_policy_set(POLICY), "no_match": engine.load_policy_set(NO_MATCH)}
ACTIONS = [(p, s, a) for p, ps in POLICIES.items() for s in sorted(ps.catalogue) for a in ps.catalogue[s]]

odd = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["", "x", "EUR"]),
                st.lists(st.sampled_from(["x", "vip", 1]), max_size=2), st.just({}))


def typed(fact_type: ir.FactType) -> st.SearchStrategy:
    if isinstance(fact_type, ir.ListType):
        return st.lists(typed(fact_type.items) if fact_type.items else odd, max_size=3)
    if isinstance(fact_type, ir.MapType):
        inner = typed(fact_type.values) if fact_type.values else odd
        return st.dictionaries(st.sampled_from(["new", "won", "lost", "x"]), inner, max_size=3)
    if isinstance(fact_type, ir.EnumType):
        return st.sampled_from(fact_type.values)
    if isinstance(fact_type, ir.IntegerType):
        return st.integers(-2 if fact_type.min is None else fact_type.min - 1,
                           50_000 if fact_type.max is None else fact_type.max + 1)
    if isinstance(fact_type, ir.StringType):
        return st.sampled_from(["", "x", "EUR", "new", "won"])
    return st.booleans() if isinstance(fact_type, ir.BooleanType) else st.just({})


@st.composite
def inputs(draw, policy: engine.PolicySet, system: str, action: str) -> dict:
    plan = policy.ir.plan(system, action)
    domains = {d.path: d for d in fact_domains(policy, system, action)}
    data: dict = {"context": {"system": system}}
    for read in plan.reads:
        domain = domains[read.fact.path]
        choices = [typed(read.fact.type), odd, st.just("missing")]
        if domain.values:
            choices.insert(0, st.sampled_from(domain.values))
        value = draw(st.one_of(*choices))
        if value != "missing":
            data = with_value(data, read.fact.path, value)
    return data


@pytest.mark.parametrize("name,system,action", ACTIONS, ids=[f"{p}:{s}:{a}" for p, s, a in ACTIONS])
def test_generated_code_and_interpreter_agree(name, system, action):
    policy = POLICIES[name]
    has_table = any(isinstance(u, ir.RowTable) for u in policy.ir.plan(system, action).units)

    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
    @given(inputs(policy, system, action), st.booleans())
    def check(data, explain):
        generated = policy.decide(action, data, explain=explain)
        interpreted = policy.interpret(action, data, explain=explain)
        if has_table and explain:
            generated, interpreted = generated._replace(trace=None), interpreted._replace(trace=None)
        assert generated == interpreted
    check()


def test_the_interpreter_answers_unknown_systems_and_actions_like_decide():
    for action, data in [("order.book", {"context": {"system": "nowhere"}}), ("x.y", {"context": {"system": "desk"}}),
                         ("order.book", []), ("order.book", {"context": {}})]:
        assert POLICIES["corpus"].interpret(action, data) == POLICIES["corpus"].decide(action, data)
