"""One handler per obligation name of the domain spec; each one really does it, in the caller's
transaction.

A handler is ``handler(ctx, params)``. It finds its records in ``ctx.refs`` (put there by the
mutation's fact builder), changes them, and says what it did with ``ctx.effect``. ``ORDER`` is
the order in which obligations of one decision are applied (dependencies first).
"""
from __future__ import annotations

from typing import Any, Iterable

import sqlalchemy as sa

from .gate import Ctx, Handler
from .orders import (Account, CrmPricedLine, CrmSalesOrder, CrmSalesOrderLine, Customer, CustomerShipTo,
                     ErpSalesQuote, IntercompanySalesOrder, IntercompanySalesOrderLine, Note, Opportunity,
                     PurchaseOrder, PurchaseOrderLine, SalesOrder, SalesOrderLine, SalesQuoteTemplate, net_sum)


class ObligationFailed(RuntimeError):
    """An obligation could not be carried out (the whole mutation rolls back)."""


ORDER: tuple[str, ...] = (
    "create_erp_customer", "create_ship_to",
    "create_erp_sales_order", "create_erp_sales_quote", "generate_sales_order",
    "apply_sales_quote_template_defaults",
    "default_bill_to", "default_header_from_bill_to", "default_ship_to", "default_tax_and_language",
    "put_on_credit_hold",
    "set_opportunity_reference", "hand_over_order_to_erp", "suppress_erp_replication",
    "close_opportunity", "update_opportunity_from_erp", "set_opportunity_stage",
    "set_order_state", "set_order_read_only",
    "set_original_lines_delivery_type", "set_intercompany_po_delivery_address",
    "propagate_to_intercompany_po", "propagate_to_intercompany_so",
    "sync_original_line_delivery_addresses", "update_intercompany_delivery_dates",
    "recalculate_net_amount",
    "skip_price_calculation", "compute_price",
)

HANDLERS: dict[str, Handler] = {}


def handles(name: str):
    def register(fn: Handler) -> Handler:
        HANDLERS[name] = fn
        return fn
    return register


def _need(ctx: Ctx, key: str) -> Any:
    value = ctx.refs.get(key)
    if value is None:
        raise ObligationFailed(f"{ctx.action}: obligation needs `{key}`, which this mutation does not have")
    return value


# --------------------------------------------------------------------------- pricing (d365_sales)

def _price_line(line: CrmPricedLine) -> None:
    line.price()
    line.price_status = "computed"


@handles("compute_price")
def compute_price(ctx: Ctx, params: dict) -> None:
    line = ctx.refs.get("priced_line")
    header = ctx.refs.get("priced_header")
    if line is None and header is None:
        raise ObligationFailed(f"{ctx.action}: nothing to price")
    if line is not None:
        _price_line(line)
    if header is not None:
        if line is None and not ctx.refs.get("line_action"):   # a header action prices every line
            for each in header.lines:
                _price_line(each)
        header.price_total()
        ctx.effect(f"price computed: total {header.total_cents} cents")
    else:
        ctx.effect(f"price computed: line {line.net_cents} cents")


@handles("skip_price_calculation")
def skip_price_calculation(ctx: Ctx, params: dict) -> None:
    for key in ("priced_line", "priced_header"):
        record = ctx.refs.get(key)
        if record is not None:
            record.price_status = "skipped"
    ctx.effect("price calculation skipped (back office prices the order)")


@handles("set_order_state")
def set_order_state(ctx: Ctx, params: dict) -> None:
    order: CrmSalesOrder = _need(ctx, "crm_order")
    if params.get("statecode") not in ("active", "submitted", "canceled", "fulfilled", "invoiced"):
        raise ObligationFailed(f"set_order_state: unknown statecode {params.get('statecode')!r}")
    order.statecode = params["statecode"]
    if "statuscode" in params:
        order.statuscode = params["statuscode"]
    if "submitted_by_integration_user" in params:
        order.submitted_by_integration_user = bool(params["submitted_by_integration_user"])
    ctx.effect(f"order state {order.statecode}/{order.statuscode}")


@handles("set_order_read_only")
def set_order_read_only(ctx: Ctx, params: dict) -> None:
    order: CrmSalesOrder = _need(ctx, "crm_order")
    order.read_only = True
    ctx.effect("order made read-only")


# --------------------------------------------------------------------------- QAD CRM → QAD EA

def _number(ctx: Ctx, record: Any, prefix: str) -> str:
    ctx.session.flush()
    record.number = f"{prefix}{10000 + record.id}"
    return record.number


