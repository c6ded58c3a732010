"""QAD CRM → QAD Enterprise Applications (``qad_crm``): stages, sending, handover, back-flow (spec 6.1)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from ..gate import Applied, Ctx, need
from ..orders import Customer, Opportunity, SalesOrder
from . import SourceSystem, assign, one, operation, settings

SYSTEM = "qad_crm"
EDITABLE = {"name", "description", "requested_date", "site", "credit_terms", "currency"}


class QadCrm(SourceSystem):
    system = SYSTEM

    def _opportunity(self, ctx: Ctx, opportunity_id: int) -> Opportunity:
        opp: Opportunity = one(ctx, Opportunity, "opportunity", id=opportunity_id, system=SYSTEM)
        ctx.refs.opportunity = opp
        ctx.refs.account = opp.account
        return opp

    @staticmethod
    def _customer_exists(ctx: Ctx, opp: Opportunity) -> bool:
        code = opp.account.erp_customer_code if opp.account else None
        return bool(code) and ctx.session.scalar(sa.select(Customer.id).where(Customer.code == code)) is not None

    @staticmethod
    def _context(ctx: Ctx) -> dict[str, Any]:
        conf = settings(ctx)
        keys = ("auto_create_erp_customer", "next_stages")
        return {"settings": {k: conf[k] for k in keys if k in conf}}

    @operation("opportunity.advance_stage")
    def advance_stage(self, opportunity_id: int, target_stage: str, *, user: str,
                      send_order_to_erp: bool | None = None,
                      selected_lines: Iterable[int] | None = None) -> Applied:
        """Right-click "Advance Opportunity Stage"; ``selected_lines`` are line numbers."""
        selection = None if selected_lines is None else set(selected_lines)

        def build(ctx: Ctx) -> dict[str, Any]:
            opp = self._opportunity(ctx, opportunity_id)
            count = (len([ln for ln in opp.lines if ln.line_no in selection]) if selection is not None
                     else len([ln for ln in opp.lines if ln.selected]))
            resource: dict[str, Any] = {
                "opportunity": {"stage": opp.stage, "order_sent_to_erp": opp.order_sent_to_erp},
                "target_stage": target_stage,
                "selected_line_count": count,
                "customer": {"exists_in_erp": self._customer_exists(ctx, opp)},
            }
            if send_order_to_erp is not None:
                resource["send_order_to_erp"] = send_order_to_erp
            return {"subject": {"name": ctx.user.name}, "resource": resource, "context": self._context(ctx)}

        def mutate(ctx: Ctx) -> None:
            opp = need(ctx, ctx.refs.opportunity, "opportunity")
            if selection is not None:
                for line in opp.lines:
                    line.selected = line.line_no in selection
            before, opp.stage = opp.stage, target_stage
            ctx.effect(f"opportunity {opp.id} stage {before} -> {target_stage}")

        return self.perform("opportunity.advance_stage", user=user,
                            target=f"opportunity:{opportunity_id}", build=build, mutate=mutate)

    @operation("opportunity.send_to_erp")
    def send_to_erp(self, opportunity_id: int, *, user: str) -> Applied:
        """Right-click "Send to QAD ERP" on the Order tab (a deferred send)."""
        def build(ctx: Ctx) -> dict[str, Any]:
            opp = self._opportunity(ctx, opportunity_id)
            return {"subject": {"name": ctx.user.name},
                    "resource": {"opportunity": {"stage": opp.stage, "order_sent_to_erp": opp.order_sent_to_erp},
                                 "customer": {"exists_in_erp": self._customer_exists(ctx, opp)}},
                    "context": self._context(ctx)}

        def mutate(ctx: Ctx) -> None:
            ctx.effect(f"opportunity {opportunity_id} sent to QAD ERP")

        return self.perform("opportunity.send_to_erp", user=user,
                            target=f"opportunity:{opportunity_id}", build=build, mutate=mutate)

    @operation("opportunity.update")
    def update(self, opportunity_id: int, *, user: str, fields: dict[str, Any]) -> Applied:
        """A user edit in CRM; replicated to the ERP order unless the order was handed over."""
        def build(ctx: Ctx) -> dict[str, Any]:
            opp = self._opportunity(ctx, opportunity_id)
            return {"subject": {"name": ctx.user.name},
                    "resource": {"opportunity": {"order_sent_to_erp": opp.order_sent_to_erp}},
                    "context": self._context(ctx)}

        def mutate(ctx: Ctx) -> None:
            opp = need(ctx, ctx.refs.opportunity, "opportunity")
            changes = assign(opp, fields, EDITABLE, "opportunity.update: field {name} cannot be changed here")
            ctx.effect(f"opportunity {opp.id} updated: {changes}")

            def replicate() -> None:
                if "suppress_erp_replication" in ctx.flags:
                    return
                for order in ctx.session.scalars(sa.select(SalesOrder).where(SalesOrder.opportunity_id == opp.id)):
                    if "requested_date" in fields:
                        order.requested_date = fields["requested_date"]
                    for name in ("site", "credit_terms", "currency"):
                        if name in fields:
                            setattr(order, name, fields[name])
                    ctx.effect(f"change replicated to ERP order {order.number}")
            ctx.after(replicate)

        return self.perform("opportunity.update", user=user,
                            target=f"opportunity:{opportunity_id}", build=build, mutate=mutate)

    @operation("opportunity.apply_erp_update")
    def apply_erp_update(self, order_number: str, *, user: str,
                         lines: dict[int, dict[str, int]] | None = None,
                         order_invoiced: bool | None = None,
                         invoice_status: str | None = None) -> Applied:
        """ERP → CRM back-flow of an ERP sales order update.

        ``lines`` maps ERP line numbers to new ``shipped_quantity`` / ``invoiced_quantity``;
        ``order_invoiced`` records the ERP's order-invoiced event. ``invoice_status`` is the
        correlated status (the back-flow correlator passes it); when absent it is derived from
        the updated order: fully invoiced = order invoiced and every line invoiced in full.
        """
        lines = {int(k): v for k, v in (lines or {}).items()}
        decided: dict[str, str] = {}   # the status the facts were built with

        def build(ctx: Ctx) -> dict[str, Any]:
            order = one(ctx, SalesOrder, "ERP sales order", number=order_number)
            if order.opportunity_id is None:
                raise LookupError(f"ERP order {order_number} has no CRM opportunity")
            ctx.refs.erp_order = order
            self._opportunity(ctx, order.opportunity_id)
            status = invoice_status or self._status_after(order, lines, order_invoiced)
            decided["invoice_status"] = status
            return {"subject": {"name": ctx.user.name},
                    "resource": {"erp_sales_order": {"number": order.number, "invoice_status": status}},
                    "context": {}}

        def mutate(ctx: Ctx) -> None:
            order: SalesOrder = need(ctx, ctx.refs.erp_order, "erp_order")
            by_no = {line.line_no: line for line in order.lines}
            for line_no, values in lines.items():
                line = by_no.get(line_no)
                if line is None:
                    raise LookupError(f"ERP order {order_number} has no line {line_no}")
                for name in ("shipped_quantity", "invoiced_quantity"):
                    if name in values:
                        setattr(line, name, int(values[name]))
            if order_invoiced is not None:
                order.erp_invoiced = order_invoiced
            order.invoice_status = decided["invoice_status"]
            ctx.effect(f"ERP order {order_number} mirrored: {order.invoice_status}")

        return self.perform("opportunity.apply_erp_update", user=user,
                            target=f"erp_order:{order_number}", build=build, mutate=mutate)

    @staticmethod
    def _status_after(order: SalesOrder, lines: dict[int, dict[str, int]], order_invoiced: bool | None) -> str:
        invoiced = {ln.line_no: lines.get(ln.line_no, {}).get("invoiced_quantity", ln.invoiced_quantity)
                    for ln in order.lines}
        done = order_invoiced if order_invoiced is not None else order.erp_invoiced
        if done and order.lines and all(invoiced[ln.line_no] >= ln.quantity for ln in order.lines):
            return "fully_invoiced"
        if any(q > 0 for q in invoiced.values()):
            return "partially_invoiced"
        return "not_invoiced"
