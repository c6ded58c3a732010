"""The order book: the CRM and ERP records the connector's guarded mutations touch.

Own metadata (``Base.metadata``); every table is prefixed ``crm_`` or ``erp_`` so it never clashes
with the service's tables when both live in one database. Amounts are integer cents and quantities
integers (no Decimal: SQLite has no native decimal type).

Every row that a guarded mutation creates or changes gets the mutation's ``decision_id`` (set by a
``before_flush`` hook from ``session.info["decision_id"]``); ``erp_applied_mutations`` keeps one row
per applied mutation with its decision, obligations and effects (deleted rows are named there).

Cross-company links (intercompany purchase order → original sales order, IC lines → original
lines) are plain columns without foreign keys: in AX they are references between companies, and an
external-vendor purchase order must never be touched by a change of the original order.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Self

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker


class Base(DeclarativeBase):
    """Declarative base with the connector's own metadata."""


# --------------------------------------------------------------------------- shared columns

def net_sum(lines: Iterable[PricedLine]) -> int:
    """The net amount of a document: the sum of its lines' net amounts."""
    return sum(line.net_cents for line in lines)


class Keyed:
    """A row with an integer surrogate key."""

    id: Mapped[int] = mapped_column(primary_key=True)


class Stamped:
    """A row that guarded mutations change: it carries the id of the decision that last did."""

    decision_id: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)


class PricedLine(Stamped):
    """A document line: item, quantity, unit price and net amount (quantity × unit price)."""

    line_no: Mapped[int] = mapped_column(sa.Integer)
    item: Mapped[str] = mapped_column(sa.String(40))
    quantity: Mapped[int] = mapped_column(sa.Integer, default=1)
    unit_price_cents: Mapped[int] = mapped_column(sa.Integer, default=0)
    net_cents: Mapped[int] = mapped_column(sa.Integer, default=0)

    def price(self) -> int:
        """Set and return the net amount from quantity and unit price."""
        self.net_cents = self.quantity * self.unit_price_cents
        return self.net_cents

    @classmethod
    def priced(cls, **fields: Any) -> Self:
        """A new line with its net amount computed."""
        line = cls(**fields)
        line.price()
        return line


class CrmPricedLine(PricedLine):
    """A CRM line, priced by the CRM's own price calculation (``computed`` or ``skipped``)."""

    price_status: Mapped[str | None] = mapped_column(sa.String(10), nullable=True)


class CrmPricedHeader(Stamped):
    """A CRM document whose total is the sum of its lines (D365 pricing)."""

    total_cents: Mapped[int] = mapped_column(sa.Integer, default=0)
    price_status: Mapped[str | None] = mapped_column(sa.String(10), nullable=True)   # computed | skipped

    if TYPE_CHECKING:
        lines: Sequence[CrmPricedLine]

    def price_total(self) -> int:
        self.total_cents = net_sum(self.lines)
        self.price_status = "computed"
        return self.total_cents


class NetDocument(Stamped):
    """An ERP document (sales order, purchase order, IC sales order) with its net amount."""

    net_cents: Mapped[int] = mapped_column(sa.Integer, default=0)

    if TYPE_CHECKING:
        lines: Sequence[PricedLine]

    def sum_net(self) -> int:
        self.net_cents = net_sum(self.lines)
        return self.net_cents


class Fulfilment:
    """Shipped and invoiced quantities reported by the ERP."""

    shipped_quantity: Mapped[int] = mapped_column(sa.Integer, default=0)
    invoiced_quantity: Mapped[int] = mapped_column(sa.Integer, default=0)


class RequestedDates:
    """Requested ship and receipt dates (Dynamics AX orders and their lines)."""

    requested_ship_date: Mapped[dt.date | None] = mapped_column(sa.Date, nullable=True)
    requested_receipt_date: Mapped[dt.date | None] = mapped_column(sa.Date, nullable=True)


