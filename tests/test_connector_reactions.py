"""The durable_rules back-flow correlator: correlation, sessions, errors, ownership, YAML checks."""
from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from connector import Connector, DecisionResult, InProcessClient, OrderBook, PolicyDenied
from connector.orders import Opportunity, OpportunityLine, SalesOrder, SalesOrderLine
from connector.reactions import (
    MAX_SESSIONS_LIMIT,
    Correlator,
    OrderState,
    ReactionEngine,
    ReactionError,
    WrongThread,
    load_reactions,
)
from connector.sample import seed_all
from engine import PolicyErrors

REACTIONS = load_reactions()


class FakeOrders:
    """Order states keyed by number, standing in for the book (counts every rebuild)."""

    def __init__(self, **orders: dict[int, int]) -> None:
        self.states = {n: OrderState(False, {no: {"ordered": q, "invoiced": 0} for no, q in lines.items()})
                       for n, lines in orders.items()}
        self.loads: list[str] = []

    def __call__(self, number: str) -> OrderState:
        self.loads.append(number)
        return self.states[number]


def actions(fired):
    return [a for a, _ in fired]


def test_shipped_reactions_compile_to_a_json_ruleset():
    rs = REACTIONS.ruleset["erp_backflow"]
    assert rs["fully-invoiced"]["all"][1] == {"n0$not": {"$and": [{"kind": "line"}, {"open": True}]}}
    assert rs["line-shipped"]["run"] == "update_shipped_quantity"
    assert {"_track-order", "_track-line"} <= set(rs)


def test_correlation_fully_invoiced_only_when_order_and_every_line_invoiced():
    orders = FakeOrders(A={1: 4, 2: 10})
    eng = ReactionEngine(REACTIONS, orders)
    assert actions(eng.process({"order": "A", "type": "line_shipped", "line_no": 1, "quantity": 4})) == \
        ["update_shipped_quantity"]
    assert actions(eng.process({"order": "A", "type": "line_invoiced", "line_no": 1, "quantity": 4})) == \
        ["update_invoiced_quantity"]
    assert actions(eng.process({"order": "A", "type": "line_invoiced", "line_no": 2, "quantity": 9})) == \
        ["update_invoiced_quantity"]                         # 9 of 10: line 2 still open
    assert actions(eng.process({"order": "A", "type": "order_invoiced"})) == ["record_order_invoiced"]
    assert actions(eng.process({"order": "A", "type": "line_invoiced", "line_no": 2, "quantity": 10})) == \
        ["update_invoiced_quantity", "mark_fully_invoiced"]
    assert orders.loads == ["A"]


def test_correlation_when_the_order_event_comes_last():
    eng = ReactionEngine(REACTIONS, FakeOrders(B={1: 2}))
    eng.process({"order": "B", "type": "line_invoiced", "line_no": 1, "quantity": 2})
    assert actions(eng.process({"order": "B", "type": "order_invoiced"})) == \
        ["record_order_invoiced", "mark_fully_invoiced"]


def test_sessions_are_separate_per_order():
    eng = ReactionEngine(REACTIONS, FakeOrders(A={1: 1}, B={1: 1}))
    eng.process({"order": "A", "type": "order_invoiced"})
    # B's line closing must not complete A (joins happen within one sid)
    assert actions(eng.process({"order": "B", "type": "line_invoiced", "line_no": 1, "quantity": 1})) == \
        ["update_invoiced_quantity"]
    assert sorted(eng.live_sessions) == ["A", "B"]


def test_lru_eviction_and_rebuild_lose_nothing():
    orders = FakeOrders(A={1: 1}, B={1: 1}, C={1: 1})
    eng = ReactionEngine(REACTIONS, orders, max_sessions=2)
    eng.process({"order": "A", "type": "order_invoiced"})
    orders.states["A"].invoiced = True                      # what the gate wrote to the book
    eng.process({"order": "B", "type": "line_shipped", "line_no": 1, "quantity": 1})
    eng.process({"order": "C", "type": "line_shipped", "line_no": 1, "quantity": 1})
    assert eng.live_sessions == ["B", "C"] and eng.evictions == 1
    # A comes back: rebuilt from the book, its invoiced order fact is there again
    assert actions(eng.process({"order": "A", "type": "line_invoiced", "line_no": 1, "quantity": 1})) == \
        ["update_invoiced_quantity", "mark_fully_invoiced"]
    assert orders.loads == ["A", "B", "C", "A"]
    assert eng.live_sessions == ["C", "A"]


def test_max_sessions_is_bounded_below_the_durable_rules_cap():
    with pytest.raises(ValueError, match="max_sessions"):
        ReactionEngine(REACTIONS, FakeOrders(), max_sessions=MAX_SESSIONS_LIMIT + 1)
    assert MAX_SESSIONS_LIMIT < 1000


