"""Reading the whole decision log in one pass, for replays over millions of decisions.

``query_decisions`` pages through the log for people; this streams it for the impact report:
one query through the database driver's own cursor (a server-side cursor on PostgreSQL), rows
fetched in batches as plain tuples, only the columns a replay needs. ``stream_entries`` gives the
input and result as their stored JSON text (equal requests have equal text: a replay can decide
each once); ``stream_decisions`` decodes them (orjson). Memory holds one batch.
"""
from __future__ import annotations

import json
import typing as t

import orjson
import sqlalchemy as sa

from . import chain
from .errors import StoreError
from .schema import decision_rules, decisions

BATCH = 5000


class LoggedDecision(t.NamedTuple):
    seq: int
    decision_id: str
    action: str
    input: t.Any
    result: dict[str, t.Any]


def decode(text: str) -> t.Any:
    """A stored JSON text as a value."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # integers beyond 64 bits: the standard library reads them
        return json.loads(text)


class LoggedEntry(t.NamedTuple):
    seq: int
    decision_id: str
    action: str
    input_json: str
    result_json: str


def stream_entries(store: t.Any, *, since: t.Any = None, until: t.Any = None, action: str | None = None,
                   rule: str | None = None, after_seq: int = 0) -> t.Iterator[LoggedEntry]:
    """Every logged entry matching the filters, by seq, input and result undecoded (see
    ``Store.query_decisions`` for the filters)."""
    wanted = [decisions.c.seq > after_seq]
    for value, clause in ((since, lambda v: decisions.c.time >= chain.normalize_time(v, "since")),
                          (until, lambda v: decisions.c.time < chain.normalize_time(v, "until")),
                          (action, lambda v: decisions.c.action == v),
                          (rule, lambda v: decisions.c.seq.in_(
                              sa.select(decision_rules.c.seq).where(decision_rules.c.rule_id == v)))):
        if value is not None:
            wanted.append(clause(value))
    q = sa.select(decisions.c.seq, decisions.c.decision_id, decisions.c.action, decisions.c.input,
                  decisions.c.result).where(*wanted).order_by(decisions.c.seq)
    driver_error = store.engine.dialect.dbapi.Error     # the driver's own cursor raises its own errors
    try:
        with store.engine.connect() as conn:
            compiled = q.compile(dialect=conn.dialect)
            params: t.Any = compiled.params
            if compiled.positiontup is not None:        # qmark (SQLite): the values in order
                params = [params[name] for name in compiled.positiontup]
            raw = conn.connection.driver_connection
            assert raw is not None
            # PostgreSQL: a named (server-side) cursor, so the rows are not all sent at once
            cursor = raw.cursor(name="ordergate_log_stream") if conn.dialect.name == "postgresql" else raw.cursor()
            try:
                cursor.execute(str(compiled), params)
                while rows := cursor.fetchmany(BATCH):
                    for row in rows:
                        yield LoggedEntry._make(row)
            finally:
                cursor.close()
    except (sa.exc.SQLAlchemyError, driver_error) as exc:
        raise StoreError(f"stream_entries: database error: {str(exc).splitlines()[0]}") from exc


def stream_decisions(store: t.Any, **filters: t.Any) -> t.Iterator[LoggedDecision]:
    """Every logged decision matching the filters, by seq, input and result decoded."""
    for seq, decision_id, act, text, outcome in stream_entries(store, **filters):
        yield LoggedDecision(int(seq), decision_id, act, decode(text), decode(outcome))
