"""append-only guards on the decision log: `decisions` and `decision_rules` refuse UPDATE and
DELETE; `store_heads` refuses DELETE and any UPDATE that moves a head backwards or rewrites it

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

A stray statement or an application bug cannot edit or remove logged decisions. Someone with DDL
rights can still drop the triggers: the hash chain, checked by `ordergate audit verify`, is what
proves the log.
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

LOG_TABLES = ("decisions", "decision_rules")
# a head moves forward only: its sequence number grows, and at an unchanged number neither the
# chain hash nor the name changes
HEAD_BACKWARDS = ("NEW.name <> OLD.name OR NEW.seq < OLD.seq OR "
                  "(NEW.seq = OLD.seq AND (NEW.hash IS NOT OLD.hash))")


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        # ordergate_append_only() comes from revision 0002
        for table in LOG_TABLES:
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       f"FOR EACH ROW EXECUTE FUNCTION ordergate_append_only()")
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION ordergate_append_only()")
        op.execute("CREATE TRIGGER store_heads_no_delete BEFORE DELETE ON store_heads "
                   "FOR EACH ROW EXECUTE FUNCTION ordergate_append_only()")
        op.execute("CREATE TRIGGER store_heads_no_truncate BEFORE TRUNCATE ON store_heads "
                   "FOR EACH STATEMENT EXECUTE FUNCTION ordergate_append_only()")
        op.execute("CREATE TRIGGER store_heads_forward_only BEFORE UPDATE ON store_heads FOR EACH ROW "
                   f"WHEN ({HEAD_BACKWARDS.replace('IS NOT', 'IS DISTINCT FROM')}) "
                   "EXECUTE FUNCTION ordergate_append_only()")
    else:
        for table in LOG_TABLES:
            for operation in ("UPDATE", "DELETE"):
                op.execute(f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                           f"BEGIN SELECT RAISE(ABORT, 'ordergate: table {table} is append-only "
                           f"({operation} refused)'); END")
        op.execute("CREATE TRIGGER store_heads_no_delete BEFORE DELETE ON store_heads "
                   "BEGIN SELECT RAISE(ABORT, 'ordergate: table store_heads is append-only (DELETE refused)'); END")
        op.execute(f"CREATE TRIGGER store_heads_forward_only BEFORE UPDATE ON store_heads WHEN {HEAD_BACKWARDS} "
                   "BEGIN SELECT RAISE(ABORT, 'ordergate: a head of store_heads only moves forward "
                   "(UPDATE refused)'); END")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for table in LOG_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        for name in ("no_delete", "no_truncate", "forward_only"):
            op.execute(f"DROP TRIGGER IF EXISTS store_heads_{name} ON store_heads")
    else:
        for table in LOG_TABLES:
            for operation in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{operation}")
        for name in ("no_delete", "forward_only"):
            op.execute(f"DROP TRIGGER IF EXISTS store_heads_{name}")
