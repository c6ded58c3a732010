"""Decision semantics of the engine on a small policy that uses every construct."""
from __future__ import annotations

from pathlib import Path

import pytest

import engine

MINI_DIR = Path(__file__).parent / "fixtures" / "mini"


@pytest.fixture(scope="module")
def mini():
    return engine.load_policy_set(MINI_DIR)


def req(**order):
    base = {"status": "draft", "item_count": 1}
    base.update(order)
    return {"context": {"system": "shop"}, "subject": {"is_member": False}, "resource": {"order": base}}


def test_version_is_a_content_hash_that_ignores_formatting(tmp_path):
    text = (MINI_DIR / "policy.yaml").read_text()
    a = engine.compile_files({"policy.yaml": text})
    b = engine.compile_files(
        {"policy.yaml": "# another comment\n" + text.replace("title: a test shop", "title:   a test shop")}
    )
    c = engine.compile_files({"policy.yaml": text.replace("title: a test shop", "title: another shop")})
    assert a.version == b.version != c.version
    assert a.version.startswith("sha256:") and len(a.version) == 7 + 64


def test_version_does_not_depend_on_how_the_folder_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(MINI_DIR.parent)
    ids = {engine.load_policy_set(p).version for p in ("mini", "./mini/", str(MINI_DIR.resolve()))}
    files = engine.read_folder(MINI_DIR)
    ids.add(engine.compile_files(files).version)
    ids.add(engine.compile_files(files, display_root="rules/").version)
    assert len(ids) == 1


@pytest.mark.parametrize(("inp", "code", "field"), [
    ({}, "missing_fact", "context.system"),
    ({"context": None}, "missing_fact", "context.system"),
    ({"context": "shop"}, "invalid_fact", "context"),
    ({"context": {"system": None}}, "missing_fact", "context.system"),
    ({"context": {"system": 3}}, "invalid_fact", "context.system"),
    ({"context": {"system": "Shop"}}, "unknown_system", "context.system"),
])
def test_system_errors(mini, inp, code, field):
    d = mini.decide("order.create", inp)
    assert (d.allow, d.obligations, d.rules, d.error.code, d.error.field) == (False, (), (), code, field)


@pytest.mark.parametrize(
    "action", ["order.Create", "order", "order.create.x", "ORDER.CREATE", "", None, 7, ["order.create"]]
)
def test_unknown_action_comes_before_fact_validation(mini, action):
    d = mini.decide(action, {"context": {"system": "shop"}})  # facts missing as well
    assert d.allow is False and d.error.code == "unknown_action" and d.error.field is None


@pytest.mark.parametrize(("patch", "code", "field"), [
    ({"status": None}, "missing_fact", "resource.order.status"),
    ({"status": "Draft"}, "invalid_fact", "resource.order.status"),
    ({"item_count": -1}, "invalid_fact", "resource.order.item_count"),
    ({"item_count": True}, "invalid_fact", "resource.order.item_count"),
    ({"item_count": 1.5}, "invalid_fact", "resource.order.item_count"),
    ({"item_count": "3"}, "invalid_fact", "resource.order.item_count"),
    ({"tags": ["a", 1]}, "invalid_fact", "resource.order.tags"),
    ({"tags": "a"}, "invalid_fact", "resource.order.tags"),
])
def test_fact_errors(mini, patch, code, field):
    d = mini.decide("order.create", req(**patch))
    assert (d.allow, d.error.code, d.error.field) == (False, code, field)


@pytest.mark.parametrize("member", ["true", 1, "yes", 0, None])
def test_booleans_are_strict(mini, member):
    inp = req()
    inp["subject"]["is_member"] = member
    d = mini.decide("order.create", inp)
    assert d.allow is False
    assert d.error.code == ("missing_fact" if member is None else "invalid_fact")


def test_intermediate_that_is_not_an_object(mini):
    d = mini.decide(
        "order.create", {"context": {"system": "shop"}, "subject": {"is_member": False}, "resource": {"order": 5}}
    )
    assert d.error.code == "invalid_fact" and d.error.field == "resource.order"