class Delivery:
    """How an AX line is delivered: ``none`` or ``direct_delivery``, and where to."""

    delivery_type: Mapped[str] = mapped_column(sa.String(20), default="none")
    delivery_address: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)


class IntercompanyLine(PricedLine, Delivery):
    """A line of an intercompany document, derived from a line of the original order."""

    original_line_id: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    origin: Mapped[str] = mapped_column(sa.String(10), default="derived")             # derived | source
    line_status: Mapped[str] = mapped_column(sa.String(30), default="none")

    if TYPE_CHECKING:
        order: NetDocument    # the intercompany document the line belongs to


def _lines(line_class: str, back: str) -> Any:
    """The lines of a document in line order; a line removed from the list is deleted."""
    return relationship(back_populates=back, order_by=f"{line_class}.line_no", cascade="all, delete-orphan",
                        lazy="selectin")


# --------------------------------------------------------------------------- configuration

class SystemSetting(Stamped, Base):
    """Configuration of a source system (``context.organization`` / ``context.settings`` facts)."""
    __tablename__ = "crm_system_settings"
    system: Mapped[str] = mapped_column(sa.String(20), primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(60), primary_key=True)
    value: Mapped[Any] = mapped_column(sa.JSON, nullable=True)


class User(Stamped, Base):
    """The acting principal (``subject`` facts)."""
    __tablename__ = "crm_users"
    name: Mapped[str] = mapped_column(sa.String(60), primary_key=True)
    is_integration_user: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    permitted_functions: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    has_financial_function_access: Mapped[bool] = mapped_column(sa.Boolean, default=False)


# --------------------------------------------------------------------------- ERP customers (QAD)

class BlockedCode(Stamped, Base):
    """Blocked Transaction Maintenance (2.23.1): a code and the transactions it blocks."""
    __tablename__ = "erp_blocked_codes"
    code: Mapped[str] = mapped_column(sa.String(20), primary_key=True)
    transactions: Mapped[list[str]] = mapped_column(sa.JSON, default=list)


class Customer(Keyed, Stamped, Base):
    """A QAD EA customer (sold-to, bill-to or ship-to) with its financial and operational data."""
    __tablename__ = "erp_customers"
    code: Mapped[str] = mapped_column(sa.String(30), unique=True)
    name: Mapped[str] = mapped_column(sa.String(100), default="")
    sold_to_address: Mapped[str] = mapped_column(sa.String(200), default="")
    bill_to_address: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    ship_to_address: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    assigned_bill_to: Mapped[str | None] = mapped_column(sa.String(30), nullable=True)
    blocked_code: Mapped[str | None] = mapped_column(sa.ForeignKey("erp_blocked_codes.code"), nullable=True)
    credit_hold: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    has_operational_data: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    is_set_up: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    credit_terms: Mapped[str | None] = mapped_column(sa.String(20), nullable=True)
    currency: Mapped[str | None] = mapped_column(sa.String(3), nullable=True)
    credit_limit_cents: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    language: Mapped[str | None] = mapped_column(sa.String(10), nullable=True)
    taxable: Mapped[bool | None] = mapped_column(sa.Boolean, nullable=True)

    blocked: Mapped[BlockedCode | None] = relationship(lazy="selectin")
    ship_tos: Mapped[list[CustomerShipTo]] = relationship(
        back_populates="customer", order_by="CustomerShipTo.code", cascade="all, delete-orphan", lazy="selectin")


class CustomerShipTo(Keyed, Stamped, Base):
    """A ship-to address of a customer (Customer Ship-To Maintenance)."""
    __tablename__ = "erp_customer_ship_tos"
    customer_id: Mapped[int] = mapped_column(sa.ForeignKey("erp_customers.id"))
    code: Mapped[str] = mapped_column(sa.String(30))
    address: Mapped[str] = mapped_column(sa.String(200), default="")
    customer: Mapped[Customer] = relationship(back_populates="ship_tos", lazy="selectin")
    __table_args__ = (sa.UniqueConstraint("customer_id", "code"),)


