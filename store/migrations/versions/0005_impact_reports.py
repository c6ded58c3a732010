"""impact reports: the hash of the impact report a version was published with

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29

`ordergate publish --impact-since` replays the decision log against the candidate before it is
stored; the hash of that report is kept here with the version (append-only, like the versions).
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "version_impact",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("version_id", sa.String(100), sa.ForeignKey("policy_versions.id"), nullable=False, index=True),
        sa.Column("report_hash", sa.String(80), nullable=False),
        sa.Column("risky_flips", sa.Integer(), nullable=False),
        sa.Column("since", sa.String(40), nullable=True),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
    )
    if op.get_context().dialect.name == "postgresql":
        op.execute("CREATE TRIGGER version_impact_append_only BEFORE UPDATE OR DELETE ON version_impact "
                   "FOR EACH ROW EXECUTE FUNCTION ordergate_append_only()")
    else:
        for operation in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER version_impact_no_{operation.lower()} BEFORE {operation} ON version_impact "
                       f"BEGIN SELECT RAISE(ABORT, 'ordergate: table version_impact is append-only "
                       f"({operation} refused)'); END")


def downgrade() -> None:
    op.drop_table("version_impact")
