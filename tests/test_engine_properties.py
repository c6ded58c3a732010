"""Properties over random requests: decide never raises, never allows with an error, is deterministic."""
from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-3, 200), st.sampled_from(
    ["", "active", "submitted", "order", "quote", "picking_list", "none", "d365_sales", "qad_crm", "autotask",
     "qad_erp", "dynamics_ax", "sales_order", "shipment", "derived", "intercompany", "HD", "27.20.2.1"]))
json_values = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(
        ["context", "subject", "resource", "system", "organization", "salesorder", "statecode", "opportunity",
         "stage", "target_stage", "customer", "is_active", "sales_order", "document_status", "settings",
         "is_sop_integration_enabled", "is_integration_user", "blocked_transactions", "order"]), inner, max_size=5)),
    max_leaves=25)


@st.composite
def requests(draw, policy_set):
    system = draw(st.sampled_from(sorted(policy_set.catalogue)))
    action = draw(st.one_of(st.sampled_from(policy_set.catalogue[system]), st.text(max_size=12)))
    inp = draw(st.dictionaries(st.sampled_from(["subject", "resource", "context"]), json_values, max_size=3))
    if draw(st.booleans()):
        ctx = inp.get("context") if isinstance(inp.get("context"), dict) else {}
        inp["context"] = {**ctx, "system": system}
    return action, inp


def test_random_requests(policy_set):
    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(requests(policy_set))
    def check(req):
        action, inp = req
        before = copy.deepcopy(inp)
        first = policy_set.decide(action, inp)
        second = policy_set.decide(action, copy.deepcopy(inp))
        assert first == second                      # deterministic
        assert inp == before                        # the input is not modified
        if first.error is not None:
            assert first.allow is False and first.obligations == () and first.rules == ()
        if first.allow:
            assert first.error is None
        assert first.error is None or first.error.code in {
            "unknown_system", "unknown_action", "missing_fact", "invalid_fact"}
    check()
