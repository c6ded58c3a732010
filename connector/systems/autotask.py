"""Autotask (``autotask``): sales orders come only from the Won Opportunity / Won Quote wizards (spec 6.2)."""
from __future__ import annotations

from typing import Any

from ..gate import Applied, Ctx
from ..orders import CrmSalesOrder, Opportunity, Quote
from . import SourceSystem, one, operation, settings

SYSTEM = "autotask"
WIZARD_OPTIONS = ("activate_proposal_project", "create_recurring_service_contract", "create_post_sale_ticket",
                  "convert_products_to_charges")


class Autotask(SourceSystem):
    system = SYSTEM

    @operation("salesorder.generate")
    def generate_sales_order(self, opportunity_id: int, *, user: str, wizard: str,
                             quote_id: int | None = None, wizard_options: dict[str, Any] | None = None) -> Applied:
        """The sales order the wizard creates when it closes the opportunity (``salesorder.generate``)."""
        def build(ctx: Ctx) -> dict[str, Any]:
            opp = one(ctx, Opportunity, "opportunity", id=opportunity_id, system=SYSTEM)
            ctx.refs.opportunity = opp
            quote: Quote | None
            if quote_id is not None:
                quote = one(ctx, Quote, "quote", id=quote_id, opportunity_id=opp.id)
            else:
                quote = next((q for q in opp.quotes if q.is_primary), None) or (opp.quotes[0] if opp.quotes else None)
            ctx.refs.quote = quote
            resource: dict[str, Any] = {"opportunity": {
                "status": opp.status,
                "has_associated_quote": quote is not None,
                "sales_order_previously_generated": opp.sales_order_previously_generated,
            }}
            if quote is not None:
                resource["quote"] = {
                    "product_item_count": len([ln for ln in quote.lines if ln.item_type == "product"]),
                    "has_items_converted_to_billing_items": any(ln.converted_to_billing_item for ln in quote.lines),
                    "is_primary": quote.is_primary,
                }
            if wizard_options is not None:
                resource["wizard_options"] = {k: wizard_options.get(k) for k in WIZARD_OPTIONS}
            conf = settings(ctx)
            return {"subject": {"name": ctx.user.name}, "resource": resource,
                    "context": {"wizard": wizard, "settings": {"procurement_enabled": conf.get("procurement_enabled")}}}

        def mutate(ctx: Ctx) -> None:
            ctx.effect(f"{wizard} completed for opportunity {opportunity_id}")

        return self.perform("salesorder.generate", user=user, target=f"opportunity:{opportunity_id}",
                            build=build, mutate=mutate)

    @operation("salesorder.create")
    def create_sales_order(self, opportunity_id: int, *, user: str) -> Applied:
        """A manual sales order (``salesorder.create``): the shipped rules always deny it (STG-31)."""
        def build(ctx: Ctx) -> dict[str, Any]:
            ctx.refs.opportunity = one(ctx, Opportunity, "opportunity", id=opportunity_id, system=SYSTEM)
            return {"subject": {"name": ctx.user.name}, "resource": {}, "context": {}}

        def mutate(ctx: Ctx) -> int:
            order = CrmSalesOrder(system=SYSTEM, name="manual", opportunity_id=opportunity_id)
            ctx.session.add(order)
            ctx.session.flush()
            ctx.refs.crm_order = order
            ctx.effect(f"sales order {order.id} created manually")
            return order.id

        return self.perform("salesorder.create", user=user, target=f"opportunity:{opportunity_id}",
                            build=build, mutate=mutate)
