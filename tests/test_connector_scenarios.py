"""End-to-end connector scenarios per source system, on SQLite and PostgreSQL, with the shipped rules.

Every denial compares the whole book (all connector tables, all rows) before and after.
"""
from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from connector import Connector, InProcessClient, OrderBook, PolicyDenied
from connector.orders import (
    AppliedMutation,
    CrmSalesOrder,
    Customer,
    CustomerShipTo,
    ErpSalesQuote,
    IntercompanySalesOrder,
    Invoice,
    Note,
    Opportunity,
    PurchaseOrder,
    SalesOrder,
    SystemSetting,
)
from connector.reactions import Correlator
from connector.sample import seed_all


@pytest.fixture
def book(db_url):
    st = OrderBook(db_url)
    yield st
    st.dispose()


@pytest.fixture
def world(book):
    return seed_all(book)


@pytest.fixture
def conn(book, policy_set):
    return Connector(book, InProcessClient(policy_set))


def denied(book, fn, *args, **kwargs) -> PolicyDenied:
    """Call a guarded mutation that must be denied; the whole book must be unchanged."""
    before = book.snapshot()
    with pytest.raises(PolicyDenied) as info:
        fn(*args, **kwargs)
    assert book.snapshot() == before
    assert info.value.decision.allow is False
    return info.value


def get(book, model, **where):
    with book.session() as s:
        return s.scalar(sa.select(model).filter_by(**where))


def audit(book, decision_id):
    with book.session() as s:
        return s.scalar(sa.select(AppliedMutation).where(AppliedMutation.decision_id == decision_id))


# --------------------------------------------------------------------------- QAD CRM

def test_qad_crm_order_sent_handed_over_and_invoiced_back(book, world, conn):
    opp_id = world.qad_opportunity_id
    assert get(book, Customer, code="C10001") is None

    applied = conn.qad_crm.advance_stage(opp_id, "order", user="alice")
    assert set(applied.decision.rules) == {"STG-02", "STG-04"}
    opp = get(book, Opportunity, id=opp_id)
    order = get(book, SalesOrder, opportunity_id=opp_id)
    customer = get(book, Customer, code=order.customer_code)
    assert customer is not None and customer.name == "Acme Corp"                     # auto-created
    assert opp.stage == "order" and opp.order_sent_to_erp is True
    assert opp.reference == order.number                                           # Reference = ERP order no.
    assert (order.site, order.credit_terms, order.currency) == ("10-100", "30NET", "USD")  # template
    assert [(ln.item, ln.quantity) for ln in order.lines] == [("PUMP-10", 4), ("VALVE-2", 10)]
    did = applied.decision.decision_id
    assert opp.decision_id == did and order.decision_id == did and customer.decision_id == did
    row = audit(book, did)
    assert row.action == "opportunity.advance_stage" and {o["name"] for o in row.obligations} == {
        "create_erp_customer", "create_erp_sales_order", "apply_sales_quote_template_defaults",
        "set_opportunity_reference", "hand_over_order_to_erp"}

    # a later CRM edit is applied in CRM but not replicated to the ERP order (handover)
    edit = conn.qad_crm.update(opp_id, user="alice", fields={"requested_date": dt.date(2027, 1, 15)})
    assert edit.decision.rules == ("STG-08",)
    assert get(book, Opportunity, id=opp_id).requested_date == dt.date(2027, 1, 15)
    assert get(book, SalesOrder, id=order.id).requested_date == dt.date(2026, 12, 1)

    # a second send would duplicate the ERP order
    assert denied(book, conn.qad_crm.send_to_erp, opp_id, user="alice").decision.rules == ("STG-07",)
    # Order may only move to Invoiced (next_stages)
    assert denied(book, conn.qad_crm.advance_stage, opp_id, "quote", user="alice",
                  selected_lines=[1]).decision.rules == ("STG-01",)

    # ERP invoices flow back until the stage is Invoiced
    with Correlator(conn) as cor:
        n = order.number
        cor.process({"order": n, "type": "line_shipped", "line_no": 1, "quantity": 4})
        cor.process({"order": n, "type": "line_invoiced", "line_no": 1, "quantity": 4})
        cor.process({"order": n, "type": "order_invoiced"})
        opp = get(book, Opportunity, id=opp_id)
        assert (opp.stage, opp.shipped_quantity, opp.invoiced_quantity) == ("order", 4, 4)
        assert get(book, SalesOrder, id=order.id).invoice_status == "partially_invoiced"
        last = cor.process({"order": n, "type": "line_invoiced", "line_no": 2, "quantity": 10})
        assert set(last.decision.rules) == {"STG-09", "STG-10"}
        assert cor.call(lambda e: e.live_sessions) == []          # the order is done: session deleted
    opp = get(book, Opportunity, id=opp_id)
    assert (opp.stage, opp.invoiced_quantity) == ("invoiced", 14)
    assert [ln.invoiced_quantity for ln in opp.lines] == [4, 10]
    assert get(book, SalesOrder, id=order.id).invoice_status == "fully_invoiced"