@handles("create_erp_customer")
def create_erp_customer(ctx: Ctx, params: dict) -> None:
    account: Account = _need(ctx, "account")
    code = account.erp_customer_code or f"C{10000 + account.id}"
    if ctx.session.scalar(sa.select(Customer).where(Customer.code == code)) is None:
        ctx.session.add(Customer(code=code, name=account.name, sold_to_address=account.address,
                                 is_active=True, has_operational_data=True, is_set_up=True))
    account.erp_customer_code = code
    ctx.effect(f"ERP customer {code} created from the CRM profile")


def _selected_lines(opp: Opportunity) -> list:
    chosen = [line for line in opp.lines if line.selected]
    return chosen or list(opp.lines)


@handles("create_erp_sales_order")
def create_erp_sales_order(ctx: Ctx, params: dict) -> None:
    opp: Opportunity = _need(ctx, "opportunity")
    account: Account = _need(ctx, "account")
    if not account.erp_customer_code:
        raise ObligationFailed("create_erp_sales_order: the CRM profile has no ERP customer")
    order = SalesOrder(system="qad_erp", customer_code=account.erp_customer_code, opportunity_id=opp.id,
                       requested_date=opp.requested_date)
    for i, line in enumerate(_selected_lines(opp), start=1):
        order.lines.append(SalesOrderLine.priced(line_no=i, item=line.item, quantity=line.quantity,
                                                 unit_price_cents=line.unit_price_cents, crm_line_id=line.id))
    order.sum_net()
    ctx.session.add(order)
    _number(ctx, order, "SO")
    ctx.refs["erp_order"] = order
    ctx.effect(f"ERP sales order {order.number} created with {len(order.lines)} line(s)")


@handles("create_erp_sales_quote")
def create_erp_sales_quote(ctx: Ctx, params: dict) -> None:
    opp: Opportunity = _need(ctx, "opportunity")
    account: Account = _need(ctx, "account")
    lines = [line for line in opp.lines if line.selected]
    quote = ErpSalesQuote(customer_code=account.erp_customer_code or "", opportunity_id=opp.id,
                          line_items=[{"item": l.item, "quantity": l.quantity} for l in lines])
    ctx.session.add(quote)
    _number(ctx, quote, "SQ")
    ctx.refs["erp_quote"] = quote
    ctx.effect(f"ERP sales quote {quote.number} created with {len(lines)} line(s)")


@handles("apply_sales_quote_template_defaults")
def apply_sales_quote_template_defaults(ctx: Ctx, params: dict) -> None:
    order: SalesOrder = _need(ctx, "erp_order")
    opp: Opportunity = _need(ctx, "opportunity")
    template = ctx.session.get(SalesQuoteTemplate, opp.domain or "default") \
        or ctx.session.get(SalesQuoteTemplate, "default")
    if template is None:
        raise ObligationFailed(f"no sales quote template for domain {opp.domain!r}")
    order.site = opp.site or template.site
    order.credit_terms = opp.credit_terms or template.credit_terms
    order.currency = opp.currency or template.currency
    ctx.effect(f"sales quote template of domain {template.domain}: site {order.site}, terms {order.credit_terms}, "
               f"currency {order.currency}")


@handles("set_opportunity_reference")
def set_opportunity_reference(ctx: Ctx, params: dict) -> None:
    opp: Opportunity = _need(ctx, "opportunity")
    source = params.get("source")
    if source == "erp_sales_order_number":
        opp.reference = _need(ctx, "erp_order").number
    elif source == "erp_sales_quote_number":
        opp.reference = _need(ctx, "erp_quote").number
    else:
        raise ObligationFailed(f"set_opportunity_reference: unknown source {source!r}")
    ctx.effect(f"opportunity reference = {opp.reference}")


@handles("hand_over_order_to_erp")
def hand_over_order_to_erp(ctx: Ctx, params: dict) -> None:
    opp: Opportunity = _need(ctx, "opportunity")
    opp.order_sent_to_erp = True
    ctx.effect("order handed over to ERP: later CRM edits are not replicated")


@handles("suppress_erp_replication")
def suppress_erp_replication(ctx: Ctx, params: dict) -> None:
    ctx.flags.add("suppress_erp_replication")
    ctx.effect("CRM change not replicated to the ERP order (handed over)")