class SalesQuoteTemplate(Stamped, Base):
    """QAD CRM sales quote template of a domain: fields not maintained on the opportunity."""
    __tablename__ = "erp_sales_quote_templates"
    # one per QAD domain; the template `default` serves an opportunity without a domain of its own
    domain: Mapped[str] = mapped_column(sa.String(20), primary_key=True)
    site: Mapped[str] = mapped_column(sa.String(20))
    credit_terms: Mapped[str] = mapped_column(sa.String(20))
    currency: Mapped[str] = mapped_column(sa.String(3))


# --------------------------------------------------------------------------- CRM

class Account(Keyed, Stamped, Base):
    """A CRM profile (QAD CRM / Autotask / D365 account); linked to its ERP customer by code."""
    __tablename__ = "crm_accounts"
    name: Mapped[str] = mapped_column(sa.String(100))
    address: Mapped[str] = mapped_column(sa.String(200), default="")
    erp_customer_code: Mapped[str | None] = mapped_column(sa.String(30), nullable=True)


class Opportunity(Keyed, CrmPricedHeader, Fulfilment, Base):
    """A CRM opportunity (QAD CRM, Autotask, Dynamics 365 Sales)."""
    __tablename__ = "crm_opportunities"
    system: Mapped[str] = mapped_column(sa.String(20))
    name: Mapped[str] = mapped_column(sa.String(100))
    account_id: Mapped[int | None] = mapped_column(sa.ForeignKey("crm_accounts.id"), nullable=True)
    domain: Mapped[str | None] = mapped_column(sa.String(20), nullable=True)
    stage: Mapped[str | None] = mapped_column(sa.String(30), nullable=True)          # qad_crm
    status: Mapped[str | None] = mapped_column(sa.String(30), nullable=True)         # autotask
    order_sent_to_erp: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    sales_order_previously_generated: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    reference: Mapped[str | None] = mapped_column(sa.String(40), nullable=True)
    requested_date: Mapped[dt.date | None] = mapped_column(sa.Date, nullable=True)
    description: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    site: Mapped[str | None] = mapped_column(sa.String(20), nullable=True)
    credit_terms: Mapped[str | None] = mapped_column(sa.String(20), nullable=True)
    currency: Mapped[str | None] = mapped_column(sa.String(3), nullable=True)

    account: Mapped[Account | None] = relationship(lazy="selectin")
    lines: Mapped[list[OpportunityLine]] = _lines("OpportunityLine", "opportunity")
    quotes: Mapped[list[Quote]] = relationship(
        back_populates="opportunity", order_by="Quote.id", cascade="all, delete-orphan", lazy="selectin")


class OpportunityLine(Keyed, CrmPricedLine, Fulfilment, Base):
    """A line of an opportunity: its price, selection for the ERP order and ERP quantities."""
    __tablename__ = "crm_opportunity_lines"
    opportunity_id: Mapped[int] = mapped_column(sa.ForeignKey("crm_opportunities.id"))
    selected: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    opportunity: Mapped[Opportunity] = relationship(back_populates="lines", lazy="selectin")


class Quote(Keyed, CrmPricedHeader, Base):
    """A CRM quote (Dynamics 365 Sales, Autotask)."""
    __tablename__ = "crm_quotes"
    opportunity_id: Mapped[int | None] = mapped_column(sa.ForeignKey("crm_opportunities.id"), nullable=True)
    name: Mapped[str] = mapped_column(sa.String(100), default="")
    is_primary: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    opportunity: Mapped[Opportunity | None] = relationship(back_populates="quotes", lazy="selectin")
    lines: Mapped[list[QuoteLine]] = _lines("QuoteLine", "quote")