def test_defaults_apply_to_absent_optional_facts(mini):
    d = mini.decide("order.create", req())
    assert d.allow and [o.name for o in d.obligations] == ["compute_price"]


def test_obligation_params_from_facts(mini):
    d = mini.decide("order.create", req(note="rush"))
    assert ("tag_order", {"tag": "rush"}) in [(o.name, o.params) for o in d.obligations]
    assert mini.decide("order.create", req(note="")).obligations == mini.decide("order.create", req()).obligations


def test_overridden_obligation_is_dropped_and_its_only_rule_not_cited(mini):
    inp = req()
    inp["subject"]["is_member"] = True
    d = mini.decide("order.update", inp)
    assert d.allow and [o.name for o in d.obligations] == ["skip_price"] and d.rules == ("E-1",)


def test_deny_overrides_and_cites_only_denying_guards(mini):
    d = mini.decide("order.update", req(status="shipped"))
    assert d.allow is False and d.rules == ("G-1",) and d.obligations == () and d.error is None
    d = mini.decide("order.delete", req(status="packing", line_statuses=["picking"]))
    assert d.rules == ("G-2",)


@pytest.mark.parametrize(("status", "lines", "allow"), [
    ("draft", None, True),               # below the threshold the lines are not needed
    ("confirmed", [], True),             # an empty list does not deny
    ("confirmed", ["draft", "confirmed"], True),
    ("confirmed", ["picking"], False),   # at the threshold
    ("confirmed", ["packing"], False),   # same rank as picking
    ("confirmed", ["shipped"], False),   # beyond
])
def test_scale_thresholds_and_some(mini, status, lines, allow):
    patch = {"status": status}
    if lines is not None:
        patch["line_statuses"] = lines
    d = mini.decide("order.delete", req(**patch))
    assert d.allow is allow and d.error is None


def test_required_when(mini):
    d = mini.decide("order.delete", req(status="confirmed"))
    assert d.error.code == "missing_fact" and d.error.field == "resource.order.line_statuses"
    d = mini.decide("order.delete", req(status="draft", line_statuses="x"))  # given: still type-checked
    assert d.error.code == "invalid_fact"


@pytest.mark.parametrize(
    ("graph", "target", "allow"),
    [
        (None, "z", True),
        ({"a": ["b"]}, "b", True),
        ({"a": ["b"]}, "c", False),
        ({"x": ["y"]}, "z", True),
        ({"a": []}, "b", False),
    ],
)
def test_move_graph(mini, graph, target, allow):
    inp = {"context": {"system": "shop"}, "resource": {"stage": "a", "target_stage": target}}
    if graph is not None:
        inp["context"]["settings"] = {"next_stages": graph}
    d = mini.decide("order.move", inp)
    assert d.allow is allow and d.rules == (("M-2",) if allow else ("M-1",))


@pytest.mark.parametrize(("count", "status", "rules"), [
    (100, "shipped", ("E-2", "T-1")), (99, "draft", ("E-2", "T-2")), (10, "draft", ("E-2", "T-2")),
    (9, "draft", ("E-2", "T-3")), (50, "confirmed", ("E-2", "T-3")),
])
def test_row_table_first_hit(mini, count, status, rules):
    assert mini.decide("order.create", req(item_count=count, status=status)).rules == rules


def test_explain_uses_the_same_decision_and_says_why(mini):
    plain = mini.decide("order.update", req(status="shipped"))
    explained = mini.decide("order.update", req(status="shipped"), explain=True)
    assert explained._replace(trace=None) == plain
    g1 = next(t for t in explained.trace if t["rule"] == "G-1")
    assert g1["outcome"] == "denied"
    assert g1["conditions"][0]["says"].startswith("status: expected at least `shipped`, found `shipped` (holds)")
    assert plain.trace is None


def test_an_exception_inside_evaluation_fails_closed(mini, monkeypatch):
    def boom(*a):
        raise RuntimeError("boom")
    monkeypatch.setitem(mini.function("shop", "order.create").__globals__, "_run_rows", boom)
    d = mini.decide("order.create", req())
    assert d.allow is False and d.error.code == "evaluation_error" and d.rules == () and d.obligations == ()


