"""The reaction rules of the ERP → CRM back-flow (``reactions.yaml``): read, checked, compiled.

The file is read by the engine's loader (``engine.load``), so its errors are the engine's: each a
:class:`engine.PolicyError` at ``file:line:column``, in plain words, with a ``help`` where a fix is
likely; every problem of a file is raised at once as :class:`engine.PolicyErrors`. The checked
rules are compiled to a durable_rules JSON ruleset (never its decorator DSL, whose rule stacks are
module globals).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import Location, PolicyError, PolicyErrors
from engine.errors import did_you_mean
from engine.load import SourceMap, load_text

REACTIONS_FILE = Path(__file__).with_name("reactions.yaml")
MAX_RULES = 500                   # durable_rules: > 512 sibling tests hang create_ruleset
OPS = {"eq": None, "neq": "$neq", "gt": "$gt", "gte": "$gte", "lt": "$lt", "lte": "$lte"}
NOOP = "_track"
TOP_KEYS = ("ruleset", "apply", "facts", "events", "reactions")
REACTION_KEYS = ("id", "says", "on_event", "test", "when_all", "when_none", "do")

Path_ = tuple[Any, ...]


@dataclass
class ErpUpdate:
    """What the reactions fired by one ERP event add up to: the arguments of the ``apply`` mutation."""

    lines: dict[int, dict[str, int]] = field(default_factory=dict)   # line_no -> quantity field -> value
    order_invoiced: bool | None = None
    invoice_status: str | None = None


def _quantity(name: str) -> Callable[[ErpUpdate, dict[str, Any]], None]:
    def add(update: ErpUpdate, event: dict[str, Any]) -> None:
        update.lines.setdefault(event["line_no"], {})[name] = event["quantity"]
    return add


def _order_invoiced(update: ErpUpdate, event: dict[str, Any]) -> None:
    update.order_invoiced = True


def _fully_invoiced(update: ErpUpdate, event: dict[str, Any]) -> None:
    update.invoice_status = "fully_invoiced"


#: what a reaction can do (its ``do``): each adds to the update the correlator applies
DO: dict[str, Callable[[ErpUpdate, dict[str, Any]], None]] = {
    "update_shipped_quantity": _quantity("shipped_quantity"),
    "update_invoiced_quantity": _quantity("invoiced_quantity"),
    "record_order_invoiced": _order_invoiced,
    "mark_fully_invoiced": _fully_invoiced,
}


@dataclass(frozen=True)
class Reactions:
    name: str
    apply: tuple[str, str]                  # (system, action): the guarded mutation each result becomes
    facts: dict[str, tuple[str, ...]]
    events: dict[str, tuple[str, ...]]
    reactions: tuple[dict[str, Any], ...]
    ruleset: dict[str, Any] = field(repr=False)   # the durable_rules JSON ruleset


class _Checker:
    """Collects the problems of one reactions file, each located through the loader's source map."""

    def __init__(self, smap: SourceMap) -> None:
        self.smap = smap
        self.errors: list[PolicyError] = []

    def err(self, path: Path_, message: str, help: str | None = None, *, code: str = "reactions_invalid",
            key: bool = False) -> None:
        self.errors.append(PolicyError(code, message, self.smap.at(path, key=key), help))

    def keys(self, value: dict[Any, Any], path: Path_, allowed: tuple[str, ...], what: str) -> None:
        for key in value:
            if key not in allowed:
                self.err(path + (key,), f"unknown key `{key}` in {what}",
                         did_you_mean(key, allowed) or f"the keys of {what} are {', '.join(allowed)}",
                         code="reactions_unknown_key", key=True)

    def names(self, doc: dict[str, Any], what: str) -> dict[str, tuple[str, ...]]:
        value = doc.get(what)
        if not isinstance(value, dict):
            self.err((0, what), f"`{what}` must map names to lists of fields", f"e.g. `{what}: {{line: [line_no]}}`")
            return {}
        out = {}
        for name, fields in value.items():
            if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
                self.err((0, what, name), f"{what} `{name}`: the fields must be a list of names")
                continue
            out[name] = tuple(fields)
        return out

    def tests(self, test: Any, fields: tuple[str, ...], path: Path_) -> list[dict[str, Any]]:
        if not isinstance(test, dict):
            self.err(path, "`test` must map fields to values or to `{op: value}`")
            return []
        out: list[dict[str, Any]] = []
        for name, cond in test.items():
            if name not in fields:
                self.err(path + (name,), f"unknown field `{name}`",
                         did_you_mean(name, fields) or f"the declared fields are: {', '.join(fields) or 'none'}",
                         code="reactions_unknown_name", key=True)
            elif isinstance(cond, dict):
                for op, value in cond.items():
                    if op not in OPS:
                        self.err(path + (name, op), f"unknown test `{op}` on `{name}`", f"use one of {', '.join(OPS)}",
                                 code="reactions_unknown_name", key=True)
                        continue
                    sign = OPS[op]
                    out.append({name: value} if sign is None else {sign: {name: value}})
            else:
                out.append({name: cond})
        return out

    def fact_pattern(self, pattern: Any, facts: dict[str, tuple[str, ...]], path: Path_) -> dict[str, Any] | None:
        if not isinstance(pattern, dict) or pattern.get("fact") not in facts:
            self.err(path, f"each pattern needs `fact:` naming one of: {', '.join(facts) or '(none declared)'}")
            return None
        fields = facts[pattern["fact"]]
        return {"$and": [{"kind": pattern["fact"]}] + self.tests(pattern.get("test") or {}, fields, path + ("test",))}