class QuoteLine(Keyed, CrmPricedLine, Base):
    """A line of a quote; Autotask converts its product lines into sales order lines."""
    __tablename__ = "crm_quote_lines"
    quote_id: Mapped[int] = mapped_column(sa.ForeignKey("crm_quotes.id"))
    item_type: Mapped[str] = mapped_column(sa.String(20), default="product")  # product | service | ...
    converted_to_billing_item: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    quote: Mapped[Quote] = relationship(back_populates="lines", lazy="selectin")


class CrmSalesOrder(Keyed, CrmPricedHeader, Base):
    """A CRM-side sales order (Dynamics 365 Sales ``salesorder``, Autotask sales order)."""
    __tablename__ = "crm_sales_orders"
    system: Mapped[str] = mapped_column(sa.String(20))
    name: Mapped[str] = mapped_column(sa.String(100), default="")
    opportunity_id: Mapped[int | None] = mapped_column(sa.ForeignKey("crm_opportunities.id"), nullable=True)
    quote_id: Mapped[int | None] = mapped_column(sa.ForeignKey("crm_quotes.id"), nullable=True)
    statecode: Mapped[str] = mapped_column(sa.String(20), default="active")
    statuscode: Mapped[str | None] = mapped_column(sa.String(20), nullable=True)
    read_only: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    created_by_integration_user: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    submitted_by_integration_user: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    lines: Mapped[list[CrmSalesOrderLine]] = _lines("CrmSalesOrderLine", "order")


class CrmSalesOrderLine(Keyed, CrmPricedLine, Base):
    """A line of a CRM-side sales order."""
    __tablename__ = "crm_sales_order_lines"
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("crm_sales_orders.id"))
    order: Mapped[CrmSalesOrder] = relationship(back_populates="lines", lazy="selectin")


class Invoice(Keyed, CrmPricedHeader, Base):
    """A Dynamics 365 Sales invoice, created from a sales order."""
    __tablename__ = "crm_invoices"
    name: Mapped[str] = mapped_column(sa.String(100), default="")
    lines: Mapped[list[InvoiceLine]] = _lines("InvoiceLine", "invoice")
    sales_order_id: Mapped[int | None] = mapped_column(sa.ForeignKey("crm_sales_orders.id"), nullable=True)


class InvoiceLine(Keyed, CrmPricedLine, Base):
    """A line of an invoice, copied from its sales order line."""
    __tablename__ = "crm_invoice_lines"
    invoice: Mapped[Invoice] = relationship(back_populates="lines", lazy="selectin")
    invoice_id: Mapped[int] = mapped_column(sa.ForeignKey("crm_invoices.id"))


# --------------------------------------------------------------------------- ERP orders

class ErpSalesQuote(Keyed, Stamped, Base):
    """A QAD EA sales quote created from a QAD CRM opportunity."""
    __tablename__ = "erp_sales_quotes"
    number: Mapped[str | None] = mapped_column(sa.String(30), unique=True, nullable=True)
    customer_code: Mapped[str] = mapped_column(sa.String(30))
    opportunity_id: Mapped[int | None] = mapped_column(sa.ForeignKey("crm_opportunities.id"), nullable=True)
    line_items: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)