@handles("update_opportunity_from_erp")
def update_opportunity_from_erp(ctx: Ctx, params: dict) -> None:
    opp: Opportunity = _need(ctx, "opportunity")
    order: SalesOrder = _need(ctx, "erp_order")
    fields = params.get("fields") or ["shipped_quantity", "invoiced_quantity"]
    unknown = set(fields) - {"shipped_quantity", "invoiced_quantity"}
    if unknown:   # a policy names fields; it must not be able to overwrite arbitrary attributes
        raise ObligationFailed(f"update_opportunity_from_erp: cannot update {sorted(unknown)} from ERP")
    by_id = {line.id: line for line in opp.lines}
    for erp_line in order.lines:
        crm_line = by_id.get(erp_line.crm_line_id)
        if crm_line is not None:
            for name in fields:
                setattr(crm_line, name, getattr(erp_line, name))
    for name in fields:
        setattr(opp, name, sum(getattr(line, name) for line in order.lines))
    ctx.effect("opportunity updated from ERP: " + ", ".join(f"{n} {getattr(opp, n)}" for n in fields))


@handles("set_opportunity_stage")
def set_opportunity_stage(ctx: Ctx, params: dict) -> None:
    opp: Opportunity = _need(ctx, "opportunity")
    if not isinstance(params.get("stage"), str) or not params["stage"]:
        raise ObligationFailed("set_opportunity_stage: no stage given")
    opp.stage = params["stage"]
    ctx.effect(f"opportunity stage = {opp.stage}")


# --------------------------------------------------------------------------- Autotask

@handles("generate_sales_order")
def generate_sales_order(ctx: Ctx, params: dict) -> None:
    opp: Opportunity = _need(ctx, "opportunity")
    quote = ctx.refs.get("quote")
    order = CrmSalesOrder(system="autotask", name=f"Sales order for {opp.name}", opportunity_id=opp.id,
                          quote_id=quote.id if quote is not None else None, statecode="active")
    if quote is not None:
        for i, line in enumerate([l for l in quote.lines if l.item_type == "product"], start=1):
            order.lines.append(CrmSalesOrderLine.priced(line_no=i, item=line.item, quantity=line.quantity,
                                                        unit_price_cents=line.unit_price_cents))
    order.total_cents = net_sum(order.lines)
    ctx.session.add(order)
    opp.sales_order_previously_generated = True
    ctx.session.flush()
    ctx.refs["crm_order"] = order
    ctx.effect(f"sales order {order.id} generated with {len(order.lines)} product line(s)")


@handles("close_opportunity")
def close_opportunity(ctx: Ctx, params: dict) -> None:
    opp: Opportunity = _need(ctx, "opportunity")
    opp.status = "closed"
    ctx.effect("opportunity closed (won)")


# --------------------------------------------------------------------------- QAD EA customers

@handles("put_on_credit_hold")
def put_on_credit_hold(ctx: Ctx, params: dict) -> None:
    order: SalesOrder = _need(ctx, "order")
    order.action_status = params.get("action_status") or "HD"
    ctx.effect(f"order on credit hold: action status {order.action_status}")


@handles("default_bill_to")
def default_bill_to(ctx: Ctx, params: dict) -> None:
    order: SalesOrder = _need(ctx, "order")
    order.bill_to = params["bill_to"]
    ctx.effect(f"bill-to defaulted to {order.bill_to}")


@handles("default_header_from_bill_to")
def default_header_from_bill_to(ctx: Ctx, params: dict) -> None:
    order: SalesOrder = _need(ctx, "order")
    code = order.bill_to or order.customer_code
    bill_to = ctx.session.scalar(sa.select(Customer).where(Customer.code == code))
    if bill_to is None:
        raise ObligationFailed(f"default_header_from_bill_to: bill-to customer {code!r} not found")
    fields = params.get("fields") or ["credit_terms", "currency"]
    unknown = set(fields) - {"credit_terms", "currency", "language", "taxable"}
    if unknown:
        raise ObligationFailed(f"default_header_from_bill_to: no header field(s) {sorted(unknown)}")
    for name in fields:
        setattr(order, name, getattr(bill_to, name))
    ctx.effect(f"header from bill-to {code}: terms {order.credit_terms}, currency {order.currency}")


@handles("default_ship_to")
def default_ship_to(ctx: Ctx, params: dict) -> None:
    order: SalesOrder = _need(ctx, "order")
    customer: Customer = _need(ctx, "customer")
    order.ship_to = params["ship_to"]
    order.ship_to_address = customer.ship_to_address or customer.sold_to_address
    ctx.effect(f"ship-to defaulted to {order.ship_to}")


@handles("default_tax_and_language")
def default_tax_and_language(ctx: Ctx, params: dict) -> None:
    order: SalesOrder = _need(ctx, "order")
    source = params.get("source", "sold_to")
    code = order.ship_to if source == "ship_to" else order.customer_code
    record = ctx.session.scalar(sa.select(Customer).where(Customer.code == code))
    if record is None:
        raise ObligationFailed(f"default_tax_and_language: no customer record {code!r}")
    order.language, order.taxable, order.tax_source = record.language, record.taxable, source
    ctx.effect(f"language {order.language} and tax defaults from the {source.replace('_', '-')} {code}")


