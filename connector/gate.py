"""The gate: decide, then write nothing or write everything in one transaction.

``Gate.perform`` is the only way the connector mutates the order book:

1. open a transaction and build the action's facts from the order book (``build``);
2. ask the :class:`~connector.decisions.DecisionClient`;
3. deny, decision error, or an obligation without a handler → roll back and raise (nothing written);
4. otherwise run the mutation, then every obligation (in a fixed dependency order), then the
   deferred steps (deletions, replication), stamp the decision id on every changed row, add the
   ``erp_applied_mutations`` row, and commit. Any exception on the way rolls everything back.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from sqlalchemy.orm import Session

from .decisions import DecisionClient, DecisionResult, Obligation, PolicyDenied, UnsupportedObligation
from .orders import AppliedMutation, OrderBook, User

Handler = Callable[["Ctx", dict], None]


@dataclass
class Ctx:
    """What a mutation and its obligation handlers share inside one transaction."""

    session: Session
    system: str
    action: str
    user: User
    refs: dict[str, Any] = field(default_factory=dict)
    effects: list[str] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)
    decision: DecisionResult | None = None
    _after: list[Callable[[], None]] = field(default_factory=list)

    def effect(self, text: str) -> None:
        self.effects.append(text)

    def after(self, step: Callable[[], None]) -> None:
        """Run ``step`` after every obligation (deletions, replication that obligations may suppress)."""
        self._after.append(step)


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
    def __init__(self, book: OrderBook, client: DecisionClient, handlers: Mapping[str, Handler],
                 order: tuple[str, ...]) -> None:
        self.book = book
        self.client = client
        self.handlers = dict(handlers)
        self._rank = {name: i for i, name in enumerate(order)}

    def perform(self, system: str, action: str, *, user: str, target: str,
                build: Callable[[Ctx], dict], mutate: Callable[[Ctx], Any]) -> Applied:
        with self.book.session() as session:
            with session.begin():
                actor = session.get(User, user)
                if actor is None:
                    raise LookupError(f"unknown user {user!r}")
                ctx = Ctx(session=session, system=system, action=action, user=actor)
                request = build(ctx)
                request.setdefault("context", {})["system"] = system
                decision = self.client.decide(action, request)
                ctx.decision = decision
                if not decision.permits:
                    raise PolicyDenied(action, decision)
                missing = [o.name for o in decision.obligations if o.name not in self.handlers]
                if missing:
                    raise UnsupportedObligation(action, missing, decision)

                session.info["decision_id"] = decision.decision_id
                try:
                    result = mutate(ctx)
                    for ob in self._ordered(decision.obligations):
                        self.handlers[ob.name](ctx, dict(ob.params))
                    for step in ctx._after:
                        step()
                    session.add(AppliedMutation(
                        decision_id=decision.decision_id, system=system, action=action, target=target,
                        policy_version=decision.policy_version, rules=list(decision.rules),
                        obligations=[o.to_dict() for o in decision.obligations], effects=list(ctx.effects)))
                    session.flush()
                finally:
                    session.info.pop("decision_id", None)
        return Applied(action, system, target, decision, tuple(ctx.effects), result)

    def _ordered(self, obligations: tuple[Obligation, ...]) -> list[Obligation]:
        # Obligations come as an unordered union (spec 2.3); some depend on others (the ERP
        # customer before the ERP order, the order before its reference, addresses before they
        # are propagated, quantities before net amounts), so they run in one fixed order.
        return sorted(obligations, key=lambda o: self._rank.get(o.name, len(self._rank)))
