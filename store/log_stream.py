"""Reading the whole decision log in one pass, for replays over millions of decisions.

``query_decisions`` pages through the log for people; this streams it for the impact report:
one query, rows fetched in batches (a server-side cursor on PostgreSQL), only the columns a
replay needs, JSON decoded by orjson. Memory holds one batch.
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


def _decode(text: str) -> t.Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # integers beyond 64 bits: the standard library reads them
        return json.loads(text)


def stream_decisions(store: t.Any, *, since: t.Any = None, until: t.Any = None, action: str | None = None,
                     rule: str | None = None, after_seq: int = 0) -> t.Iterator[LoggedDecision]:
    """Every logged decision matching the filters, by seq (see ``Store.query_decisions``)."""
    wanted = [decisions.c.seq > after_seq]
    for value, clause in ((since, lambda v: decisions.c.time >= chain.normalize_time(v, "since")),
                          (until, lambda v: decisions.c.time < chain.normalize_time(v, "until")),
                          (action, lambda v: decisions.c.action == v),
                          (rule, lambda v: decisions.c.seq.in_(
                              sa.select(decision_rules.c.seq).where(decision_rules.c.rule_id == v)))):
        if value is not None:
            wanted.append(clause(value))
    q = sa.select(decisions.c.seq, decisions.c.decision_id, decisions.c.action, decisions.c.input,
                  decisions.c.result).where(*wanted)
    q = q.order_by(decisions.c.seq)
    try:
        with store.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(q)
            for rows in result.partitions():
                for seq, decision_id, act, text, outcome in rows:
                    yield LoggedDecision(int(seq), decision_id, act, _decode(text), _decode(outcome))
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"stream_decisions: database error: {str(exc).splitlines()[0]}") from exc
