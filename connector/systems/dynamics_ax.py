"""Dynamics AX intercompany chain (``dynamics_ax``): changes of an original sales order (spec 8)."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..gate import Applied, Build, Ctx, Mutate, need
from ..obligations import _linked_po_type
from ..orders import (
    IntercompanySalesOrder,
    IntercompanySalesOrderLine,
    Note,
    PurchaseOrderLine,
    SalesOrder,
    SalesOrderLine,
)
from . import SourceSystem, one, operation

SYSTEM = "dynamics_ax"


class DynamicsAx(SourceSystem):
    system = SYSTEM

    # -- facts ---------------------------------------------------------------------------------
    def _order_facts(self, ctx: Ctx, order_number: str, line_no: int | None = None) -> dict[str, Any]:
        order = one(ctx, SalesOrder, "sales order", number=order_number, system=SYSTEM)
        ctx.refs.order = order
        statuses = [ln.line_status for so in ctx.session.scalars(
            sa.select(IntercompanySalesOrder).where(IntercompanySalesOrder.original_sales_order_number == order.number))
            for ln in so.lines]
        resource: dict[str, Any] = {
            "sales_order": {"number": order.number, "is_intercompany_original": order.is_intercompany_original,
                            "document_status": order.document_status},
            "intercompany_sales_order": {"line_statuses": statuses},
        }
        if line_no is not None:
            line = next((ln for ln in order.lines if ln.line_no == line_no), None)
            if line is None:
                raise LookupError(f"sales order {order_number} has no line {line_no}")
            ctx.refs.line = line
            # None when the line is connected to no purchase line: the engine then answers
            # missing_fact for an original order, i.e. a denial (fail closed).
            resource["sales_order_line"] = {"line_no": line_no, "linked_po_type": _linked_po_type(ctx, line)}
        return {"subject": {"name": ctx.user.name}, "resource": resource}

    def _perform(self, action: str, target: str, user: str, build: Build, mutate: Mutate) -> Applied:
        return self.perform(action, user=user, target=target, build=build, mutate=mutate)

    # -- original sales order ------------------------------------------------------------------
    @operation("salesorder.delete")
    def delete_sales_order(self, order_number: str, *, user: str) -> Applied:
        def mutate(ctx: Ctx) -> None:
            order = need(ctx, ctx.refs.order, "order")

            def remove() -> None:   # after the chain's documents are gone
                for note in ctx.session.scalars(sa.select(Note).where(Note.document_type == "sales_order",
                                                                      Note.document_number == order.number)):
                    ctx.session.delete(note)
                ctx.session.delete(order)
            ctx.after(remove)
            ctx.effect(f"sales order {order_number} deleted")

        return self._perform("salesorder.delete", f"order:{order_number}", user,
                             lambda ctx: self._order_facts(ctx, order_number), mutate)

    @operation("salesorder_line.delete")
    def delete_sales_order_line(self, order_number: str, line_no: int, *, user: str) -> Applied:
        def mutate(ctx: Ctx) -> None:
            order, line = need(ctx, ctx.refs.order, "order"), need(ctx, ctx.refs.line, "line")

            def remove() -> None:
                order.lines.remove(line)
                order.sum_net()
            ctx.after(remove)
            ctx.effect(f"line {line_no} of {order_number} deleted")

        return self._perform("salesorder_line.delete", f"order:{order_number}/line:{line_no}", user,
                             lambda ctx: self._order_facts(ctx, order_number, line_no), mutate)

    @operation("salesorder_line.create")
    def create_sales_order_line(self, order_number: str, *, user: str, item: str, quantity: int,
                                unit_price_cents: int, delivery_address: str | None = None) -> Applied:
        def mutate(ctx: Ctx) -> int:
            order = need(ctx, ctx.refs.order, "order")
            line = SalesOrderLine.priced(line_no=max([ln.line_no for ln in order.lines], default=0) + 1, item=item,
                                         quantity=quantity, unit_price_cents=unit_price_cents,
                                         delivery_type="direct_delivery" if order.direct_delivery else "none",
                                         delivery_address=delivery_address or order.delivery_address,
                                         requested_ship_date=order.requested_ship_date,
                                         requested_receipt_date=order.requested_receipt_date)
            order.lines.append(line)
            order.sum_net()
            ctx.session.flush()
            ctx.refs.line = line
            ctx.effect(f"line {line.line_no} ({item} x {quantity}) added to {order_number}")
            return line.line_no

        return self._perform("salesorder_line.create", f"order:{order_number}", user,
                             lambda ctx: self._order_facts(ctx, order_number), mutate)

    @operation("salesorder_line.update_quantity")
    def update_line_quantity(self, order_number: str, line_no: int, quantity: int, *, user: str) -> Applied:
        def mutate(ctx: Ctx) -> None:
            order, line = need(ctx, ctx.refs.order, "order"), need(ctx, ctx.refs.line, "line")
            before, line.quantity = line.quantity, quantity
            line.price()
            order.sum_net()
            ctx.effect(f"line {line_no} of {order_number}: quantity {before} -> {quantity}")

        return self._perform("salesorder_line.update_quantity", f"order:{order_number}/line:{line_no}", user,
                             lambda ctx: self._order_facts(ctx, order_number, line_no), mutate)

    @operation("salesorder.enable_direct_delivery")
    def enable_direct_delivery(self, order_number: str, *, user: str) -> Applied:
        return self._direct_delivery(order_number, True, user)

    @operation("salesorder.disable_direct_delivery")
    def disable_direct_delivery(self, order_number: str, *, user: str) -> Applied:
        return self._direct_delivery(order_number, False, user)

    def _direct_delivery(self, order_number: str, on: bool, user: str) -> Applied:
        def mutate(ctx: Ctx) -> None:
            need(ctx, ctx.refs.order, "order").direct_delivery = on
            ctx.effect(f"direct delivery {'enabled' if on else 'disabled'} on {order_number}")

        action = "salesorder.enable_direct_delivery" if on else "salesorder.disable_direct_delivery"
        return self._perform(action, f"order:{order_number}", user,
                             lambda ctx: self._order_facts(ctx, order_number), mutate)

    # -- notes ---------------------------------------------------------------------------------
    @operation("salesorder_note.create")
    def create_note(self, order_number: str, text: str, *, user: str, line_no: int | None = None) -> Applied:
        attached = "line" if line_no is not None else "header"

        def build(ctx: Ctx) -> dict[str, Any]:
            request = self._order_facts(ctx, order_number)
            request["resource"]["note"] = {"attached_to": attached}
            return request

        def mutate(ctx: Ctx) -> int:
            note = Note(document_type="sales_order", document_number=order_number, line_no=line_no,
                        attached_to=attached, text=text)
            ctx.session.add(note)
            ctx.session.flush()
            ctx.refs.note = note
            ctx.effect(f"{attached} note {note.id} added to {order_number}")
            return note.id

        return self._perform("salesorder_note.create", f"order:{order_number}", user, build, mutate)

    def _note_facts(self, ctx: Ctx, note_id: int) -> dict[str, Any]:
        note = one(ctx, Note, "note", id=note_id, document_type="sales_order")
        ctx.refs.note = note
        request = self._order_facts(ctx, note.document_number)
        request["resource"]["note"] = {"attached_to": note.attached_to}
        return request

    @operation("salesorder_note.update")
    def update_note(self, note_id: int, text: str, *, user: str) -> Applied:
        def mutate(ctx: Ctx) -> None:
            need(ctx, ctx.refs.note, "note").text = text
            ctx.effect(f"note {note_id} changed")

        return self._perform("salesorder_note.update", f"note:{note_id}", user,
                             lambda ctx: self._note_facts(ctx, note_id), mutate)

    @operation("salesorder_note.delete")
    def delete_note(self, note_id: int, *, user: str) -> Applied:
        def mutate(ctx: Ctx) -> None:
            note = need(ctx, ctx.refs.note, "note")
            ctx.after(lambda: ctx.session.delete(note))
            ctx.effect(f"note {note_id} deleted")

        return self._perform("salesorder_note.delete", f"note:{note_id}", user,
                             lambda ctx: self._note_facts(ctx, note_id), mutate)

    # -- lines of the intercompany orders themselves -------------------------------------------
    def _ic_line_facts(self, ctx: Ctx, kind: str, line_id: int) -> dict[str, Any]:
        line: PurchaseOrderLine | IntercompanySalesOrderLine | None
        if kind == "purchase":
            line = ctx.session.get(PurchaseOrderLine, line_id, with_for_update=True)
        elif kind == "sales":
            line = ctx.session.get(IntercompanySalesOrderLine, line_id, with_for_update=True)
        else:
            raise ValueError(f"intercompany line kind must be `purchase` or `sales`, not {kind!r}")
        if line is None:
            raise LookupError(f"intercompany {kind} line {line_id} not found")
        ctx.refs.ic_line = line
        return {"subject": {"name": ctx.user.name},
                "resource": {"intercompany_order_line": {"origin": line.origin}}}

    @operation("intercompany_order_line.delete")
    def delete_intercompany_line(self, kind: str, line_id: int, *, user: str) -> Applied:
        def mutate(ctx: Ctx) -> None:
            line = need(ctx, ctx.refs.ic_line, "ic_line")
            doc: Any = line.order     # a PurchaseOrder or an IntercompanySalesOrder
            doc.lines.remove(line)
            doc.sum_net()
            ctx.effect(f"intercompany {kind} line {line_id} deleted")

        return self._perform("intercompany_order_line.delete", f"ic_{kind}_line:{line_id}", user,
                             lambda ctx: self._ic_line_facts(ctx, kind, line_id), mutate)

    @operation("intercompany_order_line.update_quantity")
    def update_intercompany_line_quantity(self, kind: str, line_id: int, quantity: int, *, user: str) -> Applied:
        def mutate(ctx: Ctx) -> None:
            line = need(ctx, ctx.refs.ic_line, "ic_line")
            line.quantity = quantity
            line.price()
            line.order.sum_net()
            ctx.effect(f"intercompany {kind} line {line_id}: quantity {quantity}")

        return self._perform("intercompany_order_line.update_quantity", f"ic_{kind}_line:{line_id}", user,
                             lambda ctx: self._ic_line_facts(ctx, kind, line_id), mutate)