def _apply_target(check: _Checker, value: Any) -> tuple[str, str]:
    from .api import ACTIONS  # the connector's catalogue (imported late: api imports the systems)

    if not (isinstance(value, dict) and isinstance(value.get("system"), str) and isinstance(value.get("action"), str)):
        check.err((0, "apply"), "`apply` must name the guarded mutation the results become",
                  "e.g. `apply: {system: qad_crm, action: opportunity.apply_erp_update}`")
        return ("", "")
    system, action = value["system"], value["action"]
    if action not in ACTIONS.get(system, {}):
        check.err((0, "apply"), f"`{system}` has no operation for `{action}`",
                  did_you_mean(action, ACTIONS.get(system, {}))
                  or "name a system and an action of the connector's catalogue",
                  code="reactions_unknown_name")
    return system, action


def _reaction(check: _Checker, r: dict[str, Any], path: Path_, facts: dict[str, tuple[str, ...]],
              events: dict[str, tuple[str, ...]]) -> dict[str, Any] | None:
    rid = r["id"]
    check.keys(r, path, REACTION_KEYS, f"reaction `{rid}`")
    if r.get("do") not in DO:
        check.err(path + ("do",), f"reaction `{rid}`: `do` must be one of {', '.join(DO)} (got `{r.get('do')}`)",
                  did_you_mean(r.get("do"), DO), code="reactions_unknown_name")
    if ("on_event" in r) == ("when_all" in r):
        check.err(path, f"reaction `{rid}`: give either `on_event` or `when_all` (facts), not both or neither")
        return None
    if "when_none" in r and "when_all" not in r:
        check.err(path + ("when_none",), f"reaction `{rid}`: `when_none` needs `when_all`")
    patterns: list[dict[str, Any]] = []
    if "on_event" in r:
        event = r["on_event"]
        if event not in events:
            check.err(path + ("on_event",), f"reaction `{rid}`: unknown event `{event}`",
                      did_you_mean(event, events) or f"declared events: {', '.join(events) or 'none'}",
                      code="reactions_unknown_name")
            return None
        tests = [{"kind": "event"}, {"type": event}] + check.tests(r.get("test") or {}, events[event], path + ("test",))
        patterns.append({"m": {"$and": tests}})
    else:
        for kind, prefix in (("when_all", "f"), ("when_none", "n")):
            for i, p in enumerate(r.get(kind) or []):
                t = check.fact_pattern(p, facts, path + (kind, i))
                if t is not None:
                    patterns.append({f"{prefix}{i}" + ("$not" if prefix == "n" else ""): t})
        if not patterns:
            check.err(path + ("when_all",), f"reaction `{rid}`: `when_all` must list at least one fact pattern")
    return {"all": patterns, "run": r.get("do")}


def load_reactions(path: Path | str = REACTIONS_FILE, text: str | None = None) -> Reactions:
    """Read (engine loader), check (every problem, located) and compile the reaction rules."""
    path = Path(path)
    loaded, errors = load_text(path.name, text if text is not None else path.read_text())
    if loaded is None or errors:
        raise PolicyErrors(errors)
    check = _Checker(loaded.source)
    doc = loaded.documents[0] if len(loaded.documents) == 1 else None
    if not isinstance(doc, dict):
        raise PolicyErrors([PolicyError("reactions_invalid", "expected one mapping with " + ", ".join(TOP_KEYS),
                                        Location(path.name, 1, 1))])
    check.keys(doc, (0,), TOP_KEYS, "the reactions file")
    name = doc.get("ruleset")
    if not isinstance(name, str) or not name.isidentifier():
        check.err((0, "ruleset"), "`ruleset` must be a name (letters, digits, underscore)")
    apply = _apply_target(check, doc.get("apply"))
    facts, events = check.names(doc, "facts"), check.names(doc, "events")
    reactions = doc.get("reactions")
    if not isinstance(reactions, list) or not reactions:
        check.err((0, "reactions"), "`reactions` must be a non-empty list")
        reactions = []
    if len(reactions) > MAX_RULES:
        check.err((0, "reactions"), f"{len(reactions)} reactions: at most {MAX_RULES} (durable_rules hangs past 512)")
    compiled: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for i, r in enumerate(reactions):
        where = (0, "reactions", i)
        if not isinstance(r, dict) or not isinstance(r.get("id"), str) or not r["id"]:
            check.err(where, "each reaction must be a mapping with an `id`")
            continue
        if r["id"] in seen:
            check.err(where + ("id",), f"duplicate reaction id `{r['id']}`", "give each reaction its own id",
                      code="reactions_duplicate_id")
        seen.add(r["id"])
        rule = _reaction(check, r, where, facts, events)
        if rule is not None:
            compiled[r["id"]] = rule
    # Every fact we assert must match some rule, else durable_rules raises MessageNotHandled.
    for fact in facts:
        compiled[f"{NOOP}-{fact}"] = {"all": [{"m": {"kind": fact}}], "run": NOOP}
    if check.errors:
        raise PolicyErrors(check.errors)
    return Reactions(str(name), apply, facts, events, tuple(reactions), {str(name): compiled})
