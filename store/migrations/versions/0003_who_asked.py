"""who asked: the caller's name and request id of every logged decision; time-ordered paging

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

Both columns are covered by the hash chain when present; entries logged before this revision have
neither and verify as they did. The time index gains seq, so a time-ranged query pages by
(time, seq) without re-reading the range for every page.
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.add_column(sa.Column("caller", sa.String(200), nullable=True))
        batch.add_column(sa.Column("request_id", sa.String(200), nullable=True))
    op.create_index("ix_decisions_caller_seq", "decisions", ["caller", "seq"])
    op.create_index("ix_decisions_request_id", "decisions", ["request_id"])
    op.drop_index("ix_decisions_time", table_name="decisions")
    op.create_index("ix_decisions_time_seq", "decisions", ["time", "seq"])


def downgrade() -> None:
    op.drop_index("ix_decisions_time_seq", table_name="decisions")
    op.create_index("ix_decisions_time", "decisions", ["time"])
    op.drop_index("ix_decisions_request_id", table_name="decisions")
    op.drop_index("ix_decisions_caller_seq", table_name="decisions")
    with op.batch_alter_table("decisions") as batch:
        batch.drop_column("request_id")
        batch.drop_column("caller")