def test_decision_to_dict_is_the_wire_shape(mini):
    d = mini.decide("order.create", req(item_count=100)).to_dict()
    assert set(d) == {"allow", "obligations", "rules", "error", "policy_version"}
    assert d["obligations"][0] == {"name": "compute_price", "params": {}}


def test_rule_catalogue_for_auditors(mini):
    g1 = mini.rule("G-1")
    assert g1.kind == "guard" and g1.sources == ("doc",) and g1.actions == ("order.update", "order.delete")
    assert g1.file.endswith("policy.yaml") and g1.line == 62 and g1.definition["deny_when"]


def test_a_returned_decision_cannot_be_changed_by_its_caller(mini):
    request = req(note="rush")
    first = mini.decide("order.update", request)
    tag = next(o for o in first.obligations if o.name == "tag_order")
    price = next(o for o in first.obligations if o.name == "compute_price")
    with pytest.raises(TypeError):
        tag.params["tag"] = "changed"
    with pytest.raises(TypeError):
        price.params["x"] = 1
    shown = first.to_dict()
    shown["obligations"][0]["params"]["x"] = 1        # a fresh copy: changing it changes nothing else
    shown["obligations"].append({"name": "more", "params": {}})
    assert mini.decide("order.update", request) == first
    assert mini.decide("order.update", request).to_dict() != shown


LIST_PARAMS = """
system: shop
sources: {doc: {kind: seed, title: the shop manual}}
facts:
  member: {path: subject.is_member, type: boolean}
  tags: {path: resource.order.tags, type: list, items: {type: string}}
obligations:
  lock_fields:
    says: make fields read-only
    params: {fields: {type: list, items: {type: string}}}
  tag_all:
    says: tag the order
    params: {tags: {type: list, items: {type: string}}}
actions:
  - names: [order.update]
    reads: [member, tags]
rules:
  - id: E-1
    kind: effect
    says: fields are locked and tags copied
    source: doc
    actions: [order.update]
    when: {member: true}
    obligations:
      - {name: lock_fields, params: {fields: [price, quantity]}}
      - {name: tag_all, params: {tags: {fact: tags}}}
"""


def test_list_parameters_and_traces_are_read_only_too():
    policy = engine.compile_files({"policy.yaml": LIST_PARAMS})
    request = {"context": {"system": "shop"}, "subject": {"is_member": True}, "resource": {"order": {"tags": ["a"]}}}
    first = policy.decide("order.update", request, explain=True)
    fields = first.obligations[0].params["fields"]
    with pytest.raises(TypeError):
        fields.append("discount")
    with pytest.raises(TypeError):
        first.trace[0]["outcome"] = "changed"
    request["resource"]["order"]["tags"].append("b")      # the caller's input, changed after the decision
    assert first.obligations[1].params == {"tags": ["a"]}
    again = policy.decide("order.update", {**request, "resource": {"order": {"tags": ["a"]}}})
    assert again.obligations[0].params == {"fields": ["price", "quantity"]}
    assert again.to_dict()["obligations"][0] == {"name": "lock_fields", "params": {"fields": ["price", "quantity"]}}


def test_debug_raises_with_the_generated_source_in_the_traceback(mini, monkeypatch):
    import traceback

    def boom(*a):
        raise RuntimeError("boom")
    monkeypatch.setitem(mini.function("shop", "order.create").__globals__, "_run_rows", boom)
    assert mini.decide("order.create", req()).error.code == "evaluation_error"     # fail closed by default
    with pytest.raises(RuntimeError) as info:
        mini.decide("order.create", req(), debug=True)
    shown = "".join(traceback.format_exception(info.value))
    assert f'"<ordergate plan shop order.create {mini.version[7:19]}>"' in shown
    assert "_run_rows(TABLE_sizes, vals, tr, fired, den, V)" in shown      # the generated line, from linecache