def test_qad_crm_quote_stage_sends_selected_lines_only(book, world, conn):
    applied = conn.qad_crm.advance_stage(world.qad_opportunity_id, "quote", user="alice", selected_lines=[2])
    assert set(applied.decision.rules) == {"STG-04", "STG-11"}
    quote = get(book, ErpSalesQuote, opportunity_id=world.qad_opportunity_id)
    assert quote.line_items == [{"item": "VALVE-2", "quantity": 10}]
    assert get(book, Opportunity, id=world.qad_opportunity_id).reference == quote.number


def test_qad_crm_deferred_send_then_send_later(book, world, conn):
    opp_id = world.qad_opportunity_id
    deferred = conn.qad_crm.advance_stage(opp_id, "order", user="alice", send_order_to_erp=False)
    assert deferred.decision.rules == ("STG-03",) and deferred.decision.obligations == ()
    assert get(book, SalesOrder, opportunity_id=opp_id) is None
    sent = conn.qad_crm.send_to_erp(opp_id, user="alice")
    assert "STG-02" in sent.decision.rules
    assert get(book, Opportunity, id=opp_id).reference == get(book, SalesOrder, opportunity_id=opp_id).number


def test_qad_crm_no_erp_customer_and_auto_create_off_is_denied(book, world, conn):
    with book.transaction() as s:
        s.get(SystemSetting, ("qad_crm", "auto_create_erp_customer")).value = False
    e = denied(book, conn.qad_crm.advance_stage, world.qad_opportunity_id, "order", user="alice")
    assert e.decision.rules == ("STG-05",)


# --------------------------------------------------------------------------- Dynamics 365 Sales

def test_d365_pricing_submit_lock_and_integration_user(book, world, conn):
    oid = world.d365_order_id
    with book.session() as s:
        line_id = s.get(CrmSalesOrder, oid).lines[0].id
    up = conn.d365_sales.update("salesorder_line", line_id, user="alice", fields={"quantity": 3})
    assert up.decision.rules == ("PRC-07",) and [o.name for o in up.decision.obligations] == ["compute_price"]
    order = get(book, CrmSalesOrder, id=oid)
    assert order.total_cents == 3 * 50000 + 2 * 4000 and order.price_status == "computed"

    sub = conn.d365_sales.submit(oid, user="alice")
    order = get(book, CrmSalesOrder, id=oid)
    assert (order.statecode, order.statuscode, order.read_only, order.submitted_by_integration_user) == \
        ("submitted", "in_progress", True, False)
    assert order.decision_id == sub.decision.decision_id

    assert denied(book, conn.d365_sales.update, "salesorder_line", line_id, user="alice",
                  fields={"quantity": 9}).decision.rules == ("PRC-09",)
    assert denied(book, conn.d365_sales.create_invoice, oid, user="alice").decision.rules == ("PRC-13",)

    # the integration user may edit the submitted order; the back office prices it
    integ = conn.d365_sales.update("salesorder_line", line_id, user="integration", fields={"quantity": 5})
    assert [o.name for o in integ.decision.obligations] == ["skip_price_calculation"]
    order = get(book, CrmSalesOrder, id=oid)
    assert order.lines[0].quantity == 5 and order.lines[0].net_cents == 3 * 50000     # not recomputed
    assert order.lines[0].price_status == "skipped" and order.total_cents == 158000

    rec = conn.d365_sales.recalculate("salesorder", oid, user="alice")
    assert [o.name for o in rec.decision.obligations] == ["skip_price_calculation"]
    assert get(book, CrmSalesOrder, id=oid).total_cents == 158000