def test_exception_inside_an_action_is_raised_and_the_session_dropped():
    eng = ReactionEngine(REACTIONS, FakeOrders(A={1: 1}))
    eng.process({"order": "A", "type": "line_shipped", "line_no": 1, "quantity": 1})
    sink = eng._host._sink

    def boom(action, sid):
        raise KeyError("crm line mapping missing")
    eng._host._sink = boom
    with pytest.raises(ReactionError, match="crm line mapping missing"):
        eng.process({"order": "A", "type": "line_shipped", "line_no": 1, "quantity": 1})
    assert eng.live_sessions == []                            # state with 'exception' is not reused
    eng._host._sink = sink
    assert actions(eng.process({"order": "A", "type": "line_shipped", "line_no": 1, "quantity": 1})) == \
        ["update_shipped_quantity"]


def test_engine_refuses_calls_from_other_threads():
    eng = ReactionEngine(REACTIONS, FakeOrders(A={1: 1}))
    errors: list[BaseException] = []

    def intruder():
        try:
            eng.process({"order": "A", "type": "order_invoiced"})
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
    t = threading.Thread(target=intruder)
    t.start()
    t.join()
    assert len(errors) == 1 and isinstance(errors[0], WrongThread)
    assert eng.live_sessions == []                            # nothing happened


def test_bad_events_are_rejected():
    eng = ReactionEngine(REACTIONS, FakeOrders(A={1: 1}))
    with pytest.raises(ValueError, match="unknown ERP event type"):
        eng.process({"order": "A", "type": "line_teleported"})
    with pytest.raises(ValueError, match="needs integer"):
        eng.process({"order": "A", "type": "line_invoiced", "line_no": 1})
    with pytest.raises(ValueError, match="no line 7"):
        eng.process({"order": "A", "type": "line_invoiced", "line_no": 7, "quantity": 1})


@pytest.mark.parametrize(("text", "message"), [
    ("ruleset: x\nfacts: {}\nevents: {e: []}\nreactions:\n  - id: r\n    on_event: e\n    do: fly\n",
     "reactions.yaml:7:9: reactions_unknown_name: reaction `r`: `do` must be one of"),
    ("ruleset: x\nfacts: {}\nevents: {e: []}\nreactions:\n  - id: r\n    on: {event: e}\n    do: mark_fully_invoiced\n",
     "reactions.yaml:6:5: reactions_unknown_key: unknown key `True`"),   # YAML 1.1 reads `on` as true
    ("ruleset: x\nfacts: {}\nevents: {e: [n]}\nreactions:\n  - id: r\n    on_event: e\n    test: {m: 1}\n"
     "    do: mark_fully_invoiced\n", "reactions.yaml:7:12: reactions_unknown_name: unknown field `m`"),
    ("ruleset: x\nfacts: {o: [a]}\nevents: {}\nreactions:\n  - id: r\n    when_all: [{fact: o, test: {a: {like: 1}}}]\n"
     "    do: mark_fully_invoiced\n", "reactions.yaml:6:37: reactions_unknown_name: unknown test `like`"),
    ("ruleset: x\nfacts: {}\nevents: {e: []}\nreactions:\n  - id: r\n    on_event: nope\n    do: mark_fully_invoiced\n"
     "  - id: r\n    on_event: e\n    do: mark_fully_invoiced\n",
     "reactions.yaml:8:9: reactions_duplicate_id: duplicate reaction id `r`"),
    ("reactions: [\n", "reactions.yaml:2:1: load_syntax: not valid YAML"),
    ("ruleset: x\napply: {system: qad_crm, action: opportunity.apply}\nfacts: {}\nevents: {e: []}\n"
     "reactions:\n  - id: r\n    on_event: e\n    do: mark_fully_invoiced\n",
     "reactions.yaml:2:8: reactions_unknown_name: `qad_crm` has no operation for `opportunity.apply`"),
])
def test_reaction_file_errors_are_the_engines_and_located(text, message):
    """The reactions file is read by the engine's loader: its errors are PolicyErrors at file:line:column."""
    with pytest.raises(PolicyErrors) as info:
        load_reactions(text=text)
    assert message in info.value.render()


# --------------------------------------------------------------------------- through the gate

