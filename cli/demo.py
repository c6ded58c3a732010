"""``ordergate demo``: one end-to-end scenario per source system on a fresh SQLite order book."""
from __future__ import annotations

import datetime as dt
import functools
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


class _Narrator:
    def __init__(self, book: Any, says: dict[str, str]) -> None:
        self.book = book
        self.says = says  # rule id -> the rule's sentence: the story of each decision
        self.allowed = self.denied = 0

    def _because(self, rules: Any) -> None:
        for rid in rules:
            click.echo(f"    because {rid}: {self.says.get(rid, '(not in the local rules folder)')}")

    def section(self, title: str) -> None:
        click.echo("")
        click.secho(f"== {title} ==", bold=True)

    def step(self, label: str, fn: Callable[[], Any]) -> Any:
        from connector import ConnectorError, PolicyDenied

        click.echo(f"> {label}")
        before = self.book.snapshot()
        try:
            applied = fn()
        except PolicyDenied as exc:
            d = exc.decision
            same = self.book.snapshot() == before
            self.denied += 1
            click.secho(f"  decision: DENY  id: {d.decision_id}", fg="red")
            if d.rules:
                self._because(d.rules)
            else:
                click.echo(f"    error: {d.error}")
            click.echo(f"  order data unchanged: {'yes' if same else 'NO'} "
                       f"({sum(len(rows) for rows in before.values())} rows compared)")
            return None
        except ConnectorError as exc:
            click.secho(f"  no mutation: {exc}", fg="red")
            return None
        d = applied.decision
        self.allowed += 1
        click.secho(f"  decision: ALLOW  id: {d.decision_id}", fg="green")
        self._because(d.rules)
        obligations = [o.name + (f" {o.params}" if o.params else "") for o in d.obligations]
        click.echo(f"  obligations: {'; '.join(obligations) or '-'}")
        for effect in applied.effects:
            click.echo(f"    - {effect}")
        return applied


def _run(conn: Any, world: Any, n: _Narrator) -> None:
    from connector.reactions import Correlator

    crm, erp, d365, at, ax = conn.qad_crm, conn.qad_erp, conn.d365_sales, conn.autotask, conn.dynamics_ax

    n.section("QAD CRM -> QAD EA: advance to Order, hand over, invoices flow back")
    opp = world.qad_opportunity_id
    n.step("alice advances opportunity 'Acme pumps' from Enquiry to Order (customer not yet in ERP)",
           lambda: crm.advance_stage(opp, "order", user="alice"))
    n.step("alice edits the requested date in CRM after the handover",
           lambda: crm.update(opp, user="alice", fields={"requested_date": dt.date(2027, 1, 15)}))
    n.step("alice clicks Send to QAD ERP again", lambda: crm.send_to_erp(opp, user="alice"))
    with conn.book.session() as s:
        import sqlalchemy as sa

        from connector.orders import SalesOrder
        number = s.scalar(sa.select(SalesOrder.number).where(SalesOrder.opportunity_id == opp))
    with Correlator(conn) as cor:
        for event in ({"type": "line_shipped", "line_no": 1, "quantity": 4},
                      {"type": "line_invoiced", "line_no": 1, "quantity": 4},
                      {"type": "order_invoiced"},
                      {"type": "line_invoiced", "line_no": 2, "quantity": 10}):
            event = {"order": number, **event}
            desc = ", ".join(f"{k}={v}" for k, v in event.items() if k != "order")
            n.step(f"the ERP reports on {number}: {desc}",
                   functools.partial(cor.process, event))

    n.section("Dynamics 365 Sales: pricing and the submitted-order lock (SOP integration on)")
    oid = world.d365_order_id
    with conn.book.session() as s:
        from connector.orders import CrmSalesOrder
        line_id = s.get(CrmSalesOrder, oid).lines[0].id
    n.step("alice changes a line quantity to 3", lambda: d365.update("salesorder_line", line_id, user="alice",
                                                                     fields={"quantity": 3}))
    n.step("alice submits the order", lambda: d365.submit(oid, user="alice"))
    n.step("alice edits the submitted order", lambda: d365.update("salesorder_line", line_id, user="alice",
                                                                  fields={"quantity": 9}))
    n.step("the integration user edits it (back office sync)",
           lambda: d365.update("salesorder_line", line_id, user="integration", fields={"quantity": 5}))
    n.step("alice clicks Create Invoice", lambda: d365.create_invoice(oid, user="alice"))

    n.section("Autotask: sales orders only from the Won wizards")
    aopp = world.autotask_opportunity_id
    n.step("alice creates a sales order by hand", lambda: at.create_sales_order(aopp, user="alice"))
    n.step("alice runs the Won Quote Wizard", lambda: at.generate_sales_order(aopp, user="alice",
                                                                            wizard="won_quote_wizard"))
    n.step("alice runs it again on the closed opportunity",
           lambda: at.generate_sales_order(aopp, user="alice", wizard="won_quote_wizard"))

    n.section("QAD EA: customers, defaults, credit hold and blocking")
    n.step("alice enters an order for Northwind (no bill-to, no ship-to given)",
           lambda: erp.create_sales_order("10C1000", user="alice", lines=[{"item": "BOLT", "quantity": 5}]))
    held = n.step("alice enters an order billed to Northwind HQ (on credit hold) with a new ship-to",
                  lambda: erp.create_sales_order("10C1000", user="alice", bill_to="10C2000", ship_to="DOCK-7",
                                                 ship_to_address="7 Dock Rd"))
    if held is not None:
        n.step(f"alice ships {held.result}", lambda: erp.ship_sales_order(held.result, user="alice"))
    n.step("alice enters an order for Tailspin (blocked code NOORDER)",
           lambda: erp.create_sales_order("10C4000", user="alice"))
    n.step("bob (no 27.20.2.1) enters an order with a new ship-to",
           lambda: erp.create_sales_order("10C1000", user="bob", ship_to="NEW-9"))

    n.section("Dynamics AX: changing an original intercompany sales order")
    n.step("alice changes the quantity of line 1 of SO-AX-1 to 12",
           lambda: ax.update_line_quantity("SO-AX-1", 1, 12, user="alice"))
    n.step("alice changes the quantity of line 3 (bought from an external vendor) to 80",
           lambda: ax.update_line_quantity("SO-AX-1", 3, 80, user="alice"))
    n.step("alice enables direct delivery", lambda: ax.enable_direct_delivery("SO-AX-1", user="alice"))
    n.step("alice adds a header note", lambda: ax.create_note("SO-AX-1", "call before delivery", user="alice"))
    with conn.book.transaction() as s:
        import sqlalchemy as sa

        from connector.orders import SalesOrder
        s.scalar(sa.select(SalesOrder).where(SalesOrder.number == "SO-AX-1")).document_status = "picking_list"
    click.echo("  (the warehouse prints the picking list: SO-AX-1 is now at Picking list)")
    n.step("alice deletes SO-AX-1", lambda: ax.delete_sales_order("SO-AX-1", user="alice"))