def test_d365_sop_off_create_invoice_and_prices_always_computed(book, world, conn):
    with book.transaction() as s:
        s.get(SystemSetting, ("d365_sales", "is_sop_integration_enabled")).value = False
    made = conn.d365_sales.create("salesorder", user="integration", fields={"name": "By integration"})
    assert [o.name for o in made.decision.obligations] == ["compute_price"]
    assert get(book, CrmSalesOrder, id=made.result).created_by_integration_user is True
    inv = conn.d365_sales.create_invoice(world.d365_order_id, user="alice")
    assert inv.decision.allow and get(book, Invoice, id=inv.result).total_cents == 2 * 50000 + 2 * 4000
    ql = conn.d365_sales.create("quote_line", user="alice", parent_id=world.d365_quote_id,
                                fields={"item": "LOCK", "quantity": 3, "unit_price_cents": 1500})
    assert ql.decision.rules == ("PRC-06",)
    with book.session() as s:
        from connector.orders import Quote
        assert s.get(Quote, world.d365_quote_id).total_cents == 100000 + 4500


# --------------------------------------------------------------------------- Autotask

def test_autotask_won_quote_wizard_generates_order_and_closes(book, world, conn):
    opp_id = world.autotask_opportunity_id
    assert denied(book, conn.autotask.create_sales_order, opp_id, user="alice").decision.rules == ("STG-31",)
    e = denied(book, conn.autotask.generate_sales_order, opp_id, user="alice", wizard="won_opportunity_wizard",
               wizard_options={"activate_proposal_project": False, "create_recurring_service_contract": False,
                               "create_post_sale_ticket": False, "convert_products_to_charges": False})
    assert set(e.decision.rules) == {"STG-24", "STG-25"}

    gen = conn.autotask.generate_sales_order(opp_id, user="alice", wizard="won_quote_wizard")
    assert set(gen.decision.rules) == {"STG-30"}
    order = get(book, CrmSalesOrder, opportunity_id=opp_id)
    assert [(ln.item, ln.quantity) for ln in order.lines] == [("FW-200", 1)]           # product items only
    opp = get(book, Opportunity, id=opp_id)
    assert opp.status == "closed" and opp.sales_order_previously_generated is True
    # recreating needs the opportunity Active again
    e = denied(book, conn.autotask.generate_sales_order, opp_id, user="alice", wizard="won_quote_wizard")
    assert set(e.decision.rules) == {"STG-28", "STG-29"}


def test_autotask_procurement_off_is_denied(book, world, conn):
    with book.transaction() as s:
        s.get(SystemSetting, ("autotask", "procurement_enabled")).value = False
    e = denied(book, conn.autotask.generate_sales_order, world.autotask_opportunity_id, user="alice",
               wizard="won_quote_wizard")
    assert e.decision.rules == ("STG-20",)


# --------------------------------------------------------------------------- QAD EA customers

def test_qad_erp_order_entry_defaults_hold_and_shipping(book, world, conn):
    plain = conn.qad_erp.create_sales_order("10C1000", user="alice", lines=[{"item": "BOLT", "quantity": 5}])
    order = get(book, SalesOrder, number=plain.result)
    assert (order.bill_to, order.ship_to, order.credit_terms, order.currency, order.language, order.action_status) \
        == ("10C1000", "10C1000", "30NET", "USD", "us", "")
    assert conn.qad_erp.ship_sales_order(order.number, user="alice").decision.allow
    assert get(book, SalesOrder, number=order.number).shipped is True

    # bill-to customer on credit hold: the order is created on hold (HD), header from the bill-to
    held = conn.qad_erp.create_sales_order("10C1000", user="alice", bill_to="10C2000", ship_to="DOCK-7",
                                           ship_to_address="7 Dock Rd")
    assert {"CUS-05", "CUS-11"} <= set(held.decision.rules)
    order = get(book, SalesOrder, number=held.result)
    assert (order.action_status, order.credit_terms, order.currency) == ("HD", "60NET", "EUR")
    with book.session() as s:
        assert [st.code for st in s.scalar(sa.select(Customer).where(Customer.code == "10C1000")).ship_tos] == [
            "DOCK-7"
        ]
    assert denied(book, conn.qad_erp.ship_sales_order, order.number, user="alice").decision.rules == ("CUS-14",)

    # blocked customers
    assert denied(book, conn.qad_erp.create_sales_order, "10C4000", user="alice").decision.rules == ("CUS-03",)
    shipblocked = conn.qad_erp.create_sales_order("10C3000", user="alice")          # NOSHIP: orders still fine
    assert denied(book, conn.qad_erp.ship_sales_order, shipblocked.result, user="alice").decision.rules == ("CUS-03",)
    # a new ship-to needs Customer Ship-To Create (27.20.2.1)
    e = denied(book, conn.qad_erp.create_sales_order, "10C1000", user="bob", ship_to="NEW-9")
    assert e.decision.rules == ("CUS-10",)


