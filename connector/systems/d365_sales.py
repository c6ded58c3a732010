"""Dynamics 365 Sales (``d365_sales``): the 32 entity actions, Submit and Create Invoice (spec 5)."""
from __future__ import annotations

from typing import Any

from ..gate import Applied, Ctx, need
from ..orders import (
    CrmSalesOrder,
    CrmSalesOrderLine,
    Invoice,
    InvoiceLine,
    Opportunity,
    OpportunityLine,
    Quote,
    QuoteLine,
)
from . import SourceSystem, assign, operation, settings

SYSTEM = "d365_sales"

# entity -> (model, parent entity, parent attribute on the line, line collection on the header)
ENTITIES: dict[str, tuple[type, str | None, str | None]] = {
    "opportunity": (Opportunity, None, None),
    "quote": (Quote, None, None),
    "salesorder": (CrmSalesOrder, None, None),
    "invoice": (Invoice, None, None),
    "opportunity_line": (OpportunityLine, "opportunity", "opportunity"),
    "quote_line": (QuoteLine, "quote", "quote"),
    "salesorder_line": (CrmSalesOrderLine, "salesorder", "order"),
    "invoice_line": (InvoiceLine, "invoice", "invoice"),
}
HEADER_FIELDS = {"name"}
LINE_FIELDS = {"item", "quantity", "unit_price_cents"}