@handles("create_ship_to")
def create_ship_to(ctx: Ctx, params: dict) -> None:
    customer: Customer = _need(ctx, "customer")
    code = params["ship_to"]
    address = ctx.refs.get("ship_to_address") or ""
    if not any(s.code == code for s in customer.ship_tos):
        customer.ship_tos.append(CustomerShipTo(code=code, address=address))
    order = ctx.refs.get("order")
    if order is not None and address:
        order.ship_to_address = address
    ctx.effect(f"ship-to {code} created for customer {customer.code}")


# --------------------------------------------------------------------------- Dynamics AX intercompany

def _ic_purchase_orders(ctx: Ctx, order: SalesOrder) -> list[PurchaseOrder]:
    # Only the intercompany POs of the chain; external-vendor POs are never touched (IC-07).
    return list(ctx.session.scalars(sa.select(PurchaseOrder).where(
        PurchaseOrder.original_sales_order_number == order.number,
        PurchaseOrder.vendor_type == "intercompany").order_by(PurchaseOrder.id)))


def _ic_sales_orders(ctx: Ctx, order: SalesOrder) -> list[IntercompanySalesOrder]:
    return list(ctx.session.scalars(sa.select(IntercompanySalesOrder).where(
        IntercompanySalesOrder.original_sales_order_number == order.number).order_by(IntercompanySalesOrder.id)))


def _lines_of(docs: Iterable[Any], original_line_id: int) -> list:
    return [line for doc in docs for line in doc.lines if line.original_line_id == original_line_id]


def _propagate(ctx: Ctx, change: str, docs: list, line_cls: type, doc_type: str, label: str) -> None:
    order: SalesOrder = _need(ctx, "order")
    line: SalesOrderLine | None = ctx.refs.get("line")
    note: Note | None = ctx.refs.get("note")
    if not docs:
        ctx.effect(f"no {label} to propagate {change} to")
        return
    names = ", ".join(d.number for d in docs)
    if change == "delete_order":
        for doc in docs:
            ctx.session.delete(doc)
        for copy in ctx.session.scalars(sa.select(Note).where(Note.document_type == doc_type,
                                                              Note.document_number.in_([d.number for d in docs]))):
            ctx.session.delete(copy)
    elif change == "delete_line":
        for ic_line in _lines_of(docs, _need(ctx, "line").id):
            ic_line.order.lines.remove(ic_line)
    elif change == "create_line":
        assert line is not None
        for doc in docs:
            new = line_cls.priced(line_no=max([l.line_no for l in doc.lines], default=0) + 1,
                                  original_line_id=line.id, origin="derived", item=line.item, quantity=line.quantity,
                                  unit_price_cents=line.unit_price_cents, delivery_type=line.delivery_type,
                                  delivery_address=line.delivery_address)
            doc.lines.append(new)
            if line_cls is PurchaseOrderLine:
                ctx.session.flush()
                line.linked_po_line_id = new.id
    elif change == "update_quantity":
        for ic_line in _lines_of(docs, _need(ctx, "line").id):
            ic_line.quantity = line.quantity
    elif change == "delivery_type":
        for original in order.lines:
            for ic_line in _lines_of(docs, original.id):
                ic_line.delivery_type = original.delivery_type
    elif change == "delivery_address":
        # The IC sales order follows its purchase order (header and lines).
        pos = {po.number: po for po in _ic_purchase_orders(ctx, order)}
        for doc in docs:
            po = pos.get(getattr(doc, "purchase_order_number", None))
            if po is None:
                continue
            doc.delivery_address = po.delivery_address
            po_lines = {l.original_line_id: l for l in po.lines}
            for ic_line in doc.lines:
                if ic_line.original_line_id in po_lines:
                    ic_line.delivery_address = po_lines[ic_line.original_line_id].delivery_address
    elif change in ("create_note", "update_note", "delete_note"):
        note = _need(ctx, "note")
        for doc in docs:
            copy = ctx.session.scalar(sa.select(Note).where(Note.source_note_id == note.id,
                                                            Note.document_type == doc_type,
                                                            Note.document_number == doc.number))
            if change == "create_note":
                ctx.session.add(Note(document_type=doc_type, document_number=doc.number, line_no=note.line_no,
                                     attached_to=note.attached_to, text=note.text, source_note_id=note.id))
            elif copy is not None and change == "update_note":
                copy.text = note.text
            elif copy is not None:
                ctx.session.delete(copy)
    else:
        raise ObligationFailed(f"unknown intercompany change {change!r}")
    ctx.effect(f"{change} propagated to {label} {names}")