def test_qad_erp_customer_master_data_guards(book, world, conn):
    assert denied(book, conn.qad_erp.create_customer, "10C9000", user="bob", name="X").decision.rules == ("CUS-12",)
    conn.qad_erp.create_customer("10C9000", user="alice", name="Adventure Works", credit_terms="30NET")
    assert get(book, Customer, code="10C9000").is_set_up is True
    assert denied(book, conn.qad_erp.create_customer_operational_data, "10C5000", user="alice",
                  language="en").decision.rules == ("CUS-13",)
    conn.qad_erp.create_customer_operational_data("10C9000", user="alice", language="en")
    assert get(book, Customer, code="10C9000").has_operational_data is True
    assert denied(book, conn.qad_erp.select_customer_for_order, "10C5000", user="alice").decision.rules == ("CUS-02",)
    assert denied(book, conn.qad_erp.create_customer_ship_to, "10C1000", "S2", user="bob").decision.rules == ("CUS-10",)
    conn.qad_erp.create_customer_ship_to("10C1000", "S2", user="alice", address="2 Side St")
    assert get(book, CustomerShipTo, code="S2").address == "2 Side St"


# --------------------------------------------------------------------------- Dynamics AX intercompany

def _po(book, number):
    with book.session() as s:
        po = s.scalar(sa.select(PurchaseOrder).where(PurchaseOrder.number == number))
        return po, [(ln.item, ln.quantity, ln.net_cents, ln.delivery_address, ln.delivery_type) for ln in po.lines]


def test_ax_quantity_change_reaches_both_intercompany_orders_never_the_external_po(book, world, conn):
    external_before = list(book.snapshot()["erp_purchase_order_lines"]) , _po(book, "PO-EXT-1")[1]
    applied = conn.dynamics_ax.update_line_quantity("SO-AX-1", 1, 12, user="alice")
    assert applied.decision.rules == ("IC-06",)
    po, po_lines = _po(book, "PO-IC-1")
    assert po_lines[0][:3] == ("SPK-100", 12, 12 * 1600) and po.net_cents == 12 * 1600 + 2 * 24000
    with book.session() as s:
        so = s.scalar(sa.select(IntercompanySalesOrder).where(IntercompanySalesOrder.number == "SO-IC-1"))
        assert (so.lines[0].quantity, so.lines[0].net_cents, so.net_cents) == (12, 19200, 19200 + 48000)
        original = s.scalar(sa.select(SalesOrder).where(SalesOrder.number == "SO-AX-1"))
        assert original.net_cents == 12 * 2000 + 2 * 30000 + 50 * 100
    assert _po(book, "PO-EXT-1")[1] == external_before[1]

    # the external-vendor line: allowed, nothing propagated (IC-07)
    before_ext = _po(book, "PO-EXT-1")
    ext = conn.dynamics_ax.update_line_quantity("SO-AX-1", 3, 80, user="alice")
    assert ext.decision.rules == ("IC-07",) and ext.decision.obligations == ()
    after_ext = _po(book, "PO-EXT-1")
    assert after_ext[1] == before_ext[1] and after_ext[0].decision_id is None


def test_ax_delete_at_picking_list_denied_and_before_it_propagated(book, world, conn):
    with book.transaction() as s:
        s.scalar(sa.select(SalesOrder).where(SalesOrder.number == "SO-AX-1")).document_status = "picking_list"
    assert denied(book, conn.dynamics_ax.delete_sales_order, "SO-AX-1", user="alice").decision.rules == ("IC-02",)
    assert denied(book, conn.dynamics_ax.delete_sales_order_line, "SO-AX-1", 1,
                  user="alice").decision.rules == ("IC-04",)
    with book.transaction() as s:
        s.scalar(sa.select(SalesOrder).where(SalesOrder.number == "SO-AX-1")).document_status = "confirmation"
    conn.dynamics_ax.create_note("SO-AX-1", "handle with care", user="alice")
    gone = conn.dynamics_ax.delete_sales_order("SO-AX-1", user="alice")
    assert gone.decision.rules == ("IC-01",)
    assert get(book, SalesOrder, number="SO-AX-1") is None
    assert get(book, PurchaseOrder, number="PO-IC-1") is None
    assert get(book, IntercompanySalesOrder, number="SO-IC-1") is None
    with book.session() as s:
        assert s.scalars(sa.select(Note)).all() == []
    ext, lines = _po(book, "PO-EXT-1")
    assert ext is not None and ext.decision_id is None and lines == [("CABLE-X", 50, 3000, "USMF warehouse 11", "none")]


