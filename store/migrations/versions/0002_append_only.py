"""append-only guards: policy versions, their files and the activation history refuse UPDATE and DELETE

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

Versions are immutable and activations an append-only history: an application bug or a stray
manual statement cannot edit them. (Someone with DDL rights can still drop a trigger.) The decision
log is protected by its hash chain; `ordergate audit verify` is what proves it.
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

GUARDED = ("policy_versions", "policy_files", "activations")


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION ordergate_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'ordergate: table % is append-only (% refused)', TG_TABLE_NAME, TG_OP;
            END $$""")
        for table in GUARDED:
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       f"FOR EACH ROW EXECUTE FUNCTION ordergate_append_only()")
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION ordergate_append_only()")
    else:
        for table in GUARDED:
            for operation in ("UPDATE", "DELETE"):
                op.execute(f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                           f"BEGIN SELECT RAISE(ABORT, 'ordergate: table {table} is append-only "
                           f"({operation} refused)'); END")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for table in GUARDED:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute("DROP FUNCTION IF EXISTS ordergate_append_only()")
    else:
        for table in GUARDED:
            for operation in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{operation}")
