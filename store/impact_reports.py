"""The impact report a version was published with: its hash, its DENY→ALLOW count and window."""
from __future__ import annotations

import typing as t
from datetime import UTC, datetime

import sqlalchemy as sa

from . import chain
from .errors import StoreError
from .schema import version_impact


def record_impact(store: t.Any, version_id: str, *, report_hash: str, risky_flips: int, since: str | None) -> None:
    """Keep the hash of the report ``version_id`` was published with (append-only)."""
    try:
        with store.engine.begin() as conn:
            conn.execute(version_impact.insert().values(
                version_id=version_id, report_hash=report_hash, risky_flips=risky_flips, since=since,
                recorded_at=datetime.now(UTC)))
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"record_impact: database error: {str(exc).splitlines()[0]}") from exc


def impact_reports(store: t.Any) -> dict[str, dict[str, t.Any]]:
    """The latest recorded report of every version that has one: version id -> report summary."""
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(sa.select(version_impact).order_by(version_impact.c.id)).all()
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"impact_reports: database error: {str(exc).splitlines()[0]}") from exc
    return {r.version_id: {"hash": r.report_hash, "risky_flips": r.risky_flips, "since": r.since,
                           "recorded_at": chain.format_time(r.recorded_at)} for r in rows}
