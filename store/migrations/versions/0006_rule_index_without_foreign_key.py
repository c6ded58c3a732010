"""the rule index without a foreign key: `decision_rules.seq` no longer references `decisions.seq`

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29

PostgreSQL checked the reference with a trigger for every rule row of every appended decision (a
look-up in `decisions` each: about 3 µs of the database's CPU a decision); SQLite with a look-up
too. The log writer inserts a decision's rule rows in the transaction that inserts the decision,
`decision_rules` refuses UPDATE and DELETE (revision 0004), and `ordergate audit verify` checks
the rule index of every entry against its logged result and reports a rule row beyond the chain
head, so the reference proved nothing the chain does not.

SQLite cannot drop a constraint: the table is copied into one without it, and its append-only
triggers are made again.
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_GUARDS = [f"CREATE TRIGGER decision_rules_no_{operation.lower()} BEFORE {operation} ON decision_rules "
           f"BEGIN SELECT RAISE(ABORT, 'ordergate: table decision_rules is append-only ({operation} refused)'); END"
           for operation in ("UPDATE", "DELETE")]


def _rebuild_sqlite(reference: str) -> None:
    op.execute("CREATE TABLE decision_rules_copy (rule_id VARCHAR(100) NOT NULL, seq INTEGER NOT NULL, "
               f"PRIMARY KEY (rule_id, seq){reference})")
    op.execute("INSERT INTO decision_rules_copy (rule_id, seq) SELECT rule_id, seq FROM decision_rules")
    op.execute("DROP TABLE decision_rules")  # its triggers go with it
    op.execute("ALTER TABLE decision_rules_copy RENAME TO decision_rules")
    for guard in _GUARDS:
        op.execute(guard)


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        names = op.get_bind().execute(sa.text(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'decision_rules'::regclass AND contype = 'f'"
        )).scalars().all()
        for name in names:
            op.drop_constraint(name, "decision_rules", type_="foreignkey")
    else:
        _rebuild_sqlite("")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.create_foreign_key("decision_rules_seq_fkey", "decision_rules", "decisions", ["seq"], ["seq"])
    else:
        _rebuild_sqlite(", FOREIGN KEY(seq) REFERENCES decisions (seq)")
