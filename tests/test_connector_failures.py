"""Failure injection: nothing is ever half-applied, and no decision means no write."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from connector import (
    HANDLERS,
    Connector,
    DecisionResult,
    DecisionUnavailable,
    FactsChanged,
    InProcessClient,
    Obligation,
    OrderBook,
    PolicyDenied,
    UnsupportedObligation,
)
from connector.orders import AppliedMutation, PurchaseOrder, SalesOrder, SystemSetting
from connector.sample import seed_all

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def book(db_url):
    st = OrderBook(db_url)
    seed_all(st)
    yield st
    st.dispose()


def _qty(book, number, line_no=1):
    with book.session() as s:
        order = s.scalar(sa.select(SalesOrder).where(SalesOrder.number == number))
        return next(ln.quantity for ln in order.lines if ln.line_no == line_no)


def test_exception_in_an_obligation_rolls_back_the_mutation_and_earlier_obligations(book, policy_set):
    calls = []

    def broken(ctx, params):
        calls.append(params)
        raise RuntimeError("intercompany SO company is offline")

    conn = Connector(book, InProcessClient(policy_set), handlers={"propagate_to_intercompany_so": broken})
    before = book.snapshot()
    with pytest.raises(RuntimeError, match="offline"):
        conn.dynamics_ax.update_line_quantity("SO-AX-1", 1, 25, user="alice")
    assert calls == [{"change": "update_quantity"}]     # it really ran after the mutation and the PO propagation
    assert book.snapshot() == before
    # the book is usable afterwards, and the same change goes through with working handlers
    Connector(book, InProcessClient(policy_set)).dynamics_ax.update_line_quantity("SO-AX-1", 1, 25, user="alice")
    assert _qty(book, "SO-AX-1") == 25


def test_exception_in_a_deferred_step_rolls_back_everything(book, policy_set):
    def broken(ctx, params):
        HANDLERS["propagate_to_intercompany_po"](ctx, params)
        ctx.after(lambda: (_ for _ in ()).throw(OSError("disk full")))

    conn = Connector(book, InProcessClient(policy_set), handlers={"propagate_to_intercompany_po": broken})
    before = book.snapshot()
    with pytest.raises(OSError):
        conn.dynamics_ax.delete_sales_order("SO-AX-1", user="alice")
    assert book.snapshot() == before


def test_obligation_without_handler_is_refused_before_any_write(book, policy_set):
    conn = Connector(book, InProcessClient(policy_set), handlers={"recalculate_net_amount": None})
    before = book.snapshot()
    with pytest.raises(UnsupportedObligation) as info:
        conn.dynamics_ax.update_line_quantity("SO-AX-1", 1, 25, user="alice")
    assert info.value.names == ["recalculate_net_amount"]
    assert book.snapshot() == before


class _FixedClient:
    def __init__(self, decision: DecisionResult) -> None:
        self.decision = decision
        self.requests = []

    def decide(self, action, input):
        self.requests.append((action, input))
        return self.decision


def test_unknown_obligation_name_from_a_policy_is_refused(book):
    client = _FixedClient(DecisionResult("d-1", True, (Obligation("teleport_goods", {}),
                                                       Obligation("compute_price", {})), ("X-1",), None, "v"))
    before = book.snapshot()
    with pytest.raises(UnsupportedObligation, match="teleport_goods"):
        Connector(book, client).d365_sales.recalculate("quote", 1, user="alice")
    assert book.snapshot() == before


def test_allow_with_an_error_is_a_denial(book):
    # a malformed answer: allow true but an error set — fail closed
    client = _FixedClient(DecisionResult("d-2", True, (), (), {"code": "evaluation_error", "field": None}, "v"))
    before = book.snapshot()
    with pytest.raises(PolicyDenied, match="evaluation_error"):
        Connector(book, client).d365_sales.recalculate("quote", 1, user="alice")
    assert book.snapshot() == before


def test_missing_fact_in_the_store_fails_closed(book, policy_set):
    with book.transaction() as s:
        s.delete(s.get(SystemSetting, ("d365_sales", "is_sop_integration_enabled")))
    before = book.snapshot()
    with pytest.raises(PolicyDenied) as info:
        Connector(book, InProcessClient(policy_set)).d365_sales.recalculate("quote", 1, user="alice")
    assert info.value.decision.error["code"] == "missing_fact"
    assert info.value.decision.error["field"] == "context.organization.is_sop_integration_enabled"
    assert book.snapshot() == before


def test_engine_exception_is_decision_unavailable(book):
    class Exploding:
        def decide(self, action, input, **kw):
            raise MemoryError("engine blew up")

    before = book.snapshot()
    with pytest.raises(DecisionUnavailable, match="engine blew up"):
        Connector(book, InProcessClient(Exploding())).qad_erp.create_sales_order("10C1000", user="alice")
    assert book.snapshot() == before


_KILLED_WORKER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    import engine, connector
    from connector.obligations import HANDLERS
    url, rules, marker = sys.argv[1:4]
    book = connector.OrderBook(url, create=False)

    def stall(ctx, params):
        HANDLERS["recalculate_net_amount"](ctx, params)
        ctx.session.flush()   # mutation + propagation + recalculation sent to the database, uncommitted
        open(marker, "w").write("flushed")
        time.sleep(120)

    conn = connector.Connector(book, connector.InProcessClient(engine.load_policy_set(rules)),
                               handlers={{"recalculate_net_amount": stall}})
    conn.dynamics_ax.update_line_quantity("SO-AX-1", 1, 99, user="alice")
    print("committed")   # never reached
""")


