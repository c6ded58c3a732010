"""The order book's tables are exactly the ones databases already hold.

``fixtures/connector/schema.json`` was written from the ORM models before they were rewritten
with mixins; the models must still produce the same tables (columns with their types, nullability,
keys, client-side defaults; constraints; indexes) on SQLite and PostgreSQL. Column order is not
compared: rows are read by column name.
"""
from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateIndex, CreateTable

SCHEMA = Path(__file__).parent / "fixtures" / "connector" / "schema.json"


def _default(column: sa.Column) -> str | None:
    if column.default is None:
        return None
    arg = column.default.arg  # type: ignore[attr-defined]
    return getattr(arg, "__name__", None) if callable(arg) else repr(arg)


def describe(metadata: sa.MetaData) -> dict:
    """Every table as DDL lines (sorted) per dialect, plus the client-side default of each column."""
    out: dict = {}
    for table in sorted(metadata.tables.values(), key=lambda t: t.name):
        entry: dict = {"defaults": {c.name: _default(c) for c in sorted(table.columns, key=lambda c: c.name)}}
        for name, dialect in (("sqlite", sqlite.dialect()), ("postgresql", postgresql.dialect())):
            ddl = str(CreateTable(table).compile(dialect=dialect))
            lines = sorted(line.strip().rstrip(",") for line in ddl.strip().splitlines() if line.strip())
            indexes = sorted(str(CreateIndex(ix).compile(dialect=dialect)) for ix in table.indexes)
            entry[name] = lines + indexes
        out[table.name] = entry
    return out


def test_the_models_give_the_tables_databases_already_have():
    from connector.orders import Base

    assert describe(Base.metadata) == json.loads(SCHEMA.read_text())
