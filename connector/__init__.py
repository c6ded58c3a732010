"""The ERP connector: guarded order-to-cash mutations in an order book.

Every mutation builds its facts from the order book, asks for a decision (in process or from the
decision service), and then writes nothing (denied, error, unknown obligation, no decision) or
writes the mutation and all its obligations in one transaction with the decision id.
See docs/connector.md.
"""
from __future__ import annotations

from .api import Connector
from .decisions import (
                        ConnectorError,
                        DecisionClient,
                        DecisionResult,
                        DecisionUnavailable,
                        FactsChanged,
                        InProcessClient,
                        Obligation,
                        PolicyDenied,
                        RemoteClient,
                        UnsupportedObligation,
)
from .gate import Applied, ObligationFailed, Refs
from .obligations import HANDLERS, OBLIGATIONS, ORDER
from .orders import OrderBook

__all__ = [
    "Applied", "Connector", "ConnectorError", "DecisionClient", "DecisionResult", "DecisionUnavailable",
    "FactsChanged", "HANDLERS", "InProcessClient", "OBLIGATIONS", "ORDER", "Obligation", "ObligationFailed",
    "OrderBook", "PolicyDenied", "Refs", "RemoteClient", "UnsupportedObligation",
]
