"""Fact types: how a declared type checks request values (at decide time) and literals (at compile time)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

SCALAR_KINDS = frozenset({"boolean", "integer", "string", "enum"})


@dataclass(frozen=True)
class Scale:
    """An ordered status scale; values in one step share a rank."""

    name: str
    rank: dict[str, int]

    @property
    def values(self) -> list[str]:
        return list(self.rank)


@dataclass(frozen=True)
class TypeSpec:
    kind: str
    values: tuple = ()                 # enum values (from `values` or the scale)
    scale: Scale | None = None
    items: "TypeSpec | None" = None
    values_type: "TypeSpec | None" = None
    min: int | None = None
    max: int | None = None
    allow_empty: bool = False
    checker: Callable[[Any], bool] = field(default=None, compare=False, repr=False)

    def describe(self) -> str:
        if self.kind == "enum":
            return "one of " + ", ".join(f"`{v}`" for v in self.values)
        if self.kind == "list":
            return f"a list of {self.items.describe() if self.items else 'values'}"
        if self.kind == "map":
            return "a mapping"
        if self.kind == "object":
            return "an object"
        if self.kind == "integer":
            low = f" ≥ {self.min}" if self.min is not None else ""
            return f"a whole number{low}"
        if self.kind == "string":
            return "text" if self.allow_empty else "non-empty text"
        return "`true` or `false`"


def make_checker(spec: TypeSpec) -> Callable[[Any], bool]:
    """A fast predicate for request values of this type (JSON-decoded)."""
    kind = spec.kind
    if kind == "boolean":
        return lambda v: v is True or v is False
    if kind == "integer":
        lo, hi = spec.min, spec.max
        if lo is None and hi is None:
            return lambda v: type(v) is int
        lo = float("-inf") if lo is None else lo
        hi = float("inf") if hi is None else hi
        return lambda v: type(v) is int and lo <= v <= hi
    if kind == "string":
        if spec.allow_empty:
            return lambda v: type(v) is str
        return lambda v: type(v) is str and v != ""
    if kind == "enum":
        allowed = frozenset(spec.values)
        types = {type(x) for x in spec.values}
        if types == {str}:
            return lambda v: type(v) is str and v in allowed
        return lambda v: type(v) in types and v in allowed and not (type(v) is bool) ^ (bool in types)
    if kind == "list":
        item = spec.items.checker if spec.items else (lambda v: True)
        return lambda v: type(v) is list and all(item(x) for x in v)
    if kind == "map":
        inner = spec.values_type.checker if spec.values_type else (lambda v: True)
        return lambda v: type(v) is dict and all(type(k) is str and inner(x) for k, x in v.items())
    if kind == "object":
        return lambda v: type(v) is dict
    raise ValueError(kind)


def build(kind: str, **kw) -> TypeSpec:
    spec = TypeSpec(kind, **kw)
    object.__setattr__(spec, "checker", make_checker(spec))
    return spec
