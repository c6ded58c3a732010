"""policy versions, activations, decision log with hash chain

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigInt = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "policy_versions",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("parent", sa.String(100), nullable=True),
        sa.Column("file_count", sa.Integer(), nullable=False),
    )
    op.create_table(
        "policy_files",
        sa.Column("version_id", sa.String(100), sa.ForeignKey("policy_versions.id"), primary_key=True),
        sa.Column("path", sa.String(500), primary_key=True),
        sa.Column("content", sa.Text(), nullable=False),
    )
    op.create_table(
        "activations",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("version_id", sa.String(100), sa.ForeignKey("policy_versions.id"), nullable=False),
        sa.Column("previous_version_id", sa.String(100), nullable=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("activated_at", sa.DateTime(), nullable=False),
    )
    heads = op.create_table(
        "store_heads",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("seq", BigInt, nullable=False),
        sa.Column("hash", sa.String(64), nullable=True),
        sa.Column("value", sa.String(100), nullable=True),
    )
    op.bulk_insert(heads, [
        {"name": "active", "seq": 0, "hash": None, "value": None},
        {"name": "decision_log", "seq": 0, "hash": "0" * 64, "value": None},
    ])
    op.create_table(
        "decisions",
        sa.Column("seq", BigInt, primary_key=True, autoincrement=False),
        sa.Column("decision_id", sa.String(64), nullable=False),
        sa.Column("time", sa.String(32), nullable=False),
        sa.Column("action", sa.String(200), nullable=False),
        sa.Column("allow", sa.Boolean(), nullable=False),
        sa.Column("policy_version", sa.String(100), nullable=True),
        sa.Column("input", sa.Text(), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("decision_id", name="uq_decisions_decision_id"),
    )
    op.create_index("ix_decisions_time", "decisions", ["time"])
    op.create_index("ix_decisions_action_seq", "decisions", ["action", "seq"])
    op.create_index("ix_decisions_version_seq", "decisions", ["policy_version", "seq"])
    op.create_table(
        "decision_rules",
        sa.Column("rule_id", sa.String(100), primary_key=True),
        sa.Column("seq", BigInt, sa.ForeignKey("decisions.seq"), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("decision_rules")
    op.drop_table("decisions")
    op.drop_table("store_heads")
    op.drop_table("activations")
    op.drop_table("policy_files")
    op.drop_table("policy_versions")