def test_ax_direct_delivery_and_notes(book, world, conn):
    on = conn.dynamics_ax.enable_direct_delivery("SO-AX-1", user="alice")
    assert on.decision.rules == ("IC-10",)
    po, lines = _po(book, "PO-IC-1")
    assert po.delivery_address == "Customer dock, 7 Pier St"
    assert {ln[4] for ln in lines} == {"direct_delivery"} and {ln[3] for ln in lines} == {"Customer dock, 7 Pier St"}
    with book.session() as s:
        original = s.scalar(sa.select(SalesOrder).where(SalesOrder.number == "SO-AX-1"))
        assert [ln.delivery_type for ln in original.lines] == ["direct_delivery", "direct_delivery", "none"]
        so = s.scalar(sa.select(IntercompanySalesOrder).where(IntercompanySalesOrder.number == "SO-IC-1"))
        assert so.delivery_address == "Customer dock, 7 Pier St"
        assert so.requested_receipt_date == dt.date(2026, 12, 10)
    off = conn.dynamics_ax.disable_direct_delivery("SO-AX-1", user="alice")
    assert off.decision.rules == ("IC-09",)
    po, lines = _po(book, "PO-IC-1")
    assert po.delivery_address == "USMF warehouse 11" and {ln[3] for ln in lines} == {"USMF warehouse 11"}
    assert {ln[4] for ln in lines} == {"none"}
    assert _po(book, "PO-EXT-1")[0].decision_id is None

    note = conn.dynamics_ax.create_note("SO-AX-1", "call before delivery", user="alice", line_no=1)
    conn.dynamics_ax.update_note(note.result, "call 1h before delivery", user="alice")
    with book.session() as s:
        copies = s.scalars(sa.select(Note).where(Note.source_note_id == note.result)).all()
        assert sorted((c.document_number, c.text, c.attached_to) for c in copies) == [
            ("PO-IC-1", "call 1h before delivery", "line"), ("SO-IC-1", "call 1h before delivery", "line")]
    conn.dynamics_ax.delete_note(note.result, user="alice")
    with book.session() as s:
        assert s.scalars(sa.select(Note)).all() == []

    # picking started on the intercompany sales order: the Direct delivery field is frozen
    with book.transaction() as s:
        s.scalar(sa.select(IntercompanySalesOrder)).lines[0].line_status = "output_order"
    assert denied(book, conn.dynamics_ax.enable_direct_delivery, "SO-AX-1",
                  user="alice").decision.rules == ("IC-08",)


def test_ax_derived_intercompany_lines_change_only_from_source(book, world, conn):
    po, _ = _po(book, "PO-IC-1")
    with book.session() as s:
        derived_id = s.scalar(sa.select(PurchaseOrder).where(PurchaseOrder.number == "PO-IC-1")).lines[0].id
        source_id = s.scalar(sa.select(PurchaseOrder).where(PurchaseOrder.number == "PO-EXT-1")).lines[0].id
    assert denied(book, conn.dynamics_ax.update_intercompany_line_quantity, "purchase", derived_id, 3,
                  user="alice").decision.rules == ("IC-13",)
    assert denied(book, conn.dynamics_ax.delete_intercompany_line, "purchase", derived_id,
                  user="alice").decision.rules == ("IC-13",)
    ok = conn.dynamics_ax.update_intercompany_line_quantity("purchase", source_id, 40, user="alice")
    assert ok.decision.allow and _po(book, "PO-EXT-1")[1][0][1] == 40


def test_ax_line_added_to_both_intercompany_orders(book, world, conn):
    added = conn.dynamics_ax.create_sales_order_line("SO-AX-1", user="alice", item="SUB-1", quantity=3,
                                                     unit_price_cents=9000)
    assert added.decision.rules == ("IC-05",)
    po, lines = _po(book, "PO-IC-1")
    assert lines[-1][:2] == ("SUB-1", 3)
    with book.session() as s:
        so = s.scalar(sa.select(IntercompanySalesOrder))
        assert (so.lines[-1].item, so.lines[-1].quantity) == ("SUB-1", 3)
        original = s.scalar(sa.select(SalesOrder).where(SalesOrder.number == "SO-AX-1"))
        assert original.lines[-1].linked_po_line_id == po.lines[-1].id
    assert len(_po(book, "PO-EXT-1")[1]) == 1


