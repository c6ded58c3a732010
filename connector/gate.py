"""The gate: decide, then write nothing or write everything in one transaction.

``Gate.perform`` is the only way the connector mutates the order book:

1. read the action's facts from the order book (``build``) in a transaction that takes no write
   lock and ends before the decision is asked for;
2. ask the :class:`~connector.decisions.DecisionClient` while no transaction is open, so a slow or
   remote decision holds no lock (on SQLite a write lock is database-wide);
3. deny, decision error, or an obligation without a handler → raise (nothing written);
4. open the writing transaction (SQLite ``BEGIN IMMEDIATE``; on PostgreSQL the records are read
   ``FOR UPDATE``) and read the facts again: if they changed while the decision was made, leave it
   and decide again on the new facts (at most ``rounds`` times, then :class:`FactsChanged`);
5. otherwise run the mutation, then every obligation (in a fixed dependency order), then the
   deferred steps (deletions, replication), stamp the decision id on every changed row, add the
   ``erp_applied_mutations`` row, and commit. Any exception on the way rolls everything back.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from .decisions import DecisionClient, DecisionResult, FactsChanged, Obligation, PolicyDenied, UnsupportedObligation
from .orders import (
    Account,
    AppliedMutation,
    CrmPricedHeader,
    CrmPricedLine,
    CrmSalesOrder,
    Customer,
    ErpSalesQuote,
    IntercompanyLine,
    Note,
    Opportunity,
    OrderBook,
    Quote,
    SalesOrder,
    SalesOrderLine,
    User,
)

Handler = Callable[["Ctx", dict[str, Any]], None]
Build = Callable[["Ctx"], dict[str, Any]]
Mutate = Callable[["Ctx"], Any]
T = TypeVar("T")


class ObligationFailed(RuntimeError):
    """An obligation could not be carried out (the whole mutation rolls back)."""


@dataclass(slots=True)
class Refs:
    """The records a mutation read its facts from, for the mutation and its obligations.

    The fact builder of an operation sets the ones it has; an obligation that needs one the
    mutation does not have fails (:func:`need`) and the mutation rolls back.
    """

    # CRM
    opportunity: Opportunity | None = None
    account: Account | None = None
    quote: Quote | None = None                    # Autotask: the quote the wizard converts
    crm_order: CrmSalesOrder | None = None
    priced_line: CrmPricedLine | None = None      # Dynamics 365 Sales: the line to price
    priced_header: CrmPricedHeader | None = None  # ... and the header whose total to price
    line_action: bool = False                     # the action is on a line, not on its header
    record: Any = None                            # the entity record an update or delete acts on
    # ERP
    customer: Customer | None = None
    order: SalesOrder | None = None               # the ERP sales order acted on (QAD EA, Dynamics AX)
    line: SalesOrderLine | None = None
    note: Note | None = None
    ic_line: IntercompanyLine | None = None       # a line of an intercompany PO or SO itself
    ship_to_address: str | None = None
    erp_order: SalesOrder | None = None           # the ERP order of a CRM opportunity (QAD CRM)
    erp_quote: ErpSalesQuote | None = None


@dataclass
class Ctx:
    """What a mutation and its obligation handlers share inside one transaction."""

    session: Session
    system: str
    action: str
    user: User
    refs: Refs = field(default_factory=Refs)
    effects: list[str] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)
    decision: DecisionResult | None = None
    _after: list[Callable[[], None]] = field(default_factory=list)

    def effect(self, text: str) -> None:
        self.effects.append(text)

    def after(self, step: Callable[[], None]) -> None:
        """Run ``step`` after every obligation (deletions, replication that obligations may suppress)."""
        self._after.append(step)


def need(ctx: Ctx, value: T | None, name: str) -> T:
    """``value`` (a field of ``ctx.refs``), or :class:`ObligationFailed` when the mutation has none."""
    if value is None:
        raise ObligationFailed(f"{ctx.action}: needs `{name}`, which this mutation does not have")
    return value


@dataclass(frozen=True)
class Applied:
    """The outcome of an applied guarded mutation."""

    action: str
    system: str
    target: str
    decision: DecisionResult
    effects: tuple[str, ...]
    result: Any = None


class Gate:
    """Decides and applies guarded mutations on one order book (see the module docstring)."""

    def __init__(self, book: OrderBook, client: DecisionClient, handlers: Mapping[str, Handler],
                 order: tuple[str, ...], *, rounds: int = 3) -> None:
        self.book = book
        self.client = client
        self.handlers = dict(handlers)
        self.rounds = rounds
        self._rank = {name: i for i, name in enumerate(order)}

    def perform(self, system: str, action: str, *, user: str, target: str, build: Build,
                mutate: Mutate) -> Applied:
        with self.book.reading() as session:
            request = self._facts(session, system, action, user, build)[1]
        for _ in range(self.rounds):
            decision = self._decide(action, request)
            with self.book.transaction() as session:
                ctx, facts = self._facts(session, system, action, user, build)
                if facts == request:
                    return self._apply(ctx, decision, target, mutate)
            request = facts   # changed while deciding: decide again, on the facts as they are now
        raise FactsChanged(f"{action}: the facts of {target} changed while each of {self.rounds} decisions "
                           "was made; nothing was written")

    @staticmethod
    def _facts(session: Session, system: str, action: str, user: str, build: Build) -> tuple[Ctx, dict[str, Any]]:
        actor = session.get(User, user)
        if actor is None:
            raise LookupError(f"unknown user {user!r}")
        ctx = Ctx(session=session, system=system, action=action, user=actor)
        request = build(ctx)
        request.setdefault("context", {})["system"] = system
        return ctx, request

    def _decide(self, action: str, request: dict[str, Any]) -> DecisionResult:
        decision = self.client.decide(action, request)
        if not decision.permits:
            raise PolicyDenied(action, decision)
        missing = [o.name for o in decision.obligations if o.name not in self.handlers]
        if missing:
            raise UnsupportedObligation(action, missing, decision)
        return decision

    def _apply(self, ctx: Ctx, decision: DecisionResult, target: str, mutate: Mutate) -> Applied:
        session = ctx.session
        ctx.decision = decision
        session.info["decision_id"] = decision.decision_id
        try:
            result = mutate(ctx)
            for ob in self._ordered(decision.obligations):
                self.handlers[ob.name](ctx, dict(ob.params))
            for step in ctx._after:
                step()
            session.add(AppliedMutation(
                decision_id=decision.decision_id, system=ctx.system, action=ctx.action, target=target,
                policy_version=decision.policy_version, rules=list(decision.rules),
                obligations=[o.to_dict() for o in decision.obligations], effects=list(ctx.effects)))
            session.flush()
        finally:
            session.info.pop("decision_id", None)
        return Applied(ctx.action, ctx.system, target, decision, tuple(ctx.effects), result)

    def _ordered(self, obligations: tuple[Obligation, ...]) -> list[Obligation]:
        # Obligations come as an unordered union (spec 2.3); some depend on others (the ERP
        # customer before the ERP order, the order before its reference, addresses before they
        # are propagated, quantities before net amounts), so they run in one fixed order.
        return sorted(obligations, key=lambda o: self._rank.get(o.name, len(self._rank)))
