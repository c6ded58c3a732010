"""The impact report a version was published with: its hash, its DENY→ALLOW count and window."""
from __future__ import annotations

import typing as t
from datetime import UTC, datetime

import sqlalchemy as sa

from . import chain
from .errors import StoreError
from .schema import version_impact


def record_impact(conn: sa.Connection, version_id: str, impact: t.Mapping[str, t.Any]) -> None:
    """Keep the hash of the report ``version_id`` is published with (append-only), on the publishing
    transaction's connection: the version never goes live without it."""
    conn.execute(version_impact.insert().values(
        version_id=version_id, report_hash=str(impact["hash"]), risky_flips=int(impact["risky_flips"]),
        since=impact.get("since"), recorded_at=datetime.now(UTC)))


def impact_reports(store: t.Any) -> dict[str, dict[str, t.Any]]:
    """The latest recorded report of every version that has one: version id -> report summary."""
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(sa.select(version_impact).order_by(version_impact.c.id)).all()
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"impact_reports: database error: {str(exc).splitlines()[0]}") from exc
    return {r.version_id: {"hash": r.report_hash, "risky_flips": r.risky_flips, "since": r.since,
                           "recorded_at": chain.format_time(r.recorded_at)} for r in rows}