# --------------------------------------------------------------------------- coverage of the catalogue

def test_every_catalogue_action_has_an_operation(policy_set):
    from connector.api import ACTIONS

    assert {s: set(a) for s, a in ACTIONS.items()} == {s: set(a) for s, a in policy_set.catalogue.items()}
    book = OrderBook("sqlite://")
    conn = Connector(book, InProcessClient(policy_set))
    for actions in ACTIONS.values():
        for op in actions.values():
            group, name = op.split("(")[0].split(".")
            assert callable(getattr(getattr(conn, group), name)), op
    book.dispose()


def test_obligation_handlers_cover_every_obligation_the_rules_can_emit(rules_dir):
    import yaml

    from connector import HANDLERS

    declared = set()
    for path in sorted(rules_dir.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict):
                declared |= set((doc.get("obligations") or {}).keys())
    assert declared and declared <= set(HANDLERS), declared - set(HANDLERS)


@pytest.mark.parametrize("user", ["alice", "integration"])
@pytest.mark.parametrize("header", ["opportunity", "quote", "salesorder", "invoice"])
def test_d365_every_entity_action_honours_its_price_obligation(sqlite_url, policy_set, header, user):
    book = OrderBook(sqlite_url)
    seed_all(book)
    conn = Connector(book, InProcessClient(policy_set))
    d = conn.d365_sales
    line = f"{header}_line"
    models = {"opportunity": Opportunity, "quote": __import__("connector.orders", fromlist=["Quote"]).Quote,
              "salesorder": CrmSalesOrder, "invoice": Invoice}

    def price_status(entity, record_id):
        from connector.systems.d365_sales import ENTITIES
        with book.session() as s:
            return s.get(ENTITIES[entity][0], record_id).price_status

    def check(applied, entity, record_id, *, expect_price=True):
        names = [o.name for o in applied.decision.obligations]
        assert applied.decision.allow
        if "skip_price_calculation" in names:
            assert "compute_price" not in names
            if record_id is not None:
                assert price_status(entity, record_id) == "skipped"
        elif "compute_price" in names:
            if record_id is not None:
                assert price_status(entity, record_id) == "computed"
        else:
            assert not expect_price, (entity, names)
        return names

    made = d.create(header, user=user, fields={"name": "n"})
    check(made, header, made.result)
    hid = made.result
    ml = d.create(line, user=user, parent_id=hid, fields={"item": "A", "quantity": 2, "unit_price_cents": 300})
    check(ml, line, ml.result)
    check(d.update(line, ml.result, user=user, fields={"quantity": 3}), line, ml.result)
    check(d.recalculate(line, ml.result, user=user), line, ml.result, expect_price=False)   # n/a cells
    check(d.update(header, hid, user=user, fields={"name": "m"}), header, hid)
    names = check(d.recalculate(header, hid, user=user), header, hid)
    if names == ["compute_price"]:
        with book.session() as s:
            assert s.get(models[header], hid).total_cents == 900
    check(d.delete(line, ml.result, user=user), header, hid)
    check(d.delete(header, hid, user=user), header, None, expect_price=False)
    with book.session() as s:
        assert s.get(models[header], hid) is None
    book.dispose()


def test_ax_order_outside_an_intercompany_chain_is_changed_alone(book, world, conn):
    from connector.orders import SalesOrderLine
    with book.transaction() as s:
        plain = SalesOrder(system="dynamics_ax", number="SO-AX-9", is_intercompany_original=False,
                           document_status="invoice")
        plain.lines = [SalesOrderLine(line_no=1, item="SPK-100", quantity=1, unit_price_cents=2000, net_cents=2000)]
        s.add(plain)
    chain_before = {k: v for k, v in book.snapshot().items() if k.startswith(("erp_purchase", "erp_intercompany"))}
    applied = conn.dynamics_ax.update_line_quantity("SO-AX-9", 1, 4, user="alice")
    assert applied.decision.rules == ("IC-00",) and applied.decision.obligations == ()
    gone = conn.dynamics_ax.delete_sales_order("SO-AX-9", user="alice")      # no status guard outside a chain
    assert gone.decision.rules == ("IC-00",)
    assert get(book, SalesOrder, number="SO-AX-9") is None
    assert {k: v for k, v in book.snapshot().items() if k.startswith(("erp_purchase", "erp_intercompany"))} \
        == chain_before
