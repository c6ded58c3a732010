"""Guarded mutations, one module per source system, one method per action of the catalogue.

A source system is a :class:`SourceSystem` subclass naming its ``system`` and marking each method
that performs catalogue actions with :func:`operation`; ``operations`` (action -> method) is
collected from those marks, and the connector's catalogue (``connector.api.ACTIONS``) from the
registered systems.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import sqlalchemy as sa

from ..gate import Applied, Build, Ctx, Gate, Mutate
from ..orders import SystemSetting

F = TypeVar("F", bound=Callable[..., Applied])
_MARK = "__ordergate_actions__"


def operation(*actions: str) -> Callable[[F], F]:
    """Mark a :class:`SourceSystem` method as the one that performs ``actions``."""
    def mark(fn: F) -> F:
        setattr(fn, _MARK, actions)
        return fn
    return mark


class SourceSystem:
    """The guarded mutations of one source system, all through one gate."""

    system: ClassVar[str]
    operations: ClassVar[dict[str, str]] = {}     # catalogue action -> method name

    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        operations: dict[str, str] = {}
        for name, member in vars(cls).items():
            for action in getattr(member, _MARK, ()):
                if action in operations:
                    raise TypeError(f"{cls.__name__}: action {action!r} is performed by both "
                                    f"{operations[action]} and {name}")
                operations[action] = name
        cls.operations = operations

    def perform(self, action: str, *, user: str, target: str, build: Build, mutate: Mutate) -> Applied:
        """Decide and apply ``action`` (one of this system's registered operations)."""
        if action not in self.operations:
            raise LookupError(f"{self.system}: {action!r} is not a registered operation")
        return self.gate.perform(self.system, action, user=user, target=target, build=build, mutate=mutate)


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


def assign(record: Any, fields: dict[str, Any], allowed: set[str], refusal: str) -> str:
    """Set ``fields`` on ``record`` and describe them (``k=v, ...``); a field not in ``allowed`` is
    refused first, with ``refusal`` formatted with its ``name``."""
    for name in fields:
        if name not in allowed:
            raise ValueError(refusal.format(name=repr(name)))
    for name, value in fields.items():
        setattr(record, name, value)
    return ", ".join(f"{k}={v}" for k, v in fields.items())
