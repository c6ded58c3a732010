"""What a decision is: allowed or not, the obligations that come with it, the rules that decided,
the error when it could not be made. Immutable values, shared by the generated code and callers."""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

DecideFn = Callable[[Any, "list[dict[str, Any]] | None"], "Decision"]


class Obligation(NamedTuple):
    name: str
    params: dict

    def to_dict(self) -> dict:
        return {"name": self.name, "params": self.params}


class DecisionError(NamedTuple):
    code: str
    field: str | None
    message: str

    def to_dict(self) -> dict:
        return {"code": self.code, "field": self.field, "message": self.message}


class Decision(NamedTuple):
    """The answer to one request. Immutable."""

    allow: bool
    obligations: tuple
    rules: tuple
    error: DecisionError | None
    policy_version: str
    trace: tuple | None = None

    def to_dict(self) -> dict:
        out = {
            "allow": self.allow,
            "obligations": [{"name": o.name, "params": o.params} for o in self.obligations],
            "rules": list(self.rules),
            "error": self.error.to_dict() if self.error else None,
            "policy_version": self.policy_version,
        }
        if self.trace is not None:
            out["trace"] = list(self.trace)
        return out


def freeze(value: Any) -> Any:
    """A hashable image of a JSON value, for de-duplicating obligations."""
    if isinstance(value, dict):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(freeze(v) for v in value)
    return (type(value).__name__, value)