@handles("propagate_to_intercompany_po")
def propagate_to_intercompany_po(ctx: Ctx, params: dict) -> None:
    order = _need(ctx, "order")
    _propagate(ctx, params["change"], _ic_purchase_orders(ctx, order), PurchaseOrderLine,
               "purchase_order", "intercompany PO")


@handles("propagate_to_intercompany_so")
def propagate_to_intercompany_so(ctx: Ctx, params: dict) -> None:
    order = _need(ctx, "order")
    _propagate(ctx, params["change"], _ic_sales_orders(ctx, order), IntercompanySalesOrderLine,
               "intercompany_sales_order", "intercompany SO")


@handles("recalculate_net_amount")
def recalculate_net_amount(ctx: Ctx, params: dict) -> None:
    order: SalesOrder = _need(ctx, "order")
    docs: list[Any] = [order]
    if params.get("scope", "all_orders") == "all_orders":
        docs += _ic_purchase_orders(ctx, order) + _ic_sales_orders(ctx, order)
    for doc in docs:
        for line in doc.lines:
            line.price()
        doc.sum_net()
    ctx.effect("net amounts recalculated: " + ", ".join(f"{d.number} {d.net_cents}" for d in docs))


@handles("set_intercompany_po_delivery_address")
def set_intercompany_po_delivery_address(ctx: Ctx, params: dict) -> None:
    order: SalesOrder = _need(ctx, "order")
    value = params["value"]
    for po in _ic_purchase_orders(ctx, order):
        if value == "standard_po_delivery_address":
            address = po.standard_delivery_address
        elif value == "original_sales_order_delivery_address":
            address = order.delivery_address
        else:
            raise ObligationFailed(f"unknown delivery address source {value!r}")
        po.delivery_address = address
        if params.get("include_lines"):
            for line in po.lines:
                line.delivery_address = address
        ctx.effect(f"intercompany PO {po.number} delivery address = {address}"
                   + (" (header and lines)" if params.get("include_lines") else ""))


@handles("set_original_lines_delivery_type")
def set_original_lines_delivery_type(ctx: Ctx, params: dict) -> None:
    order: SalesOrder = _need(ctx, "order")
    skip_external = params.get("skip_lines_linked_to_external_vendor_po", True)
    changed = skipped = 0
    for line in order.lines:
        if skip_external and _linked_po_type(ctx, line) == "external_vendor":
            skipped += 1
            continue
        line.delivery_type = params["value"]
        changed += 1
    ctx.effect(f"delivery type {params['value']} on {changed} original line(s)"
               + (f", {skipped} external-vendor line(s) left alone" if skipped else ""))


def _linked_po_type(ctx: Ctx, line: SalesOrderLine) -> str | None:
    if line.linked_po_line_id is None:
        return None
    po_line = ctx.session.get(PurchaseOrderLine, line.linked_po_line_id)
    return po_line.order.vendor_type if po_line is not None else None


@handles("sync_original_line_delivery_addresses")
def sync_original_line_delivery_addresses(ctx: Ctx, params: dict) -> None:
    order: SalesOrder = _need(ctx, "order")
    docs = _ic_purchase_orders(ctx, order) + _ic_sales_orders(ctx, order)
    n = 0
    for original in order.lines:
        for ic_line in _lines_of(docs, original.id):
            ic_line.delivery_address = original.delivery_address or order.delivery_address
            n += 1
    ctx.effect(f"{n} intercompany line address(es) synced from the original lines")


@handles("update_intercompany_delivery_dates")
def update_intercompany_delivery_dates(ctx: Ctx, params: dict) -> None:
    order: SalesOrder = _need(ctx, "order")
    originals = {line.id: line for line in order.lines}
    for po in _ic_purchase_orders(ctx, order):
        po.delivery_date = order.requested_receipt_date
        for line in po.lines:
            src = originals.get(line.original_line_id)
            line.delivery_date = (src.requested_receipt_date if src else None) or order.requested_receipt_date
    for so in _ic_sales_orders(ctx, order):
        so.requested_receipt_date, so.requested_ship_date = order.requested_receipt_date, order.requested_ship_date
        for line in so.lines:
            src = originals.get(line.original_line_id)
            line.requested_receipt_date = (src.requested_receipt_date if src else None) or order.requested_receipt_date
            line.requested_ship_date = (src.requested_ship_date if src else None) or order.requested_ship_date
    ctx.effect("intercompany delivery dates updated (PO delivery, SO requested receipt/ship)")
