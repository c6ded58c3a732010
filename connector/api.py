"""The connector facade: one object per source system over one gate."""
from __future__ import annotations

from typing import Mapping

from .decisions import DecisionClient
from .gate import Gate, Handler
from .obligations import HANDLERS, ORDER
from .orders import OrderBook
from .systems.autotask import Autotask
from .systems.d365_sales import D365Sales
from .systems.dynamics_ax import DynamicsAx
from .systems.qad_crm import QadCrm
from .systems.qad_erp import QadErp


D365_ENTITIES = ("opportunity", "quote", "salesorder", "invoice",
                 "opportunity_line", "quote_line", "salesorder_line", "invoice_line")

#: system -> action -> the connector operation that performs it (spec section 4)
ACTIONS: dict[str, dict[str, str]] = {
    "d365_sales": {
        **{f"{e}.{op}": f"d365_sales.{op}({e!r}, ...)" for e in D365_ENTITIES
           for op in ("create", "update", "delete", "recalculate")},
        "salesorder.submit": "d365_sales.submit",
        "salesorder.create_invoice": "d365_sales.create_invoice",
    },
    "qad_crm": {
        "opportunity.advance_stage": "qad_crm.advance_stage",
        "opportunity.send_to_erp": "qad_crm.send_to_erp",
        "opportunity.update": "qad_crm.update",
        "opportunity.apply_erp_update": "qad_crm.apply_erp_update",
    },
    "autotask": {
        "salesorder.generate": "autotask.generate_sales_order",
        "salesorder.create": "autotask.create_sales_order",
    },
    "qad_erp": {
        "customer.select_for_order": "qad_erp.select_customer_for_order",
        "salesorder.create": "qad_erp.create_sales_order",
        "salesorder.ship": "qad_erp.ship_sales_order",
        "customer_ship_to.create": "qad_erp.create_customer_ship_to",
        "customer.create": "qad_erp.create_customer",
        "customer.update_financial_data": "qad_erp.update_customer_financial_data",
        "customer_operational_data.create": "qad_erp.create_customer_operational_data",
    },
    "dynamics_ax": {
        "salesorder.delete": "dynamics_ax.delete_sales_order",
        "salesorder_line.delete": "dynamics_ax.delete_sales_order_line",
        "salesorder_line.create": "dynamics_ax.create_sales_order_line",
        "salesorder_line.update_quantity": "dynamics_ax.update_line_quantity",
        "salesorder.enable_direct_delivery": "dynamics_ax.enable_direct_delivery",
        "salesorder.disable_direct_delivery": "dynamics_ax.disable_direct_delivery",
        "salesorder_note.create": "dynamics_ax.create_note",
        "salesorder_note.update": "dynamics_ax.update_note",
        "salesorder_note.delete": "dynamics_ax.delete_note",
        "intercompany_order_line.delete": "dynamics_ax.delete_intercompany_line",
        "intercompany_order_line.update_quantity": "dynamics_ax.update_intercompany_line_quantity",
    },
}


class Connector:
    """Guarded mutations on ``book``, decided by ``client``.

    ``handlers`` adds or replaces obligation handlers (tests inject failures this way); a handler
    mapped to ``None`` is removed, so decisions carrying it are refused.
    """

    def __init__(self, book: OrderBook, client: DecisionClient,
                 handlers: Mapping[str, Handler | None] | None = None) -> None:
        table = dict(HANDLERS)
        for name, fn in (handlers or {}).items():
            if fn is None:
                table.pop(name, None)
            else:
                table[name] = fn
        self.book = book
        self.gate = Gate(book, client, table, ORDER)
        self.d365_sales = D365Sales(self.gate)
        self.qad_crm = QadCrm(self.gate)
        self.autotask = Autotask(self.gate)
        self.qad_erp = QadErp(self.gate)
        self.dynamics_ax = DynamicsAx(self.gate)