class SalesOrder(Keyed, NetDocument, RequestedDates, Base):
    """An ERP sales order (QAD EA, Dynamics AX original order)."""
    __tablename__ = "erp_sales_orders"
    system: Mapped[str] = mapped_column(sa.String(20))
    number: Mapped[str | None] = mapped_column(sa.String(30), unique=True, nullable=True)
    customer_code: Mapped[str | None] = mapped_column(sa.String(30), nullable=True)   # sold-to
    opportunity_id: Mapped[int | None] = mapped_column(sa.ForeignKey("crm_opportunities.id"), nullable=True)
    bill_to: Mapped[str | None] = mapped_column(sa.String(30), nullable=True)
    ship_to: Mapped[str | None] = mapped_column(sa.String(30), nullable=True)
    ship_to_address: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    site: Mapped[str | None] = mapped_column(sa.String(20), nullable=True)
    credit_terms: Mapped[str | None] = mapped_column(sa.String(20), nullable=True)
    currency: Mapped[str | None] = mapped_column(sa.String(3), nullable=True)
    language: Mapped[str | None] = mapped_column(sa.String(10), nullable=True)
    taxable: Mapped[bool | None] = mapped_column(sa.Boolean, nullable=True)
    tax_source: Mapped[str | None] = mapped_column(sa.String(10), nullable=True)
    action_status: Mapped[str] = mapped_column(sa.String(10), default="")
    shipped: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    erp_invoiced: Mapped[bool] = mapped_column(sa.Boolean, default=False)              # ERP "order invoiced" event seen
    invoice_status: Mapped[str] = mapped_column(sa.String(20), default="not_invoiced")
    requested_date: Mapped[dt.date | None] = mapped_column(sa.Date, nullable=True)
    # Dynamics AX intercompany
    is_intercompany_original: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    document_status: Mapped[str] = mapped_column(sa.String(20), default="none")
    direct_delivery: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    delivery_address: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    lines: Mapped[list[SalesOrderLine]] = _lines("SalesOrderLine", "order")


class SalesOrderLine(Keyed, PricedLine, Fulfilment, Delivery, RequestedDates, Base):
    """A line of an ERP sales order; AX lines may be linked to a purchase order line."""
    __tablename__ = "erp_sales_order_lines"
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("erp_sales_orders.id"))
    crm_line_id: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)      # CRM opportunity line
    linked_po_line_id: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)  # AX purchase line
    order: Mapped[SalesOrder] = relationship(back_populates="lines", lazy="selectin")


class PurchaseOrder(Keyed, NetDocument, Base):
    """An AX purchase order: ``vendor_type`` intercompany (the chain) or external_vendor."""
    __tablename__ = "erp_purchase_orders"
    number: Mapped[str] = mapped_column(sa.String(30), unique=True)
    vendor_type: Mapped[str] = mapped_column(sa.String(20))
    vendor: Mapped[str] = mapped_column(sa.String(40), default="")
    original_sales_order_number: Mapped[str | None] = mapped_column(sa.String(30), nullable=True)
    standard_delivery_address: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    delivery_address: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    delivery_date: Mapped[dt.date | None] = mapped_column(sa.Date, nullable=True)
    lines: Mapped[list[PurchaseOrderLine]] = _lines("PurchaseOrderLine", "order")


class PurchaseOrderLine(Keyed, IntercompanyLine, Base):
    """A line of an AX purchase order."""
    __tablename__ = "erp_purchase_order_lines"
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("erp_purchase_orders.id"))
    delivery_date: Mapped[dt.date | None] = mapped_column(sa.Date, nullable=True)
    order: Mapped[PurchaseOrder] = relationship(back_populates="lines", lazy="selectin")


class IntercompanySalesOrder(Keyed, NetDocument, RequestedDates, Base):
    """The sales order of the vendor company of the chain (mirrors the intercompany PO)."""
    __tablename__ = "erp_intercompany_sales_orders"
    number: Mapped[str] = mapped_column(sa.String(30), unique=True)
    original_sales_order_number: Mapped[str | None] = mapped_column(sa.String(30), nullable=True)
    purchase_order_number: Mapped[str | None] = mapped_column(sa.String(30), nullable=True)
    delivery_address: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    lines: Mapped[list[IntercompanySalesOrderLine]] = _lines("IntercompanySalesOrderLine", "order")


class IntercompanySalesOrderLine(Keyed, IntercompanyLine, RequestedDates, Base):
    """A line of the intercompany sales order."""
    __tablename__ = "erp_intercompany_sales_order_lines"
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("erp_intercompany_sales_orders.id"))
    order: Mapped[IntercompanySalesOrder] = relationship(back_populates="lines", lazy="selectin")


