"""The connector facade: one object per source system over one gate.

``SYSTEMS`` registers the source systems; the catalogue of actions the connector performs
(``ACTIONS``) is derived from their operations.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar, cast

from .decisions import DecisionClient
from .gate import Gate, Handler
from .obligations import HANDLERS, ORDER
from .orders import OrderBook
from .systems import SourceSystem
from .systems.autotask import Autotask
from .systems.d365_sales import D365Sales
from .systems.dynamics_ax import DynamicsAx
from .systems.qad_crm import QadCrm
from .systems.qad_erp import QadErp

S = TypeVar("S", bound=SourceSystem)

#: the source systems the connector serves
SYSTEMS: tuple[type[SourceSystem], ...] = (D365Sales, QadCrm, Autotask, QadErp, DynamicsAx)


def catalogue(systems: Iterable[type[SourceSystem]] = SYSTEMS) -> dict[str, dict[str, str]]:
    """system -> action -> the connector operation (``system.method``) that performs it."""
    return {cls.system: {action: f"{cls.system}.{method}" for action, method in cls.operations.items()}
            for cls in systems}


ACTIONS: dict[str, dict[str, str]] = catalogue()


class Connector:
    """Guarded mutations on ``book``, decided by ``client``.

    ``handlers`` adds or replaces obligation handlers (tests inject failures this way); a handler
    mapped to ``None`` is removed, so decisions carrying it are refused. ``systems`` adds source
    systems beyond ``SYSTEMS`` (reach them with :meth:`system`).
    """

    def __init__(self, book: OrderBook, client: DecisionClient,
                 handlers: Mapping[str, Handler | None] | None = None,
                 systems: Iterable[type[SourceSystem]] = ()) -> None:
        table = dict(HANDLERS)
        for name, fn in (handlers or {}).items():
            if fn is None:
                table.pop(name, None)
            else:
                table[name] = fn
        self.book = book
        self.gate = Gate(book, client, table, ORDER)
        self.systems: dict[str, SourceSystem] = {}
        for cls in (*SYSTEMS, *systems):
            if cls.system in self.systems:
                raise ValueError(f"source system {cls.system!r} is registered twice")
            self.systems[cls.system] = cls(self.gate)
        self.d365_sales = self.system(D365Sales)
        self.qad_crm = self.system(QadCrm)
        self.autotask = self.system(Autotask)
        self.qad_erp = self.system(QadErp)
        self.dynamics_ax = self.system(DynamicsAx)

    def system(self, cls: type[S]) -> S:
        """The operations of source system ``cls`` on this connector."""
        return cast(S, self.systems[cls.system])
