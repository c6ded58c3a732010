"""Adding a source system, as docs/connector.md "Adding a source system" says: a toy sixth system
(a point of sale that puts ERP orders on hold) with its rules as a fixture policy, its operation
registered with the connector, and a guarded mutation allowed and denied end to end."""
from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

import engine
from connector import Applied, Connector, InProcessClient, OrderBook, PolicyDenied
from connector.api import SYSTEMS, catalogue
from connector.gate import Ctx
from connector.orders import AppliedMutation, SalesOrder, User
from connector.systems import SourceSystem, one, operation

POLICY = Path(__file__).parent / "fixtures" / "connector" / "toy_pos"


class ToyPos(SourceSystem):
    """The toy system: one operation, one action of its catalogue."""

    system = "toy_pos"

    @operation("salesorder.hold")
    def hold(self, order_number: str, *, user: str) -> Applied:
        def build(ctx: Ctx) -> dict:
            order = one(ctx, SalesOrder, "sales order", number=order_number)
            ctx.refs.order = order
            return {"subject": {"name": ctx.user.name}, "resource": {"order": {"shipped": order.shipped}}}

        def mutate(ctx: Ctx) -> None:
            ctx.effect(f"sales order {order_number} held at the point of sale")

        return self.perform("salesorder.hold", user=user, target=f"order:{order_number}", build=build,
                            mutate=mutate)


@pytest.fixture
def policy():
    return engine.load_policy_set(POLICY)


@pytest.fixture
def book(db_url):
    b = OrderBook(db_url)
    with b.transaction() as s:
        s.add(User(name="clerk"))
        s.add_all([SalesOrder(system="qad_erp", number="SO-OPEN"),
                   SalesOrder(system="qad_erp", number="SO-SHIPPED", shipped=True)])
    yield b
    b.dispose()


def _order(book, number):
    with book.session() as s:
        return s.scalar(sa.select(SalesOrder).where(SalesOrder.number == number))


def test_the_new_systems_catalogue_is_its_registered_operations(policy):
    assert catalogue([ToyPos]) == {"toy_pos": {"salesorder.hold": "toy_pos.hold"}}
    assert {s: set(a) for s, a in catalogue([ToyPos]).items()} == {s: set(a) for s, a in policy.catalogue.items()}
    assert ToyPos not in SYSTEMS     # registered with one connector only, not with every connector


def test_a_guarded_mutation_of_the_new_system_is_allowed_and_applied(book, policy):
    conn = Connector(book, InProcessClient(policy), systems=[ToyPos])
    applied = conn.system(ToyPos).hold("SO-OPEN", user="clerk")
    assert applied.decision.rules == ("POS-2",)
    order = _order(book, "SO-OPEN")
    assert order.action_status == "HD"                       # the obligation was carried out
    assert order.decision_id == applied.decision.decision_id
    with book.session() as s:
        row = s.scalar(sa.select(AppliedMutation).where(AppliedMutation.decision_id == applied.decision.decision_id))
        assert (row.system, row.action, row.target) == ("toy_pos", "salesorder.hold", "order:SO-OPEN")


def test_a_guarded_mutation_of_the_new_system_is_denied_and_writes_nothing(book, policy):
    conn = Connector(book, InProcessClient(policy), systems=[ToyPos])
    before = book.snapshot()
    with pytest.raises(PolicyDenied) as denied:
        conn.system(ToyPos).hold("SO-SHIPPED", user="clerk")
    assert denied.value.decision.rules == ("POS-1",)
    assert book.snapshot() == before


def test_an_action_without_a_registered_operation_is_refused(book, policy):
    conn = Connector(book, InProcessClient(policy), systems=[ToyPos])
    with pytest.raises(LookupError, match="not a registered operation"):
        conn.system(ToyPos).perform("salesorder.teleport", user="clerk", target="-", build=lambda ctx: {},
                                    mutate=lambda ctx: None)


def test_a_system_is_registered_once(book, policy):
    with pytest.raises(ValueError, match="registered twice"):
        Connector(book, InProcessClient(policy), systems=[ToyPos, ToyPos])
