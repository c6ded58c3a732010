"""What a decision is: allowed or not, the obligations that come with it, the rules that decided,
the error when it could not be made. Immutable values, shared by the generated code and callers."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple


class ReadOnlyList(list):  # type: ignore[type-arg]
    """A list in a decision: reads like a list (equality, JSON, repr), refuses every change."""

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("a decision is read-only; use Decision.to_dict() for a copy to change")

    append = extend = insert = pop = remove = clear = sort = reverse = _refuse
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse

    def __reduce__(self) -> tuple[Any, ...]:  # copies and pickles are plain lists
        return (list, (list(self),))


class ReadOnlyDict(dict):  # type: ignore[type-arg]
    """A mapping in a decision: reads like a dict (equality, JSON, repr), refuses every change."""

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("a decision is read-only; use Decision.to_dict() for a copy to change")

    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self) -> tuple[Any, ...]:  # copies and pickles are plain dicts
        return (dict, (dict(self),))


def read_only(value: Any) -> Any:
    """A deep read-only image of a JSON value (obligation parameters, trace records)."""
    if isinstance(value, dict):
        return ReadOnlyDict({k: read_only(v) for k, v in value.items()})
    if isinstance(value, list):
        return ReadOnlyList([read_only(v) for v in value])
    return value


def thawed(value: Any) -> Any:
    """A fresh, changeable deep copy of a JSON value."""
    if isinstance(value, dict):
        return {k: thawed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [thawed(v) for v in value]
    return value


DecideFn = Callable[[Any, "list[dict[str, Any]] | None"], "Decision"]


class Obligation(NamedTuple):
    """An obligation of a decision; its ``params`` are read-only (see ``read_only``)."""

    name: str
    params: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": thawed(self.params) if self.params else {}}


class DecisionError(NamedTuple):
    code: str
    field: str | None
    message: str

    def to_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "field": self.field, "message": self.message}


class Decision(NamedTuple):
    """The answer to one request. Immutable."""

    allow: bool
    obligations: tuple[Obligation, ...]
    rules: tuple[str, ...]
    error: DecisionError | None
    policy_version: str
    trace: tuple[dict[str, Any], ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        # made for every answer, so built with the fewest calls: Obligation.to_dict and
        # DecisionError.to_dict inline, and no comprehension (a function call) for the one
        # obligation most decisions carry
        allow, obligations, rules, error, version, trace = self
        if not obligations:
            obs: list[dict[str, Any]] = []
        elif len(obligations) == 1:
            (name, params), = obligations
            obs = [{"name": name, "params": thawed(params) if params else {}}]
        else:
            obs = [{"name": o.name, "params": thawed(o.params) if o.params else {}} for o in obligations]
        out: dict[str, Any] = {
            "allow": allow,
            "obligations": obs,
            "rules": [*rules],
            "error": None if error is None else {"code": error.code, "field": error.field, "message": error.message},
            "policy_version": version,
        }
        if trace is not None:
            out["trace"] = thawed([*trace])
        return out


def freeze(value: Any) -> Any:
    """A hashable image of a JSON value, for de-duplicating obligations."""
    if isinstance(value, dict):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(freeze(v) for v in value)
    return (type(value).__name__, value)


