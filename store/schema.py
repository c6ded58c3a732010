"""Table definitions (SQLAlchemy Core). The migrations in ``migrations/versions`` create them;
this module must describe the schema at the head revision."""
from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator

HEAD_ACTIVE = "active"          # value = active version id, seq = last activation id
HEAD_DECISIONS = "decision_log"  # seq = last decision seq, hash = its chain hash

BigInt = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UTCDateTime(TypeDecorator):
    """Stored as naive UTC (SQLite has no time zones), returned as an aware UTC datetime."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("UTCDateTime needs an aware datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):  # pragma: no cover - defensive
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData()

policy_versions = sa.Table(
    "policy_versions", metadata,
    sa.Column("id", sa.String(100), primary_key=True),
    sa.Column("author", sa.String(200), nullable=False),
    sa.Column("message", sa.Text(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("parent", sa.String(100), nullable=True),
    sa.Column("file_count", sa.Integer(), nullable=False),
)

policy_files = sa.Table(
    "policy_files", metadata,
    sa.Column("version_id", sa.String(100), sa.ForeignKey("policy_versions.id"), primary_key=True),
    sa.Column("path", sa.String(500), primary_key=True),
    sa.Column("content", sa.Text(), nullable=False),
)

activations = sa.Table(
    "activations", metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("version_id", sa.String(100), sa.ForeignKey("policy_versions.id"), nullable=False),
    sa.Column("previous_version_id", sa.String(100), nullable=True),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("activated_at", UTCDateTime(), nullable=False),
)

store_heads = sa.Table(
    "store_heads", metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("seq", BigInt, nullable=False),
    sa.Column("hash", sa.String(64), nullable=True),
    sa.Column("value", sa.String(100), nullable=True),
)

decisions = sa.Table(
    "decisions", metadata,
    sa.Column("seq", BigInt, primary_key=True, autoincrement=False),
    sa.Column("decision_id", sa.String(64), nullable=False, unique=True),
    sa.Column("time", sa.String(32), nullable=False),
    sa.Column("action", sa.String(200), nullable=False),
    sa.Column("allow", sa.Boolean(), nullable=False),
    sa.Column("policy_version", sa.String(100), nullable=True),
    sa.Column("input", sa.Text(), nullable=False),
    sa.Column("result", sa.Text(), nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("caller", sa.String(200), nullable=True),
    sa.Column("request_id", sa.String(200), nullable=True),
    sa.Index("ix_decisions_time_seq", "time", "seq"),
    sa.Index("ix_decisions_action_seq", "action", "seq"),
    sa.Index("ix_decisions_version_seq", "policy_version", "seq"),
    sa.Index("ix_decisions_caller_seq", "caller", "seq"),
    sa.Index("ix_decisions_request_id", "request_id"),
)

decision_rules = sa.Table(
    "decision_rules", metadata,
    sa.Column("rule_id", sa.String(100), primary_key=True),
    # no foreign key (migration 0006): the writer inserts a decision's rule rows with it, and
    # `audit verify` checks them against the logged result
    sa.Column("seq", BigInt, primary_key=True),
)

version_impact = sa.Table(
    "version_impact", metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("version_id", sa.String(100), sa.ForeignKey("policy_versions.id"), nullable=False, index=True),
    sa.Column("report_hash", sa.String(80), nullable=False),
    sa.Column("risky_flips", sa.Integer(), nullable=False),
    sa.Column("since", sa.String(40), nullable=True),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
)