@pytest.fixture
def wired(db_url, policy_set):
    book = OrderBook(db_url)
    seed_all(book)
    conn = Connector(book, InProcessClient(policy_set))
    numbers = []
    # three opportunities handed over to ERP, one line each
    with book.transaction() as s:
        for i in range(3):
            opp = Opportunity(system="qad_crm", name=f"opp {i}", stage="order", order_sent_to_erp=True)
            opp.lines = [OpportunityLine(line_no=1, item="X", quantity=5)]
            s.add(opp)
            s.flush()
            order = SalesOrder(system="qad_erp", number=f"SO-R{i}", opportunity_id=opp.id)
            order.lines = [SalesOrderLine(line_no=1, item="X", quantity=5, crm_line_id=opp.lines[0].id)]
            s.add(order)
            numbers.append((order.number, opp.id))
    yield book, conn, numbers
    book.dispose()


def test_evicted_order_is_rebuilt_from_the_store_and_reaches_invoiced(wired):
    book, conn, orders = wired
    with Correlator(conn, max_sessions=2) as cor:
        for number, _ in orders:
            cor.process({"order": number, "type": "order_invoiced"})
        assert cor.call(lambda e: (e.live_sessions, e.evictions)) == (["SO-R1", "SO-R2"], 1)
        done = cor.process({"order": "SO-R0", "type": "line_invoiced", "line_no": 1, "quantity": 5})
        assert "STG-10" in done.decision.rules
        assert cor.call(lambda e: e.live_sessions) == ["SO-R2"]   # R1 evicted for R0, R0 deleted when done
    with book.session() as s:
        opp = s.get(Opportunity, orders[0][1])
        assert (opp.stage, opp.invoiced_quantity, opp.lines[0].invoiced_quantity) == ("invoiced", 5, 5)
        assert s.get(Opportunity, orders[1][1]).stage == "order"


def test_denied_back_flow_writes_nothing_and_drops_the_cache(wired, policy_set):
    book, conn, orders = wired
    number, opp_id = orders[0]

    class DenyingClient:
        def __init__(self):
            self.deny = True

        def decide(self, action, input):
            if self.deny:
                d = policy_set.decide(action, {**input, "resource": {}}).to_dict()   # missing_fact
                return DecisionResult.from_dict(d, decision_id="deny-1")
            return conn.gate.client.decide(action, input)
    client = DenyingClient()
    denying = Connector(book, client)
    with Correlator(denying) as cor:
        before = book.snapshot()
        with pytest.raises(PolicyDenied, match="missing_fact"):
            cor.process({"order": number, "type": "line_invoiced", "line_no": 1, "quantity": 5})
        assert book.snapshot() == before
        assert cor.call(lambda e: e.live_sessions) == []
        client.deny = False
        cor.process({"order": number, "type": "line_invoiced", "line_no": 1, "quantity": 5})
        done = cor.process({"order": number, "type": "order_invoiced"})
        assert "STG-10" in done.decision.rules


def test_correlator_engine_is_not_usable_from_the_caller_thread(wired):
    book, conn, orders = wired
    with Correlator(conn) as cor:
        with pytest.raises(WrongThread):
            cor.engine.process({"order": orders[0][0], "type": "order_invoiced"})
        with pytest.raises(WrongThread):
            _ = cor.engine.live_sessions
        assert cor.call(lambda e: threading.current_thread().name) == "ordergate-correlator"


def test_late_event_after_full_invoicing_keeps_the_order_invoiced(wired):
    book, conn, orders = wired
    number, opp_id = orders[0]
    with Correlator(conn) as cor:
        cor.process({"order": number, "type": "line_invoiced", "line_no": 1, "quantity": 5})
        cor.process({"order": number, "type": "order_invoiced"})
        assert cor.call(lambda e: e.live_sessions) == []
        late = cor.process({"order": number, "type": "line_shipped", "line_no": 1, "quantity": 5})
        assert "STG-10" in late.decision.rules
        assert cor.call(lambda e: e.live_sessions) == []
    with book.session() as s:
        assert s.scalar(sa.select(SalesOrder.invoice_status).where(SalesOrder.number == number)) == "fully_invoiced"
        opp = s.get(Opportunity, opp_id)
        assert (opp.stage, opp.shipped_quantity, opp.invoiced_quantity) == ("invoiced", 5, 5)


def test_duplicate_erp_events_are_harmless():
    eng = ReactionEngine(REACTIONS, FakeOrders(A={1: 3}))
    for _ in range(2):
        assert actions(eng.process({"order": "A", "type": "line_shipped", "line_no": 1, "quantity": 2})) == \
            ["update_shipped_quantity"]
    for _ in range(2):
        eng.process({"order": "A", "type": "line_invoiced", "line_no": 1, "quantity": 3})
    assert actions(eng.process({"order": "A", "type": "order_invoiced"})) == \
        ["record_order_invoiced", "mark_fully_invoiced"]
    assert actions(eng.process({"order": "A", "type": "order_invoiced"})) == ["record_order_invoiced"]
    assert eng.is_complete("A")            # the status stays fully invoiced for the repeated event
