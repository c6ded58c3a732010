"""One error model for every stage: load, schema and compile errors of rule files.

An error reads ``file:line:column: code: message``; advice lives apart in ``help`` (Cedar's
style guide: lowercase, no final period, one line, user values in backticks). Codes are stable
snake-case strings prefixed by the stage that found them (``load_``, ``schema_``, ``compile_``,
``test_``).
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

#: a message or help longer than this is cut (a rule file may quote a value of any size)
MAX_MESSAGE = 1000
#: errors kept in one PolicyErrors; the rest are counted in a last error
MAX_ERRORS = 200


class Location(NamedTuple):
    """A position in a rule file; line and column are 1-based."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class Locates(Protocol):
    def at(self, path: tuple[Any, ...], *, key: bool = False) -> Location: ...


class SourceRef(NamedTuple):
    """Where a part of a rule file was written, kept as its path in the file's documents: its
    ``Location`` is looked up when read (a table has thousands of rows, whose locations are read
    for an error, a finding or a link to one of them, and looking each up costs microseconds)."""

    source: Locates
    path: tuple[Any, ...]

    @property
    def location(self) -> Location:
        return self.source.at(self.path)


@dataclass(frozen=True)
class PolicyError:
    """One problem found in a rule or test file."""

    code: str
    message: str
    location: Location | None = None
    help: str | None = None

    def __post_init__(self) -> None:
        for name in ("message", "help"):
            text = getattr(self, name)
            if text is not None and len(text) > MAX_MESSAGE:
                object.__setattr__(self, name, text[:MAX_MESSAGE] + " ... (cut)")

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        return f"{where}{self.code}: {self.message}"

    def sort_key(self) -> tuple[str, int, int, str, str]:
        loc = self.location or Location("", 0, 0)
        return (loc.file, loc.line, loc.column, self.code, self.message)

    def to_dict(self) -> dict[str, str | None]:
        return {
            "code": self.code,
            "message": self.message,
            "location": str(self.location) if self.location else None,
            "help": self.help,
        }

    def render(self) -> str:
        """The error and, on a second line, its help (for people at a terminal)."""
        return str(self) if not self.help else f"{self}\n    help: {self.help}"


class PolicyErrors(Exception):
    """Raised when rule files cannot be used; carries every problem found, sorted."""

    def __init__(self, errors: Iterable[PolicyError]):
        unique = {(e.sort_key(), e.help): e for e in errors}
        ordered = sorted(unique.values(), key=PolicyError.sort_key)
        if not ordered:
            raise ValueError("PolicyErrors needs at least one error")
        if len(ordered) > MAX_ERRORS:
            rest = len(ordered) - MAX_ERRORS + 1
            ordered[MAX_ERRORS - 1:] = [PolicyError(
                "too_many_errors", f"{rest:,} more errors are not shown", ordered[MAX_ERRORS - 1].location,
                "fix the errors above and check again")]
        self.errors: tuple[PolicyError, ...] = tuple(ordered)
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(e.render() for e in self.errors)

    def to_list(self) -> list[dict[str, str | None]]:
        return [e.to_dict() for e in self.errors]


def did_you_mean(word: object, candidates: Iterable[str]) -> str | None:
    """A ``did you mean `x`?`` hint when a close candidate exists."""
    if not isinstance(word, str):
        return None
    matches = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean `{matches[0]}`?" if matches else None