@click.command()
@click.option("--database", "database", default=None, metavar="URL",
              help="SQLAlchemy URL of the order book (default: a fresh SQLite file in a temp folder)")
@click.option("--rules", "rules", default=None, type=click.Path(file_okay=False, exists=True),
              help="Rules folder for in-process decisions (default: ./rules when the current folder has one, "
                   "else the shipped policy set).")
@click.option("--service", default=None, metavar="URL",
              help="ask the decision service at URL (POST /v1/decisions) instead of deciding in process")
@click.option("--token", default=None, envvar="ORDERGATE_TOKEN", help="bearer token for --service")
def demo(database: str | None, rules: str | None, service: str | None, token: str | None) -> None:
    """Run one guarded order-to-cash scenario per source system, printing every decision and effect.

    \b
    Examples:
      ordergate demo
      ordergate demo --service http://127.0.0.1:8080 --token "$TOKEN"
    """
    import engine
    from cli.folders import rules_folder
    from connector import Connector, InProcessClient, OrderBook, RemoteClient
    from connector.sample import seed_all

    tmp = None
    if database is None:
        tmp = tempfile.TemporaryDirectory(prefix="ordergate-demo-")
        database = f"sqlite:///{Path(tmp.name) / 'orders.sqlite'}"
    book = OrderBook(database)
    try:
        if any(book.snapshot().values()):
            raise click.UsageError(f"the demo needs an empty order book; {database} has data")
        world = seed_all(book)
        folder = rules_folder(rules)
        policy = engine.load_policy_set(folder)  # decides in process; its sentences tell the story
        if service:
            client: Any = RemoteClient(service, token)
            click.echo(f"decisions: decision service at {service}")
        else:
            client = InProcessClient(policy)
            click.echo(f"decisions: in process, rules {folder} ({policy.version})")
        click.echo(f"order book: {database}")
        narrator = _Narrator(book, {r.id: r.says for r in policy.rules})
        _run(Connector(book, client), world, narrator)
        click.echo("")
        click.secho(f"{narrator.allowed} mutations applied, {narrator.denied} denied with the order data unchanged",
                    bold=True)
        if service:
            client.close()
    finally:
        book.dispose()
        if tmp is not None:
            tmp.cleanup()


def register(group: click.Group) -> None:
    group.add_command(demo)
