"""The impact of a candidate version on decisions already made: replay each against the
candidate and group what changes.

:class:`ImpactReport` is fed one logged decision at a time (the caller streams the log), keeps
only counts and up to ``examples`` decision ids per group, so memory does not grow with the
log. A group is one kind of change (:data:`engine.compare.KINDS`) put down to the same rules
(a table row is a rule), for one action of one system, with the same detail (the obligations
added and removed, or the new error).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from . import compare

CSV_COLUMNS = ("kind", "risk", "rules", "system", "action", "detail", "count", "examples")
GroupKey = tuple[str, tuple[str, ...], str, str, str]     # kind, rules, system, action, detail


@dataclass
class Group:
    kind: str
    rules: tuple[str, ...]
    system: str
    action: str
    detail: str
    count: int = 0
    examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "risk": self.kind == compare.DENY_TO_ALLOW, "rules": list(self.rules),
                "system": self.system, "action": self.action, "detail": self.detail, "count": self.count,
                "examples": list(self.examples)}


def _names(result: dict[str, Any]) -> dict[str, Any]:
    return {o["name"] if isinstance(o, dict) else o: (o.get("params") if isinstance(o, dict) else {}) or {}
            for o in result.get("obligations") or ()}


def detail(kind: str, before: dict[str, Any], after: dict[str, Any]) -> str:
    """The change in words: obligations added / removed / with new parameters, or the new error."""
    if kind == compare.NEW_ERROR:
        error = after.get("error") or {}
        return f"{error.get('code')} {error.get('field') or ''}".strip()
    old, new = _names(before), _names(after)
    parts = [f"-{n}" for n in sorted(set(old) - set(new))] + [f"+{n}" for n in sorted(set(new) - set(old))]
    parts += [f"~{n}" for n in sorted(set(old) & set(new)) if old[n] != new[n]]
    return " ".join(parts)


class ImpactReport:
    """Replays decisions against ``candidate`` and groups the changes."""

    def __init__(self, candidate: Any, *, examples: int = 5):
        self.candidate = candidate
        self.examples = examples
        self.replayed = 0
        self.groups: dict[GroupKey, Group] = {}

    def add(self, decision_id: str, action: str, data: Any, logged: dict[str, Any]) -> str | None:
        """Replay one logged decision; returns the kind of change, or ``None``."""
        return self.count(decision_id, self.change(action, data, logged))

    def change(self, action: str, data: Any, logged: dict[str, Any]) -> GroupKey | None:
        """What replaying a logged decision changes (its group), or ``None``; counts nothing. The
        same request with the same logged result always gives the same answer, so a caller may
        keep it for equal requests (``count`` then counts each)."""
        after = self.candidate.decide(action, data).to_dict()
        kind = compare.change_kind(logged, after)
        if kind is None:
            return None
        context = data.get("context") if isinstance(data, dict) else None
        system = context.get("system") if isinstance(context, dict) else None
        rules = compare.responsible_rules(kind, logged, after)
        return (kind, rules, str(system), action, detail(kind, logged, after))

    def count(self, decision_id: str, key: GroupKey | None) -> str | None:
        """Count one replayed decision whose change (``change``) is ``key``; returns its kind."""
        self.replayed += 1
        if key is None:
            return None
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = Group(*key)
        group.count += 1
        if len(group.examples) < self.examples:
            group.examples.append(decision_id)
        return key[0]

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(compare.KINDS, 0)
        for g in self.groups.values():
            out[g.kind] += g.count
        return out

    def sorted_groups(self) -> list[Group]:
        order = {k: i for i, k in enumerate(compare.KINDS)}
        return sorted(self.groups.values(),
                      key=lambda g: (order[g.kind], -g.count, g.rules, g.system, g.action, g.detail))

    def to_dict(self) -> dict[str, Any]:
        counts = self.counts()
        return {"candidate": self.candidate.version, "replayed": self.replayed,
                "changed": sum(counts.values()), "counts": counts, "risky_flips": counts[compare.DENY_TO_ALLOW],
                "groups": [g.to_dict() for g in self.sorted_groups()]}


def csv_rows(report: dict[str, Any]) -> Iterable[list[Any]]:
    """The groups of a report (:meth:`ImpactReport.to_dict`) as CSV rows under :data:`CSV_COLUMNS`."""
    for g in report["groups"]:
        yield [g["kind"], str(g["risk"]).lower(), " ".join(g["rules"]), g["system"], g["action"], g["detail"],
               g["count"], " ".join(g["examples"])]


def text(report: dict[str, Any]) -> str:
    """A report for a person: the totals, then one line per group, risks first."""
    counts = report["counts"]
    lines = [f"replayed {report['replayed']} decisions against {report['candidate']}: {report['changed']} changed",
             "  " + ", ".join(f"{k} {n}" for k, n in counts.items())]
    for g in report["groups"]:
        flag = "RISK " if g["risk"] else ""
        what = f" ({g['detail']})" if g["detail"] else ""
        lines.append(f"{flag}{g['kind']} {', '.join(g['rules']) or '-'} {g['system']} {g['action']}{what}: "
                     f"{g['count']}  e.g. {', '.join(g['examples'])}")
    return "\n".join(lines)


def report_hash(report: dict[str, Any]) -> str:
    """The sha256 of a report's canonical JSON: what a published version keeps of its evidence."""
    text = json.dumps(report, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
