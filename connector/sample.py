"""Sample data for the demo and the tests: one small world per source system.

These are plain inserts (the state the world is in before the connector acts), not guarded
mutations.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from .orders import (
    Account,
    BlockedCode,
    CrmSalesOrder,
    CrmSalesOrderLine,
    Customer,
    IntercompanySalesOrder,
    IntercompanySalesOrderLine,
    Opportunity,
    OpportunityLine,
    OrderBook,
    PurchaseOrder,
    PurchaseOrderLine,
    Quote,
    QuoteLine,
    SalesOrder,
    SalesOrderLine,
    SalesQuoteTemplate,
    SystemSetting,
    User,
)


@dataclass
class World:
    d365_order_id: int
    d365_quote_id: int
    qad_opportunity_id: int
    autotask_opportunity_id: int
    autotask_quote_id: int
    ax_order: str
    ax_external_po: str


def seed_users(s: Session) -> None:
    s.add_all([
        User(name="alice", is_integration_user=False, permitted_functions=["27.20.2.1"],
             has_financial_function_access=True),
        User(name="bob", is_integration_user=False, permitted_functions=[], has_financial_function_access=False),
        User(name="integration", is_integration_user=True, permitted_functions=[]),
    ])


def seed_d365(s: Session, *, sop: bool = True) -> tuple[int, int]:
    s.add(SystemSetting(system="d365_sales", key="is_sop_integration_enabled", value=sop))
    order = CrmSalesOrder(system="d365_sales", name="Contoso bikes", statecode="active")
    order.lines = [CrmSalesOrderLine(line_no=1, item="BIKE-1", quantity=2, unit_price_cents=50000, net_cents=100000),
                   CrmSalesOrderLine(line_no=2, item="HELMET", quantity=2, unit_price_cents=4000, net_cents=8000)]
    order.total_cents = 108000
    quote = Quote(name="Contoso quote", total_cents=100000)
    quote.lines = [QuoteLine(line_no=1, item="BIKE-1", quantity=2, unit_price_cents=50000, net_cents=100000)]
    s.add_all([order, quote])
    s.flush()
    return order.id, quote.id


def seed_qad_crm(s: Session) -> int:
    s.add_all([
        SystemSetting(system="qad_crm", key="auto_create_erp_customer", value=True),
        SystemSetting(system="qad_crm", key="next_stages",
                      value={"enquiry": ["quote", "order", "lost"], "quote": ["order", "lost"],
                             "order": ["invoiced"], "lost": []}),
        SalesQuoteTemplate(domain="default", site="10-100", credit_terms="30NET", currency="USD"),
    ])
    account = Account(name="Acme Corp", address="1 Main St, Springfield")
    opp = Opportunity(system="qad_crm", name="Acme pumps", account=account, stage="enquiry", domain="default",
                      requested_date=dt.date(2026, 12, 1))
    opp.lines = [OpportunityLine(line_no=1, item="PUMP-10", quantity=4, unit_price_cents=12500),
                 OpportunityLine(line_no=2, item="VALVE-2", quantity=10, unit_price_cents=900)]
    s.add(opp)
    s.flush()
    return opp.id


def seed_autotask(s: Session, *, procurement: bool = True) -> tuple[int, int]:
    s.add(SystemSetting(system="autotask", key="procurement_enabled", value=procurement))
    opp = Opportunity(system="autotask", name="Managed firewall", status="active")
    quote = Quote(name="Firewall quote", is_primary=True)
    quote.lines = [QuoteLine(line_no=1, item="FW-200", item_type="product", quantity=1, unit_price_cents=150000,
                             converted_to_billing_item=True),
                   QuoteLine(line_no=2, item="Install", item_type="service", quantity=8, unit_price_cents=12000)]
    opp.quotes = [quote]
    s.add(opp)
    s.flush()
    return opp.id, quote.id


def seed_qad_erp(s: Session) -> None:
    s.add_all([
        BlockedCode(code="NOSHIP", transactions=["shipment"]),
        BlockedCode(code="NOORDER", transactions=["sales_order", "shipment"]),
    ])
    s.flush()
    s.add_all([
        Customer(code="10C1000", name="Northwind", sold_to_address="5 Harbor Rd", is_active=True,
                 has_operational_data=True, is_set_up=True, credit_terms="30NET", currency="USD",
                 language="us", taxable=True),
        Customer(code="10C2000", name="Northwind HQ (bill-to)", sold_to_address="1 Tower Sq", is_active=True,
                 has_operational_data=True, is_set_up=True, credit_terms="60NET", currency="EUR", language="de",
                 taxable=False, credit_hold=True),
        Customer(code="10C3000", name="Fabrikam", sold_to_address="9 Mill Ln", is_active=True,
                 has_operational_data=True, is_set_up=True, credit_terms="COD", currency="USD", language="fr",
                 taxable=True, blocked_code="NOSHIP"),
        Customer(code="10C4000", name="Tailspin", sold_to_address="2 Airfield", is_active=True,
                 has_operational_data=True, is_set_up=True, credit_terms="30NET", currency="USD",
                 blocked_code="NOORDER"),
        Customer(code="10C5000", name="Litware (not set up)", sold_to_address="3 Byte Way", is_active=True,
                 has_operational_data=False, is_set_up=False),
    ])


def seed_dynamics_ax(s: Session, *, document_status: str = "confirmation") -> tuple[str, str]:
    """An original intercompany sales order: two lines on the intercompany PO/SO, one line bought
    from an external vendor."""
    receipt, ship = dt.date(2026, 12, 10), dt.date(2026, 12, 8)
    order = SalesOrder(system="dynamics_ax", number="SO-AX-1", customer_code="US-004", is_intercompany_original=True,
                       document_status=document_status, delivery_address="Customer dock, 7 Pier St",
                       requested_receipt_date=receipt, requested_ship_date=ship)
    order.lines = [SalesOrderLine.priced(line_no=i, item=item, quantity=q, unit_price_cents=p,
                                         requested_receipt_date=receipt, requested_ship_date=ship)
                   for i, (item, q, p) in enumerate([("SPK-100", 10, 2000), ("AMP-20", 2, 30000),
                                                     ("CABLE-X", 50, 100)], start=1)]
    order.sum_net()
    ic_po = PurchaseOrder(number="PO-IC-1", vendor_type="intercompany", vendor="USMF->USSI",
                          original_sales_order_number="SO-AX-1", standard_delivery_address="USMF warehouse 11",
                          delivery_address="USMF warehouse 11")
    ic_so = IntercompanySalesOrder(number="SO-IC-1", original_sales_order_number="SO-AX-1",
                                   purchase_order_number="PO-IC-1", delivery_address="USMF warehouse 11")
    ext_po = PurchaseOrder(number="PO-EXT-1", vendor_type="external_vendor", vendor="Cables Inc",
                           original_sales_order_number="SO-AX-1", standard_delivery_address="USMF warehouse 11",
                           delivery_address="USMF warehouse 11")
    s.add_all([order, ic_po, ic_so, ext_po])
    s.flush()
    for original in order.lines[:2]:
        po_line = PurchaseOrderLine.priced(line_no=original.line_no, original_line_id=original.id, origin="derived",
                                           item=original.item, quantity=original.quantity,
                                           unit_price_cents=original.unit_price_cents * 8 // 10,
                                           delivery_address="USMF warehouse 11")
        ic_po.lines.append(po_line)
        ic_so.lines.append(IntercompanySalesOrderLine(
            line_no=original.line_no, original_line_id=original.id, origin="derived", line_status="confirmation",
            item=original.item, quantity=original.quantity, unit_price_cents=po_line.unit_price_cents,
            net_cents=po_line.net_cents, delivery_address="USMF warehouse 11"))
    ext_line = PurchaseOrderLine(line_no=1, original_line_id=order.lines[2].id, origin="source", item="CABLE-X",
                                 quantity=50, unit_price_cents=60, net_cents=3000, delivery_address="USMF warehouse 11")
    ext_po.lines.append(ext_line)
    for doc in (ic_po, ic_so, ext_po):
        doc.sum_net()
    s.flush()
    for original, po_line in zip(order.lines[:2], ic_po.lines, strict=True):
        original.linked_po_line_id = po_line.id
    order.lines[2].linked_po_line_id = ext_line.id
    return str(order.number), ext_po.number


def seed_all(book: OrderBook) -> World:
    with book.transaction() as s:
        seed_users(s)
        d365_order, d365_quote = seed_d365(s)
        qad_opp = seed_qad_crm(s)
        at_opp, at_quote = seed_autotask(s)
        seed_qad_erp(s)
        ax_order, ext_po = seed_dynamics_ax(s)
    return World(d365_order, d365_quote, qad_opp, at_opp, at_quote, ax_order, ext_po)
