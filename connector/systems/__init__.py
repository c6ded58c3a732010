"""Guarded mutations, one module per source system, one method per action of spec section 4."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..gate import Ctx
from ..orders import SystemSetting


def settings(ctx: Ctx, system: str | None = None) -> dict[str, Any]:
    """The configuration rows of a system, as ``{key: value}`` (absent keys are simply absent)."""
    rows = ctx.session.scalars(sa.select(SystemSetting).where(SystemSetting.system == (system or ctx.system)))
    return {row.key: row.value for row in rows}


def one(ctx: Ctx, model: type, what: str, **where: Any) -> Any:
    # FOR UPDATE: the facts read from this record stay true until the mutation commits
    # (PostgreSQL; SQLite transactions hold the write lock from their start, see orders.py)
    row = ctx.session.scalar(sa.select(model).filter_by(**where).with_for_update())
    if row is None:
        raise LookupError(f"{ctx.action}: no {what} with " + ", ".join(f"{k}={v!r}" for k, v in where.items()))
    return row


def drop_none(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}