class D365Sales(SourceSystem):
    system = SYSTEM

    # -- facts ---------------------------------------------------------------------------------
    def _input(self, ctx: Ctx, order: CrmSalesOrder | None) -> dict[str, Any]:
        org = settings(ctx)
        resource: dict[str, Any] = {}
        if order is not None:
            resource["salesorder"] = {
                "statecode": order.statecode,
                "created_by_integration_user": order.created_by_integration_user,
                "submitted_by_integration_user": order.submitted_by_integration_user,
            }
        return {"subject": {"is_integration_user": ctx.user.is_integration_user},
                "resource": resource,
                "context": {"organization": {"is_sop_integration_enabled": org.get("is_sop_integration_enabled")}}}

    def _load(self, ctx: Ctx, entity: str, record_id: int) -> Any:
        model = ENTITIES[entity][0]
        record = ctx.session.get(model, record_id, with_for_update=True)
        if record is None:
            raise LookupError(f"{entity} {record_id} not found")
        return record

    def _refs(self, ctx: Ctx, entity: str, record: Any) -> CrmSalesOrder | None:
        """Puts the priced records in ctx.refs; returns the sales order whose state is a fact."""
        _, parent_entity, parent_attr = ENTITIES[entity]
        if parent_entity is None:
            ctx.refs.priced_header = record
            return record if entity == "salesorder" else None
        assert parent_attr is not None   # every line entity names its header
        header = getattr(record, parent_attr)
        # lock the header too (its state is a fact of line actions) and re-read it under the lock
        header = ctx.session.get(type(header), header.id, with_for_update=True, populate_existing=True)
        ctx.refs.priced_line = record
        ctx.refs.priced_header = header
        ctx.refs.line_action = True
        return header if entity == "salesorder_line" else None

    def _record_facts(self, ctx: Ctx, entity: str, record_id: int) -> dict[str, Any]:
        """The facts of an action on an existing record (update, delete, recalculate)."""
        record = self._load(ctx, entity, record_id)
        ctx.refs.record = record
        return self._input(ctx, self._refs(ctx, entity, record))

    def _order_facts(self, ctx: Ctx, order_id: int) -> dict[str, Any]:
        order = self._load(ctx, "salesorder", order_id)
        ctx.refs.crm_order = order
        return self._input(ctx, order)

    @staticmethod
    def _check_entity(entity: str) -> None:
        if entity not in ENTITIES:
            raise ValueError(f"unknown d365_sales entity {entity!r}")

    # -- the 32 entity actions -----------------------------------------------------------------
    @operation(*(f"{e}.create" for e in ENTITIES))
    def create(self, entity: str, *, user: str, fields: dict[str, Any], parent_id: int | None = None) -> Applied:
        self._check_entity(entity)
        model, parent_entity, parent_attr = ENTITIES[entity]
        state: dict[str, Any] = {}

        def build(ctx: Ctx) -> dict[str, Any]:
            order = None
            if parent_entity is not None:
                if parent_id is None:
                    raise ValueError(f"{entity}.create needs the parent_id of its {parent_entity}")
                parent = self._load(ctx, parent_entity, parent_id)
                state["parent"] = parent
                order = parent if entity == "salesorder_line" else None
            return self._input(ctx, order)

        def mutate(ctx: Ctx) -> int:
            allowed = LINE_FIELDS if parent_entity else HEADER_FIELDS
            record = model(**{k: v for k, v in fields.items() if k in allowed})
            if parent_entity is None:
                if entity == "salesorder":
                    record.created_by_integration_user = ctx.user.is_integration_user
                if hasattr(record, "system"):
                    record.system = SYSTEM
                ctx.session.add(record)
                ctx.refs.priced_header = record
            else:
                parent = state["parent"]
                record.line_no = max([ln.line_no for ln in parent.lines], default=0) + 1
                parent.lines.append(record)
                self._refs(ctx, entity, record)
            ctx.session.flush()
            record_id: int = record.id
            ctx.effect(f"{entity} {record_id} created")
            return record_id

        return self.perform(f"{entity}.create", user=user, target=f"{entity}:new",
                            build=build, mutate=mutate)

    @operation(*(f"{e}.update" for e in ENTITIES))
    def update(self, entity: str, record_id: int, *, user: str, fields: dict[str, Any]) -> Applied:
        self._check_entity(entity)

        def mutate(ctx: Ctx) -> None:
            allowed = LINE_FIELDS if ENTITIES[entity][1] else HEADER_FIELDS
            changes = assign(need(ctx, ctx.refs.record, "record"), fields, allowed,
                             f"{entity}.update: field {{name}} cannot be changed here")
            ctx.effect(f"{entity} {record_id} updated: {changes}")

        return self.perform(f"{entity}.update", user=user, target=f"{entity}:{record_id}",
                            build=lambda ctx: self._record_facts(ctx, entity, record_id), mutate=mutate)

    @operation(*(f"{e}.delete" for e in ENTITIES))
    def delete(self, entity: str, record_id: int, *, user: str) -> Applied:
        self._check_entity(entity)

        def build(ctx: Ctx) -> dict[str, Any]:
            request = self._record_facts(ctx, entity, record_id)
            ctx.refs.priced_line = None   # a deleted line is not priced; its header is
            if ENTITIES[entity][1] is None:
                ctx.refs.priced_header = None
            return request

        def mutate(ctx: Ctx) -> None:
            record = need(ctx, ctx.refs.record, "record")
            parent_attr = ENTITIES[entity][2]
            if parent_attr:
                getattr(record, parent_attr).lines.remove(record)   # delete-orphan; header total reflects it
            else:
                ctx.session.delete(record)
            ctx.effect(f"{entity} {record_id} deleted")

        return self.perform(f"{entity}.delete", user=user, target=f"{entity}:{record_id}",
                            build=build, mutate=mutate)

    @operation(*(f"{e}.recalculate" for e in ENTITIES))
    def recalculate(self, entity: str, record_id: int, *, user: str) -> Applied:
        self._check_entity(entity)

        def mutate(ctx: Ctx) -> None:
            ctx.effect(f"{entity} {record_id} recalculation requested")

        return self.perform(f"{entity}.recalculate", user=user, target=f"{entity}:{record_id}",
                            build=lambda ctx: self._record_facts(ctx, entity, record_id), mutate=mutate)

    # -- order processing ----------------------------------------------------------------------
    @operation("salesorder.submit")
    def submit(self, order_id: int, *, user: str) -> Applied:
        def mutate(ctx: Ctx) -> None:
            ctx.effect(f"salesorder {order_id} submitted by {ctx.user.name}")

        return self.perform("salesorder.submit", user=user, target=f"salesorder:{order_id}",
                            build=lambda ctx: self._order_facts(ctx, order_id), mutate=mutate)

    @operation("salesorder.create_invoice")
    def create_invoice(self, order_id: int, *, user: str) -> Applied:
        def mutate(ctx: Ctx) -> int:
            order = need(ctx, ctx.refs.crm_order, "crm_order")
            invoice = Invoice(sales_order_id=order.id, name=f"Invoice for {order.name}",
                              total_cents=order.total_cents, price_status=order.price_status)
            for line in order.lines:
                invoice.lines.append(InvoiceLine(line_no=line.line_no, item=line.item, quantity=line.quantity,
                                                 unit_price_cents=line.unit_price_cents, net_cents=line.net_cents,
                                                 price_status=line.price_status))
            ctx.session.add(invoice)
            ctx.session.flush()
            ctx.effect(f"invoice {invoice.id} created from salesorder {order.id}")
            return invoice.id

        return self.perform("salesorder.create_invoice", user=user, target=f"salesorder:{order_id}",
                            build=lambda ctx: self._order_facts(ctx, order_id), mutate=mutate)
