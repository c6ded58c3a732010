"""The connector facade: one object per source system over one gate."""
from __future__ import annotations

from typing import Mapping

from .decisions import DecisionClient
from .gate import Gate, Handler
from .obligations import HANDLERS, ORDER
from .store import Store
from .systems.autotask import Autotask
from .systems.d365_sales import D365Sales
from .systems.dynamics_ax import DynamicsAx
from .systems.qad_crm import QadCrm
from .systems.qad_erp import QadErp


class Connector:
    """Guarded mutations on ``store``, decided by ``client``.

    ``handlers`` adds or replaces obligation handlers (tests inject failures this way); a handler
    mapped to ``None`` is removed, so decisions carrying it are refused.
    """

    def __init__(self, store: Store, client: DecisionClient,
                 handlers: Mapping[str, Handler | None] | None = None) -> None:
        table = dict(HANDLERS)
        for name, fn in (handlers or {}).items():
            if fn is None:
                table.pop(name, None)
            else:
                table[name] = fn
        self.store = store
        self.gate = Gate(store, client, table, ORDER)
        self.d365_sales = D365Sales(self.gate)
        self.qad_crm = QadCrm(self.gate)
        self.autotask = Autotask(self.gate)
        self.qad_erp = QadErp(self.gate)
        self.dynamics_ax = DynamicsAx(self.gate)