def test_process_killed_mid_transaction_leaves_nothing(book, db_url, policy_set, tmp_path, rules_dir):
    script = tmp_path / "worker.py"
    script.write_text(_KILLED_WORKER.format(root=str(ROOT)))
    marker = tmp_path / "flushed"
    before = book.snapshot()
    book.dispose()   # no pooled SQLite connection of ours holds the file while the worker writes
    proc = subprocess.Popen([sys.executable, str(script), db_url, str(rules_dir), str(marker)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "worker never reached the obligation"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert book.snapshot() == before
    # and the book takes the same mutation afterwards (no lock left behind)
    Connector(book, InProcessClient(policy_set)).dynamics_ax.update_line_quantity("SO-AX-1", 1, 99, user="alice")
    assert _qty(book, "SO-AX-1") == 99
    with book.session() as s:
        po = s.scalar(sa.select(PurchaseOrder).where(PurchaseOrder.number == "PO-IC-1"))
        assert po.lines[0].quantity == 99


def test_concurrent_mutations_cannot_both_act_on_the_same_facts(book, policy_set):
    """Two sends of the same opportunity at once, both decided on the same facts: the second finds
    them changed under its write lock (FOR UPDATE on PostgreSQL, BEGIN IMMEDIATE on SQLite) and is
    decided again on the facts the first left, so one ERP order."""
    import threading

    from connector.orders import Opportunity

    inner = InProcessClient(policy_set)
    barrier = threading.Barrier(2, timeout=1.0)

    class SlowClient:
        def decide(self, action, input):
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()          # without row locks both would be here with stale facts
            return inner.decide(action, input)

    conn = Connector(book, SlowClient())
    with book.session() as s:
        opp_id = s.scalar(sa.select(Opportunity.id).where(Opportunity.system == "qad_crm"))
    outcomes: list = []

    def send():
        try:
            outcomes.append(conn.qad_crm.advance_stage(opp_id, "order", user="alice"))
        except Exception as exc:  # noqa: BLE001
            outcomes.append(exc)
    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    denied = [o for o in outcomes if isinstance(o, PolicyDenied)]
    applied = [o for o in outcomes if not isinstance(o, Exception)]
    assert len(applied) == 1 and len(denied) == 1, outcomes
    assert "STG-07" in denied[0].decision.rules
    with book.session() as s:
        assert len(s.scalars(sa.select(SalesOrder).where(SalesOrder.opportunity_id == opp_id)).all()) == 1


SPEC_OBLIGATIONS = {
    # domain spec sections 5-8
    "compute_price", "skip_price_calculation", "set_order_state", "set_order_read_only",
    "create_erp_sales_order", "apply_sales_quote_template_defaults", "set_opportunity_reference",
    "hand_over_order_to_erp", "suppress_erp_replication", "update_opportunity_from_erp", "set_opportunity_stage",
    "create_erp_sales_quote", "create_erp_customer", "generate_sales_order", "close_opportunity",
    "put_on_credit_hold", "default_bill_to", "default_header_from_bill_to", "default_ship_to",
    "default_tax_and_language", "create_ship_to", "propagate_to_intercompany_po", "propagate_to_intercompany_so",
    "recalculate_net_amount", "set_intercompany_po_delivery_address", "set_original_lines_delivery_type",
    "sync_original_line_delivery_addresses", "update_intercompany_delivery_dates",
}


def test_every_spec_obligation_has_a_handler_and_a_place_in_the_order():
    from connector import ORDER

    assert set(HANDLERS) == SPEC_OBLIGATIONS
    assert sorted(ORDER) == sorted(SPEC_OBLIGATIONS)
    # dependencies the handlers rely on
    for first, then in [("create_erp_customer", "create_erp_sales_order"),
                        ("create_erp_sales_order", "set_opportunity_reference"),
                        ("default_bill_to", "default_header_from_bill_to"),
                        ("set_original_lines_delivery_type", "propagate_to_intercompany_po"),
                        ("set_intercompany_po_delivery_address", "propagate_to_intercompany_so"),
                        ("propagate_to_intercompany_so", "recalculate_net_amount")]:
        assert ORDER.index(first) < ORDER.index(then)


def test_a_policy_cannot_make_a_handler_write_arbitrary_fields(book):
    client = _FixedClient(DecisionResult("d-3", True, (Obligation("update_opportunity_from_erp",
                                                                  {"fields": ["stage"]}),), ("X",), None, "v"))
    from connector import ObligationFailed
    from connector.orders import Opportunity, SalesOrderLine
    with book.transaction() as s:
        o = Opportunity(system="qad_crm", name="x", stage="order")
        s.add(o)
        s.flush()
        so = SalesOrder(system="qad_erp", number="SO-Z", opportunity_id=o.id)
        so.lines = [SalesOrderLine(line_no=1, item="A", quantity=1)]
        s.add(so)
    before = book.snapshot()
    with pytest.raises(ObligationFailed, match="cannot update"):
        Connector(book, client).qad_crm.apply_erp_update("SO-Z", user="integration",
                                                           lines={1: {"invoiced_quantity": 1}})
    assert book.snapshot() == before


# --------------------------------------------------------------------------- no lock held while deciding

def test_a_slow_decision_holds_no_sqlite_write_lock(sqlite_url, policy_set):
    """SQLite's write lock is database-wide: while a mutation waits for its decision, an unrelated
    writer (waiting at most 0.5 s for the lock) must still get through."""
    import threading

    book = OrderBook(sqlite_url)
    seed_all(book)
    asked, answer = threading.Event(), threading.Event()
    inner = InProcessClient(policy_set)

    class SlowClient:
        def decide(self, action, input):
            asked.set()
            assert answer.wait(30)
            return inner.decide(action, input)

    outcome: list = []

    def mutate():
        try:
            outcome.append(Connector(book, SlowClient()).dynamics_ax.update_line_quantity("SO-AX-1", 1, 25,
                                                                                         user="alice"))
        except Exception as exc:  # noqa: BLE001
            outcome.append(exc)
    worker = threading.Thread(target=mutate)
    worker.start()
    other = OrderBook(sqlite_url, create=False, connect_args={"timeout": 0.5})
    try:
        assert asked.wait(30)
        with other.transaction() as s:
            s.add(SystemSetting(system="autotask", key="unrelated", value=1))
    finally:
        answer.set()
        worker.join(30)
        other.dispose()
        book.dispose()
    assert len(outcome) == 1 and not isinstance(outcome[0], Exception), outcome
    assert _qty(book, "SO-AX-1") == 25


class _ChangingClient:
    """Allows everything; while deciding, another writer changes a fact of the mutation ``changes`` times."""

    def __init__(self, book, changes: int) -> None:
        self.book, self.changes, self.requests = book, changes, []

    def decide(self, action, input):
        self.requests.append(input)
        if len(self.requests) <= self.changes:
            with self.book.transaction() as s:
                if s.bind.dialect.name == "postgresql":   # fail, not hang, if the mutation held its row locks
                    s.execute(sa.text("SET LOCAL lock_timeout = '2s'"))
                order = s.scalar(sa.select(SalesOrder).where(SalesOrder.number == "SO-AX-1"))
                order.document_status = f"status-{len(self.requests)}"
        return DecisionResult(f"d-{len(self.requests)}", True, (), ("X-1",), None, "v")


def test_facts_changed_while_deciding_are_decided_again(book):
    client = _ChangingClient(book, changes=1)
    applied = Connector(book, client).dynamics_ax.update_line_quantity("SO-AX-1", 1, 25, user="alice")
    statuses = [r["resource"]["sales_order"]["document_status"] for r in client.requests]
    assert statuses == ["confirmation", "status-1"]        # the second decision saw the changed fact
    assert applied.decision.decision_id == "d-2"
    with book.session() as s:
        row = s.scalar(sa.select(AppliedMutation).where(AppliedMutation.action == "salesorder_line.update_quantity"))
        assert row.decision_id == "d-2"
    assert _qty(book, "SO-AX-1") == 25


def test_facts_that_keep_changing_write_nothing(book):
    client = _ChangingClient(book, changes=10)
    with pytest.raises(FactsChanged, match="changed while each of 3 decisions"):
        Connector(book, client).dynamics_ax.update_line_quantity("SO-AX-1", 1, 25, user="alice")
    assert len(client.requests) == 3
    assert _qty(book, "SO-AX-1") == 10
    with book.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(AppliedMutation)) == 0
