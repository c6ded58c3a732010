"""Comparing two decisions: what replay, the YAML tests and the impact report call a change.

Obligation order carries no meaning (the decision contract lists them as a set), so obligations
are compared as sorted ``(name, params)`` pairs.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .decision import freeze

RESULT_KEYS = ("allow", "obligations", "rules", "error", "policy_version")

DENY_TO_ALLOW = "deny_to_allow"
ALLOW_TO_DENY = "allow_to_deny"
OBLIGATIONS = "obligations_changed"
NEW_ERROR = "new_error"
REASONS = "rules_changed"
#: change kinds, most serious first
KINDS = (DENY_TO_ALLOW, ALLOW_TO_DENY, NEW_ERROR, OBLIGATIONS, REASONS)


def obligation_keys(items: Iterable[Any] | None) -> list[tuple[Any, ...]]:
    """Obligations (``{"name", "params"}`` or a bare name) as a sorted list of hashable keys."""
    out = []
    for o in items or ():
        if isinstance(o, str):
            o = {"name": o, "params": {}}
        out.append((o["name"], freeze(o.get("params") or {})))
    return sorted(out, key=repr)


def comparable(result: dict[str, Any]) -> dict[str, Any]:
    """The parts of a decision that replay compares, obligations in a canonical order."""
    out = {k: result.get(k) for k in RESULT_KEYS}
    obligations = [o if isinstance(o, dict) else {"name": o, "params": {}} for o in out["obligations"] or ()]
    out["obligations"] = sorted(obligations, key=lambda o: repr(obligation_keys([o])))
    return out


def differences(logged: dict[str, Any], replayed: dict[str, Any], *, same_version: bool) -> list[dict[str, Any]]:
    """Field by field, where a replayed decision differs from the logged one.

    Against another version the ``policy_version`` differs by construction and is not reported.
    """
    before, after = comparable(logged), comparable(replayed)
    return [{"field": key, "logged": before[key], "replayed": after[key]}
            for key in RESULT_KEYS
            if before[key] != after[key] and (same_version or key != "policy_version")]


def _error_code(result: dict[str, Any]) -> str | None:
    error = result.get("error")
    return error.get("code") if isinstance(error, dict) else None


def change_kind(before: dict[str, Any], after: dict[str, Any]) -> str | None:
    """How a decision changed from ``before`` to ``after`` (one of :data:`KINDS`), or ``None``."""
    if not before.get("allow") and after.get("allow"):
        return DENY_TO_ALLOW
    error_before, error_after = _error_code(before), _error_code(after)
    if error_after is not None and (error_after, (after.get("error") or {}).get("field")) != (
            error_before, (before.get("error") or {}).get("field")):
        return NEW_ERROR
    if before.get("allow") and not after.get("allow"):
        return ALLOW_TO_DENY
    old, new = before.get("obligations"), after.get("obligations")
    if old != new and obligation_keys(old) != obligation_keys(new):
        return OBLIGATIONS
    old_rules, new_rules = before.get("rules") or (), after.get("rules") or ()
    if old_rules != new_rules and sorted(old_rules) != sorted(new_rules):
        return REASONS
    return None


def responsible_rules(kind: str, before: dict[str, Any], after: dict[str, Any]) -> tuple[str, ...]:
    """The rules a change is put down to: the denials cleared, the new denials, the rules whose
    citation changed, else the rules that decide the new outcome. A new error is put down to no
    rule: the request no longer reaches the rules (its detail says which fact)."""
    if kind == NEW_ERROR:
        return ()
    old, new = list(before.get("rules") or ()), list(after.get("rules") or ())
    if kind == DENY_TO_ALLOW:
        picked = [r for r in old if r not in new]
    elif kind == ALLOW_TO_DENY:
        picked = [r for r in new if r not in old]
    else:
        picked = [r for r in old if r not in new] + [r for r in new if r not in old]
    return tuple(sorted(picked or new or old))