class Note(Keyed, Stamped, Base):
    """A note on a document (header or line); copies on IC documents point at their source note."""
    __tablename__ = "erp_notes"
    # sales_order | purchase_order | intercompany_sales_order
    document_type: Mapped[str] = mapped_column(sa.String(30))
    document_number: Mapped[str] = mapped_column(sa.String(30))
    line_no: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    attached_to: Mapped[str] = mapped_column(sa.String(10), default="header")
    text: Mapped[str] = mapped_column(sa.Text)
    source_note_id: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)


# --------------------------------------------------------------------------- audit

class AppliedMutation(Keyed, Base):
    """One row per applied guarded mutation: the decision that allowed it and what it did."""
    __tablename__ = "erp_applied_mutations"
    decision_id: Mapped[str] = mapped_column(sa.String(40), index=True)
    policy_version: Mapped[str | None] = mapped_column(sa.String(80), nullable=True)
    rules: Mapped[list[str]] = mapped_column(sa.JSON)
    system: Mapped[str] = mapped_column(sa.String(20))
    action: Mapped[str] = mapped_column(sa.String(60))
    target: Mapped[str] = mapped_column(sa.String(100))
    obligations: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON)
    effects: Mapped[list[str]] = mapped_column(sa.JSON)


@event.listens_for(Session, "before_flush")
def _stamp_decision_id(session: Session, flush_context: Any, instances: Any) -> None:
    decision_id = session.info.get("decision_id")
    if not decision_id:
        return
    for obj in list(session.new) + list(session.dirty):
        # only the connector's own rows (the hook sees every Session in the process)
        if isinstance(obj, Stamped):
            if obj in session.dirty and not session.is_modified(obj, include_collections=False):
                continue
            obj.decision_id = decision_id


# --------------------------------------------------------------------------- the order book

_READING = "ordergate_reading"


def _serialize_sqlite_writers(engine: sa.Engine) -> None:
    """Begin every SQLite writing transaction with BEGIN IMMEDIATE, and reading ones with BEGIN.

    A guarded mutation reads its facts, asks for a decision, then writes: the facts must not change
    in between. PostgreSQL gets that from ``SELECT ... FOR UPDATE`` on the records the facts come
    from; SQLite ignores FOR UPDATE and pysqlite would only BEGIN at the first write, so a writing
    transaction takes SQLite's write lock up front instead (the SQLAlchemy pysqlite recipe). The
    facts are first read in a reading transaction (no write lock), the decision is made with no
    transaction open, and the writing transaction re-reads them (see connector/gate.py).
    """
    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection: Any, connection_record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(_READING) else "BEGIN IMMEDIATE")


class OrderBook:
    """An order book on one database URL (SQLite file by default, PostgreSQL by URL)."""

    def __init__(self, url: str, *, create: bool = True, **engine_kw: Any) -> None:
        self.url = url
        if url in ("sqlite://", "sqlite:///:memory:") and not engine_kw:
            # one shared in-memory database for every thread (the correlator runs on its own)
            engine_kw = {"poolclass": sa.pool.StaticPool, "connect_args": {"check_same_thread": False}}
        self.engine = sa.create_engine(url, **engine_kw)
        if self.engine.dialect.name == "sqlite":
            _serialize_sqlite_writers(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._readers = sessionmaker(self.engine.execution_options(**{_READING: True}), expire_on_commit=False)
        if create:
            Base.metadata.create_all(self.engine)

    def session(self) -> Session:
        return self._sessions()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits at the end of the block, or rolls back on any exception."""
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for reading only: on SQLite it takes no write lock; its transaction ends with the block."""
        with self._readers() as session, session.begin():
            yield session

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every connector table, ordered by primary key (for before/after comparisons)."""
        out: dict[str, list[tuple[Any, ...]]] = {}
        with self.engine.connect() as conn:
            for table in Base.metadata.sorted_tables:
                order = list(table.primary_key.columns)
                out[table.name] = [tuple(row) for row in conn.execute(sa.select(table).order_by(*order))]
        return out

    def dispose(self) -> None:
        self.engine.dispose()
