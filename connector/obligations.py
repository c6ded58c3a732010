"""One handler per obligation name of the domain spec; each one really does it, in the caller's
transaction.

A handler is ``handler(ctx, params)``, named as its obligation. It finds its records in
``ctx.refs`` (set by the mutation's fact builder), changes them, and says what it did with
``ctx.effect``. ``OBLIGATIONS`` at the end lists every handler in the order the obligations of one
decision are applied (dependencies first); ``HANDLERS`` and ``ORDER`` are derived from it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from .gate import Ctx, Handler, ObligationFailed, need
from .orders import (
    Account,
    CrmPricedLine,
    CrmSalesOrder,
    CrmSalesOrderLine,
    Customer,
    CustomerShipTo,
    ErpSalesQuote,
    IntercompanyLine,
    IntercompanySalesOrder,
    IntercompanySalesOrderLine,
    Note,
    Opportunity,
    OpportunityLine,
    PurchaseOrder,
    PurchaseOrderLine,
    SalesOrder,
    SalesOrderLine,
    SalesQuoteTemplate,
    net_sum,
)

# --------------------------------------------------------------------------- pricing (d365_sales)

def _price_line(line: CrmPricedLine) -> None:
    line.price()
    line.price_status = "computed"


def compute_price(ctx: Ctx, params: dict[str, Any]) -> None:
    line = ctx.refs.priced_line
    header = ctx.refs.priced_header
    if line is None and header is None:
        raise ObligationFailed(f"{ctx.action}: nothing to price")
    if line is not None:
        _price_line(line)
    if header is not None:
        if line is None and not ctx.refs.line_action:   # a header action prices every line
            for each in header.lines:
                _price_line(each)
        header.price_total()
        ctx.effect(f"price computed: total {header.total_cents} cents")
    elif line is not None:
        ctx.effect(f"price computed: line {line.net_cents} cents")


def skip_price_calculation(ctx: Ctx, params: dict[str, Any]) -> None:
    for record in (ctx.refs.priced_line, ctx.refs.priced_header):
        if record is not None:
            record.price_status = "skipped"
    ctx.effect("price calculation skipped (back office prices the order)")


def set_order_state(ctx: Ctx, params: dict[str, Any]) -> None:
    order = need(ctx, ctx.refs.crm_order, "crm_order")
    if params.get("statecode") not in ("active", "submitted", "canceled", "fulfilled", "invoiced"):
        raise ObligationFailed(f"set_order_state: unknown statecode {params.get('statecode')!r}")
    order.statecode = params["statecode"]
    if "statuscode" in params:
        order.statuscode = params["statuscode"]
    if "submitted_by_integration_user" in params:
        order.submitted_by_integration_user = bool(params["submitted_by_integration_user"])
    ctx.effect(f"order state {order.statecode}/{order.statuscode}")


def set_order_read_only(ctx: Ctx, params: dict[str, Any]) -> None:
    order = need(ctx, ctx.refs.crm_order, "crm_order")
    order.read_only = True
    ctx.effect("order made read-only")


# --------------------------------------------------------------------------- QAD CRM → QAD EA

def _number(ctx: Ctx, record: Any, prefix: str) -> str:
    """Add a new ERP document and give it its number (from its id)."""
    ctx.session.add(record)
    ctx.session.flush()
    number = f"{prefix}{10000 + record.id}"
    record.number = number
    return number


def create_erp_customer(ctx: Ctx, params: dict[str, Any]) -> None:
    account = need(ctx, ctx.refs.account, "account")
    code = account.erp_customer_code or f"C{10000 + account.id}"
    if ctx.session.scalar(sa.select(Customer).where(Customer.code == code)) is None:
        ctx.session.add(Customer(code=code, name=account.name, sold_to_address=account.address,
                                 is_active=True, has_operational_data=True, is_set_up=True))
    account.erp_customer_code = code
    ctx.effect(f"ERP customer {code} created from the CRM profile")


def _selected_lines(opp: Opportunity) -> list[Any]:
    chosen = [line for line in opp.lines if line.selected]
    return chosen or list(opp.lines)


def _opportunity_and_account(ctx: Ctx) -> tuple[Opportunity, Account]:
    return need(ctx, ctx.refs.opportunity, "opportunity"), need(ctx, ctx.refs.account, "account")


def create_erp_sales_order(ctx: Ctx, params: dict[str, Any]) -> None:
    opp, account = _opportunity_and_account(ctx)
    if not account.erp_customer_code:
        raise ObligationFailed("create_erp_sales_order: the CRM profile has no ERP customer")
    order = SalesOrder(system="qad_erp", customer_code=account.erp_customer_code, opportunity_id=opp.id,
                       requested_date=opp.requested_date)
    for i, line in enumerate(_selected_lines(opp), start=1):
        order.lines.append(SalesOrderLine.priced(line_no=i, item=line.item, quantity=line.quantity,
                                                 unit_price_cents=line.unit_price_cents, crm_line_id=line.id))
    order.sum_net()
    _number(ctx, order, "SO")
    ctx.refs.erp_order = order
    ctx.effect(f"ERP sales order {order.number} created with {len(order.lines)} line(s)")


def create_erp_sales_quote(ctx: Ctx, params: dict[str, Any]) -> None:
    opp, account = _opportunity_and_account(ctx)
    lines = [line for line in opp.lines if line.selected]
    quote = ErpSalesQuote(customer_code=account.erp_customer_code or "", opportunity_id=opp.id,
                          line_items=[{"item": ln.item, "quantity": ln.quantity} for ln in lines])
    _number(ctx, quote, "SQ")
    ctx.refs.erp_quote = quote
    ctx.effect(f"ERP sales quote {quote.number} created with {len(lines)} line(s)")


def apply_sales_quote_template_defaults(ctx: Ctx, params: dict[str, Any]) -> None:
    order = need(ctx, ctx.refs.erp_order, "erp_order")
    opp = need(ctx, ctx.refs.opportunity, "opportunity")
    template = ctx.session.get(SalesQuoteTemplate, opp.domain or "default") \
        or ctx.session.get(SalesQuoteTemplate, "default")
    if template is None:
        raise ObligationFailed(f"no sales quote template for domain {opp.domain!r}")
    order.site = opp.site or template.site
    order.credit_terms = opp.credit_terms or template.credit_terms
    order.currency = opp.currency or template.currency
    ctx.effect(f"sales quote template of domain {template.domain}: site {order.site}, terms {order.credit_terms}, "
               f"currency {order.currency}")


def set_opportunity_reference(ctx: Ctx, params: dict[str, Any]) -> None:
    opp = need(ctx, ctx.refs.opportunity, "opportunity")
    source = params.get("source")
    if source == "erp_sales_order_number":
        opp.reference = need(ctx, ctx.refs.erp_order, "erp_order").number
    elif source == "erp_sales_quote_number":
        opp.reference = need(ctx, ctx.refs.erp_quote, "erp_quote").number
    else:
        raise ObligationFailed(f"set_opportunity_reference: unknown source {source!r}")
    ctx.effect(f"opportunity reference = {opp.reference}")


def hand_over_order_to_erp(ctx: Ctx, params: dict[str, Any]) -> None:
    opp = need(ctx, ctx.refs.opportunity, "opportunity")
    opp.order_sent_to_erp = True
    ctx.effect("order handed over to ERP: later CRM edits are not replicated")


def suppress_erp_replication(ctx: Ctx, params: dict[str, Any]) -> None:
    ctx.flags.add("suppress_erp_replication")
    ctx.effect("CRM change not replicated to the ERP order (handed over)")


def update_opportunity_from_erp(ctx: Ctx, params: dict[str, Any]) -> None:
    opp = need(ctx, ctx.refs.opportunity, "opportunity")
    order = need(ctx, ctx.refs.erp_order, "erp_order")
    fields = params.get("fields") or ["shipped_quantity", "invoiced_quantity"]
    unknown = set(fields) - {"shipped_quantity", "invoiced_quantity"}
    if unknown:   # a policy names fields; it must not be able to overwrite arbitrary attributes
        raise ObligationFailed(f"update_opportunity_from_erp: cannot update {sorted(unknown)} from ERP")
    by_id: dict[int | None, OpportunityLine] = {line.id: line for line in opp.lines}
    for erp_line in order.lines:
        crm_line = by_id.get(erp_line.crm_line_id)
        if crm_line is not None:
            for name in fields:
                setattr(crm_line, name, getattr(erp_line, name))
    for name in fields:
        setattr(opp, name, sum(getattr(line, name) for line in order.lines))
    ctx.effect("opportunity updated from ERP: " + ", ".join(f"{n} {getattr(opp, n)}" for n in fields))


def set_opportunity_stage(ctx: Ctx, params: dict[str, Any]) -> None:
    opp = need(ctx, ctx.refs.opportunity, "opportunity")
    if not isinstance(params.get("stage"), str) or not params["stage"]:
        raise ObligationFailed("set_opportunity_stage: no stage given")
    opp.stage = params["stage"]
    ctx.effect(f"opportunity stage = {opp.stage}")


# --------------------------------------------------------------------------- Autotask

def generate_sales_order(ctx: Ctx, params: dict[str, Any]) -> None:
    opp = need(ctx, ctx.refs.opportunity, "opportunity")
    quote = ctx.refs.quote
    order = CrmSalesOrder(system="autotask", name=f"Sales order for {opp.name}", opportunity_id=opp.id,
                          quote_id=quote.id if quote is not None else None, statecode="active")
    if quote is not None:
        for i, line in enumerate([ln for ln in quote.lines if ln.item_type == "product"], start=1):
            order.lines.append(CrmSalesOrderLine.priced(line_no=i, item=line.item, quantity=line.quantity,
                                                        unit_price_cents=line.unit_price_cents))
    order.total_cents = net_sum(order.lines)
    ctx.session.add(order)
    opp.sales_order_previously_generated = True
    ctx.session.flush()
    ctx.refs.crm_order = order
    ctx.effect(f"sales order {order.id} generated with {len(order.lines)} product line(s)")


def close_opportunity(ctx: Ctx, params: dict[str, Any]) -> None:
    opp = need(ctx, ctx.refs.opportunity, "opportunity")
    opp.status = "closed"
    ctx.effect("opportunity closed (won)")


# --------------------------------------------------------------------------- QAD EA customers

def put_on_credit_hold(ctx: Ctx, params: dict[str, Any]) -> None:
    order = need(ctx, ctx.refs.order, "order")
    order.action_status = params.get("action_status") or "HD"
    ctx.effect(f"order on credit hold: action status {order.action_status}")


def default_bill_to(ctx: Ctx, params: dict[str, Any]) -> None:
    order = need(ctx, ctx.refs.order, "order")
    order.bill_to = params["bill_to"]
    ctx.effect(f"bill-to defaulted to {order.bill_to}")


def default_header_from_bill_to(ctx: Ctx, params: dict[str, Any]) -> None:
    order = need(ctx, ctx.refs.order, "order")
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


def default_ship_to(ctx: Ctx, params: dict[str, Any]) -> None:
    order = need(ctx, ctx.refs.order, "order")
    customer = need(ctx, ctx.refs.customer, "customer")
    order.ship_to = params["ship_to"]
    order.ship_to_address = customer.ship_to_address or customer.sold_to_address
    ctx.effect(f"ship-to defaulted to {order.ship_to}")


def default_tax_and_language(ctx: Ctx, params: dict[str, Any]) -> None:
    order = need(ctx, ctx.refs.order, "order")
    source = params.get("source", "sold_to")
    code = order.ship_to if source == "ship_to" else order.customer_code
    record = ctx.session.scalar(sa.select(Customer).where(Customer.code == code))
    if record is None:
        raise ObligationFailed(f"default_tax_and_language: no customer record {code!r}")
    order.language, order.taxable, order.tax_source = record.language, record.taxable, source
    ctx.effect(f"language {order.language} and tax defaults from the {source.replace('_', '-')} {code}")


def create_ship_to(ctx: Ctx, params: dict[str, Any]) -> None:
    customer = need(ctx, ctx.refs.customer, "customer")
    code = params["ship_to"]
    address = ctx.refs.ship_to_address or ""
    if not any(s.code == code for s in customer.ship_tos):
        customer.ship_tos.append(CustomerShipTo(code=code, address=address))
    order = ctx.refs.order
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


def _lines_of(docs: Iterable[Any], original_line_id: int) -> list[Any]:
    return [line for doc in docs for line in doc.lines if line.original_line_id == original_line_id]


@dataclass(frozen=True)
class _Chain:
    """The intercompany documents of one kind that a change of the original order reaches."""

    docs: list[Any]                   # PurchaseOrder or IntercompanySalesOrder
    line_cls: type[IntercompanyLine]
    doc_type: str                     # how notes name the document type
    label: str


def _delete_order(ctx: Ctx, chain: _Chain) -> None:
    for doc in chain.docs:
        ctx.session.delete(doc)
    numbers = [d.number for d in chain.docs]
    for copy in ctx.session.scalars(sa.select(Note).where(Note.document_type == chain.doc_type,
                                                          Note.document_number.in_(numbers))):
        ctx.session.delete(copy)


def _delete_line(ctx: Ctx, chain: _Chain) -> None:
    for ic_line in _lines_of(chain.docs, need(ctx, ctx.refs.line, "line").id):
        ic_line.order.lines.remove(ic_line)


def _create_line(ctx: Ctx, chain: _Chain) -> None:
    line = need(ctx, ctx.refs.line, "line")
    for doc in chain.docs:
        new = chain.line_cls.priced(line_no=max([ln.line_no for ln in doc.lines], default=0) + 1,
                                    original_line_id=line.id, origin="derived", item=line.item,
                                    quantity=line.quantity, unit_price_cents=line.unit_price_cents,
                                    delivery_type=line.delivery_type, delivery_address=line.delivery_address)
        doc.lines.append(new)
        if isinstance(new, PurchaseOrderLine):
            ctx.session.flush()
            line.linked_po_line_id = new.id


def _update_quantity(ctx: Ctx, chain: _Chain) -> None:
    line = need(ctx, ctx.refs.line, "line")
    for ic_line in _lines_of(chain.docs, line.id):
        ic_line.quantity = line.quantity


def _delivery_type(ctx: Ctx, chain: _Chain) -> None:
    for original in need(ctx, ctx.refs.order, "order").lines:
        for ic_line in _lines_of(chain.docs, original.id):
            ic_line.delivery_type = original.delivery_type


def _delivery_address(ctx: Ctx, chain: _Chain) -> None:
    # The IC sales order follows its purchase order (header and lines).
    pos: dict[str | None, PurchaseOrder] = {
        po.number: po for po in _ic_purchase_orders(ctx, need(ctx, ctx.refs.order, "order"))}
    for doc in chain.docs:
        po = pos.get(getattr(doc, "purchase_order_number", None))
        if po is None:
            continue
        doc.delivery_address = po.delivery_address
        po_lines = {ln.original_line_id: ln for ln in po.lines}
        for ic_line in doc.lines:
            if ic_line.original_line_id in po_lines:
                ic_line.delivery_address = po_lines[ic_line.original_line_id].delivery_address


def _note_copies(ctx: Ctx, chain: _Chain) -> Iterator[tuple[Note, Any, Note | None]]:
    note = need(ctx, ctx.refs.note, "note")
    for doc in chain.docs:
        copy = ctx.session.scalar(sa.select(Note).where(Note.source_note_id == note.id,
                                                        Note.document_type == chain.doc_type,
                                                        Note.document_number == doc.number))
        yield note, doc, copy


def _create_note(ctx: Ctx, chain: _Chain) -> None:
    for note, doc, _ in _note_copies(ctx, chain):
        ctx.session.add(Note(document_type=chain.doc_type, document_number=doc.number, line_no=note.line_no,
                             attached_to=note.attached_to, text=note.text, source_note_id=note.id))


def _update_note(ctx: Ctx, chain: _Chain) -> None:
    for note, _, copy in _note_copies(ctx, chain):
        if copy is not None:
            copy.text = note.text


def _delete_note(ctx: Ctx, chain: _Chain) -> None:
    for _, _, copy in _note_copies(ctx, chain):
        if copy is not None:
            ctx.session.delete(copy)


#: ``change`` parameter of the propagate obligations -> what it does to the chain's documents
PROPAGATIONS: dict[str, Callable[[Ctx, _Chain], None]] = {
    "delete_order": _delete_order,
    "delete_line": _delete_line,
    "create_line": _create_line,
    "update_quantity": _update_quantity,
    "delivery_type": _delivery_type,
    "delivery_address": _delivery_address,
    "create_note": _create_note,
    "update_note": _update_note,
    "delete_note": _delete_note,
}


def _propagate(ctx: Ctx, params: dict[str, Any], chain: _Chain) -> None:
    change = params.get("change")
    step = PROPAGATIONS.get(change) if isinstance(change, str) else None
    if step is None:
        raise ObligationFailed(f"unknown intercompany change {change!r}")
    if not chain.docs:
        ctx.effect(f"no {chain.label} to propagate {change} to")
        return
    step(ctx, chain)
    ctx.effect(f"{change} propagated to {chain.label} {', '.join(d.number for d in chain.docs)}")


def propagate_to_intercompany_po(ctx: Ctx, params: dict[str, Any]) -> None:
    order = need(ctx, ctx.refs.order, "order")
    _propagate(ctx, params, _Chain(_ic_purchase_orders(ctx, order), PurchaseOrderLine, "purchase_order",
                                   "intercompany PO"))


def propagate_to_intercompany_so(ctx: Ctx, params: dict[str, Any]) -> None:
    order = need(ctx, ctx.refs.order, "order")
    _propagate(ctx, params, _Chain(_ic_sales_orders(ctx, order), IntercompanySalesOrderLine,
                                   "intercompany_sales_order", "intercompany SO"))


def recalculate_net_amount(ctx: Ctx, params: dict[str, Any]) -> None:
    order = need(ctx, ctx.refs.order, "order")
    docs: list[Any] = [order]
    if params.get("scope", "all_orders") == "all_orders":
        docs += _ic_purchase_orders(ctx, order) + _ic_sales_orders(ctx, order)
    for doc in docs:
        for line in doc.lines:
            line.price()
        doc.sum_net()
    ctx.effect("net amounts recalculated: " + ", ".join(f"{d.number} {d.net_cents}" for d in docs))


def set_intercompany_po_delivery_address(ctx: Ctx, params: dict[str, Any]) -> None:
    order = need(ctx, ctx.refs.order, "order")
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


def set_original_lines_delivery_type(ctx: Ctx, params: dict[str, Any]) -> None:
    order = need(ctx, ctx.refs.order, "order")
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


def sync_original_line_delivery_addresses(ctx: Ctx, params: dict[str, Any]) -> None:
    order = need(ctx, ctx.refs.order, "order")
    docs = _ic_purchase_orders(ctx, order) + _ic_sales_orders(ctx, order)
    n = 0
    for original in order.lines:
        for ic_line in _lines_of(docs, original.id):
            ic_line.delivery_address = original.delivery_address or order.delivery_address
            n += 1
    ctx.effect(f"{n} intercompany line address(es) synced from the original lines")


def update_intercompany_delivery_dates(ctx: Ctx, params: dict[str, Any]) -> None:
    order = need(ctx, ctx.refs.order, "order")
    originals: dict[int | None, SalesOrderLine] = {line.id: line for line in order.lines}
    for po in _ic_purchase_orders(ctx, order):
        po.delivery_date = order.requested_receipt_date
        for po_line in po.lines:
            src = originals.get(po_line.original_line_id)
            po_line.delivery_date = (src.requested_receipt_date if src else None) or order.requested_receipt_date
    for so in _ic_sales_orders(ctx, order):
        so.requested_receipt_date, so.requested_ship_date = order.requested_receipt_date, order.requested_ship_date
        for so_line in so.lines:
            src = originals.get(so_line.original_line_id)
            so_line.requested_receipt_date = ((src.requested_receipt_date if src else None)
                                              or order.requested_receipt_date)
            so_line.requested_ship_date = (src.requested_ship_date if src else None) or order.requested_ship_date
    ctx.effect("intercompany delivery dates updated (PO delivery, SO requested receipt/ship)")


#: Every obligation the connector carries out, in the order the obligations of one decision are
#: applied (dependencies first: the ERP customer before the ERP order, the order before its
#: reference, delivery types and addresses before they are propagated, quantities before net
#: amounts, prices last). The handler's name is the obligation's name.
OBLIGATIONS: tuple[Handler, ...] = (
    create_erp_customer,
    create_ship_to,
    create_erp_sales_order,
    create_erp_sales_quote,
    generate_sales_order,
    apply_sales_quote_template_defaults,
    default_bill_to,
    default_header_from_bill_to,
    default_ship_to,
    default_tax_and_language,
    put_on_credit_hold,
    set_opportunity_reference,
    hand_over_order_to_erp,
    suppress_erp_replication,
    close_opportunity,
    update_opportunity_from_erp,
    set_opportunity_stage,
    set_order_state,
    set_order_read_only,
    set_original_lines_delivery_type,
    set_intercompany_po_delivery_address,
    propagate_to_intercompany_po,
    propagate_to_intercompany_so,
    sync_original_line_delivery_addresses,
    update_intercompany_delivery_dates,
    recalculate_net_amount,
    skip_price_calculation,
    compute_price,
)
HANDLERS: dict[str, Handler] = {fn.__name__: fn for fn in OBLIGATIONS}
ORDER: tuple[str, ...] = tuple(HANDLERS)
