"""QAD Enterprise Applications (``qad_erp``): customers and sales orders (spec 7)."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..gate import Applied, Ctx, need
from ..orders import Customer, CustomerShipTo, SalesOrder, SalesOrderLine
from . import SourceSystem, assign, one, operation

SYSTEM = "qad_erp"
FINANCIAL_FIELDS = {"credit_hold", "credit_terms", "currency", "credit_limit_cents", "assigned_bill_to",
                    "blocked_code", "is_active", "bill_to_address"}
OPERATIONAL_FIELDS = {"language", "taxable", "ship_to_address"}


def _blocked(customer: Customer) -> list[str]:
    # The transactions of the customer's one blocked code (2.23.4 -> 2.23.1); [] = no block, stated.
    return list(customer.blocked.transactions) if customer.blocked is not None else []


class QadErp(SourceSystem):
    system = SYSTEM

    def _customer(self, ctx: Ctx, code: str) -> Customer:
        customer: Customer = one(ctx, Customer, "customer", code=code)
        ctx.refs.customer = customer
        return customer

    @operation("customer.select_for_order")
    def select_customer_for_order(self, customer_code: str, *, user: str) -> Applied:
        def build(ctx: Ctx) -> dict[str, Any]:
            c = self._customer(ctx, customer_code)
            return {"subject": {"name": ctx.user.name},
                    "resource": {"customer": {"code": c.code, "is_active": c.is_active,
                                              "has_operational_data": c.has_operational_data,
                                              "blocked_transactions": _blocked(c)}}}

        def mutate(ctx: Ctx) -> str:
            ctx.effect(f"customer {customer_code} selected as sold-to")
            return customer_code

        return self.perform("customer.select_for_order", user=user, target=f"customer:{customer_code}",
                            build=build, mutate=mutate)

    @operation("salesorder.create")
    def create_sales_order(self, customer_code: str, *, user: str, bill_to: str | None = None,
                           ship_to: str | None = None, ship_to_address: str | None = None,
                           lines: list[dict[str, Any]] | None = None) -> Applied:
        """Sales order entry: explicit bill-to / ship-to are optional (defaulted by the obligations)."""
        def build(ctx: Ctx) -> dict[str, Any]:
            c = self._customer(ctx, customer_code)
            ctx.refs.ship_to_address = ship_to_address
            effective_bill_to = bill_to or c.assigned_bill_to
            resource: dict[str, Any] = {
                "customer": {"code": c.code, "is_active": c.is_active, "has_operational_data": c.has_operational_data,
                             "blocked_transactions": _blocked(c), "credit_hold": c.credit_hold,
                             "assigned_bill_to": c.assigned_bill_to,
                             "ship_to_addresses": [s.code for s in c.ship_tos]},
                "order": {"bill_to": bill_to, "ship_to": ship_to,
                          "ship_to_has_customer_record": bool(ship_to) and ship_to != c.code and ctx.session.scalar(
                              sa.select(Customer.id).where(Customer.code == ship_to)) is not None},
            }
            if effective_bill_to and effective_bill_to != c.code:
                other = ctx.session.scalar(sa.select(Customer).where(Customer.code == effective_bill_to))
                if other is not None:
                    resource["bill_to_customer"] = {"code": other.code, "credit_hold": other.credit_hold}
            return {"subject": {"name": ctx.user.name, "permitted_functions": list(ctx.user.permitted_functions or [])},
                    "resource": resource}

        def mutate(ctx: Ctx) -> str:
            order = SalesOrder(system=SYSTEM, customer_code=customer_code, bill_to=bill_to or None,
                               ship_to=ship_to or None, ship_to_address=ship_to_address)
            for i, spec in enumerate(lines or [], start=1):
                qty, price = int(spec.get("quantity", 1)), int(spec.get("unit_price_cents", 0))
                order.lines.append(SalesOrderLine.priced(line_no=i, item=spec["item"], quantity=qty,
                                                         unit_price_cents=price))
            order.sum_net()
            ctx.session.add(order)
            ctx.session.flush()
            order.number = f"SO{10000 + order.id}"
            ctx.refs.order = order
            ctx.effect(f"sales order {order.number} entered for sold-to {customer_code}")
            return order.number

        return self.perform("salesorder.create", user=user, target=f"customer:{customer_code}",
                            build=build, mutate=mutate)

    @operation("salesorder.ship")
    def ship_sales_order(self, order_number: str, *, user: str) -> Applied:
        def build(ctx: Ctx) -> dict[str, Any]:
            order = one(ctx, SalesOrder, "sales order", number=order_number, system=SYSTEM)
            ctx.refs.order = order
            c = self._customer(ctx, order.customer_code)
            return {"subject": {"name": ctx.user.name},
                    "resource": {"customer": {"code": c.code, "is_active": c.is_active,
                                              "blocked_transactions": _blocked(c)},
                                 "order": {"action_status": order.action_status or ""}}}

        def mutate(ctx: Ctx) -> None:
            need(ctx, ctx.refs.order, "order").shipped = True
            ctx.effect(f"sales order {order_number} included on a packing list and shipped")

        return self.perform("salesorder.ship", user=user, target=f"order:{order_number}",
                            build=build, mutate=mutate)

    @operation("customer_ship_to.create")
    def create_customer_ship_to(self, customer_code: str, ship_to_code: str, *, user: str,
                                address: str = "") -> Applied:
        def build(ctx: Ctx) -> dict[str, Any]:
            self._customer(ctx, customer_code)
            return {"subject": {"name": ctx.user.name,
                                "permitted_functions": list(ctx.user.permitted_functions or [])},
                    "resource": {}}

        def mutate(ctx: Ctx) -> None:
            c = need(ctx, ctx.refs.customer, "customer")
            c.ship_tos.append(CustomerShipTo(code=ship_to_code, address=address))
            ctx.effect(f"ship-to {ship_to_code} created for {customer_code}")

        return self.perform("customer_ship_to.create", user=user, target=f"customer:{customer_code}",
                            build=build, mutate=mutate)

    @operation("customer.create")
    def create_customer(self, customer_code: str, *, user: str, name: str = "", **fields: Any) -> Applied:
        def build(ctx: Ctx) -> dict[str, Any]:
            return {"subject": {"name": ctx.user.name,
                                "has_financial_function_access": ctx.user.has_financial_function_access},
                    "resource": {"customer": {"code": customer_code}}}

        def mutate(ctx: Ctx) -> None:
            bad = set(fields) - FINANCIAL_FIELDS - {"sold_to_address"}
            if bad:
                raise ValueError(f"customer.create: unknown field(s) {sorted(bad)}")
            ctx.session.add(Customer(code=customer_code, name=name, is_set_up=True, **fields))
            ctx.effect(f"customer {customer_code} created and set up in AR")

        return self.perform("customer.create", user=user, target=f"customer:{customer_code}",
                            build=build, mutate=mutate)

    @operation("customer.update_financial_data")
    def update_customer_financial_data(self, customer_code: str, *, user: str, **fields: Any) -> Applied:
        def build(ctx: Ctx) -> dict[str, Any]:
            self._customer(ctx, customer_code)
            return {"subject": {"name": ctx.user.name,
                                "has_financial_function_access": ctx.user.has_financial_function_access},
                    "resource": {"customer": {"code": customer_code}}}

        def mutate(ctx: Ctx) -> None:
            changes = assign(need(ctx, ctx.refs.customer, "customer"), fields, FINANCIAL_FIELDS,
                             "customer.update_financial_data: {name} is not financial data")
            ctx.effect(f"customer {customer_code} financial data: {changes}")

        return self.perform("customer.update_financial_data", user=user,
                            target=f"customer:{customer_code}", build=build, mutate=mutate)

    @operation("customer_operational_data.create")
    def create_customer_operational_data(self, customer_code: str, *, user: str, **fields: Any) -> Applied:
        def build(ctx: Ctx) -> dict[str, Any]:
            c = self._customer(ctx, customer_code)
            return {"subject": {"name": ctx.user.name}, "resource": {"customer": {"is_set_up": c.is_set_up}}}

        def mutate(ctx: Ctx) -> None:
            c = need(ctx, ctx.refs.customer, "customer")
            assign(c, fields, OPERATIONAL_FIELDS, "customer_operational_data.create: {name} is not operational data")
            c.has_operational_data = True
            ctx.effect(f"operational data defined for {customer_code} (2.1.1)")

        return self.perform("customer_operational_data.create", user=user,
                            target=f"customer:{customer_code}", build=build, mutate=mutate)
