"""A finding: an error or a warning about rule files, at ``file:line:column``, in plain words.

Errors of the earlier stages (load, schema, compile) become findings with severity ``error``;
the verifier adds its own, some with a witness (a concrete input that shows the problem) and a
suggested table row.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import Location, PolicyError

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Finding:
    severity: str                      # error | warning
    code: str
    message: str
    location: Location | None = None
    help: str | None = None
    witness: dict[str, Any] | None = field(default=None, compare=False)    # fact -> value
    suggested: dict[str, Any] | None = field(default=None, compare=False)  # column -> cell of a row to add
    rules: tuple[str, ...] = ()        # the rule ids (rows) the finding names, in the order it names them

    @classmethod
    def from_error(cls, error: PolicyError) -> Finding:
        return cls(ERROR, error.code, error.message, error.location, error.help)

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        level = "warning: " if self.severity == WARNING else ""
        return f"{where}{level}{self.code}: {self.message}"

    def sort_key(self) -> tuple[Any, ...]:
        loc = self.location or Location("", 0, 0)
        return (loc.file, loc.line, loc.column, self.code, self.message)

    def render(self) -> str:
        return str(self) if not self.help else f"{self}\n    help: {self.help}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"severity": self.severity, "code": self.code, "message": self.message,
                               "location": str(self.location) if self.location else None, "help": self.help}
        if self.rules:
            out["rules"] = list(self.rules)
        if self.witness is not None:
            out["witness"] = self.witness
        if self.suggested is not None:
            out["suggested_row"] = self.suggested
        return out


def shown(values: dict[str, Any]) -> str:
    """``{status: draft, count: 10}`` as an analyst would write it."""
    return ", ".join(f"{k}: {value_text(v)}" for k, v in values.items())


def value_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "{" + shown(v) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(value_text(x) for x in v) + "]"
    return str(v)


def names(ids: Iterable[Any], limit: int = 5) -> str:
    ids = list(ids)
    out = ", ".join(f"`{i}`" for i in ids[:limit])
    return out if len(ids) <= limit else f"{out} and {len(ids) - limit} more"
