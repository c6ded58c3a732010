"""The decision log: search (GET form, keyset pages, newest first), and a decision's page with its
input, result, explanation, a replay against any version and its place in the hash chain.

Nothing here writes: explain and replay decide again in memory (``api.evidence``), never through
the decision log.
"""
from __future__ import annotations

import datetime as dt
import json
import typing as t

from flask import request, url_for

from api import evidence
from api.workbench.core import (
    PageError,
    bp,
    call,
    render,
    requires_role,
    resolve,
    runtime,
    section,
    store,
    whole_log_read,
)
from store.log_search import Cursor, LogFilters, check_entry, search

PAGE_SIZES = (25, 50, 100)
_TEXT_FIELDS = ("action", "system", "rule", "caller", "text")


class _Invalid(ValueError):
    """A search field that cannot be used; its message is shown next to the form."""


def _time(name: str, value: str) -> str | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise _Invalid(f"`{name}` must be a date and time, e.g. 2026-01-31T12:00 (UTC)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.isoformat()


def _version(value: str) -> str | None:
    if not value:
        return None
    try:
        return resolve(value)
    except PageError:
        raise _Invalid(f"there is no stored version `{value}`") from None


def _filters(args: t.Mapping[str, str]) -> LogFilters:
    """The search of the query string (``_Invalid`` names the field that cannot be used)."""
    values: dict[str, t.Any] = {name: (args.get(name) or "").strip() or None for name in _TEXT_FIELDS}
    allow = args.get("allow") or ""
    if allow not in ("", "allowed", "denied"):
        raise _Invalid("`outcome` must be allowed or denied")
    return LogFilters(since=_time("from", args.get("since") or ""), until=_time("until", args.get("until") or ""),
                      allow=None if not allow else allow == "allowed", version=_version(args.get("version") or ""),
                      **values)


def _page_size(args: t.Mapping[str, str]) -> int:
    """The page size asked for: one of ``PAGE_SIZES`` (50 when not given); anything else is ``_Invalid``."""
    text = (args.get("size") or "").strip()
    if not text:
        return 50
    if text not in {str(size) for size in PAGE_SIZES}:
        raise _Invalid(f"`size` must be one of {', '.join(map(str, PAGE_SIZES))}")
    return int(text)


def _cursor(args: t.Mapping[str, str], filters: LogFilters) -> Cursor | None:
    for name, older in (("older", True), ("newer", False)):
        if args.get(name):
            return t.cast(Cursor, call(Cursor.decode, args[name], older=older, by_time=filters.by_time))
    return None


def _choices() -> dict[str, t.Any]:
    """What the form offers: the active version's systems, actions and rules; every version."""
    loaded = runtime().holder.current
    catalogue = loaded.policy_set.catalogue if loaded is not None else {}
    return {
        "systems": sorted(catalogue),
        "actions": sorted({a for actions in catalogue.values() for a in actions}),
        "rules": sorted({r.id for r in loaded.policy_set.rules}) if loaded is not None else [],
        "versions": call(store().list_versions),
    }


def system_of(facts: t.Any) -> str | None:
    context = facts.get("context") if isinstance(facts, dict) else None
    system = context.get("system") if isinstance(context, dict) else None
    return system if isinstance(system, str) else None


def matched_fact(facts: t.Any, text: str | None) -> str:
    """``path = value`` of the first fact value that contains ``text`` (what a text search found)."""
    if not text:
        return ""
    needle = text.lower()
    stack: list[tuple[str, t.Any]] = [("", facts)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((f"{path}.{k}" if path else str(k), v) for k, v in reversed(list(value.items())))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(value))))
        elif value is not None and needle in (value if isinstance(value, str) else json.dumps(value)).lower():
            return f"{path} = {value}"
    return ""


@bp.get("/decisions")
@requires_role("audit")
def decisions() -> t.Any:
    args = request.args
    problem = None
    page = None
    size = 50
    try:
        filters = _filters(args)
        size = _page_size(args)
        page = call(search, store(), filters, limit=size, cursor=_cursor(args, filters))
    except _Invalid as exc:
        problem = str(exc)
    except PageError as exc:
        if exc.status != 400:
            raise
        problem = exc.message
    kept = {k: v for k, v in args.items() if k not in ("older", "newer") and v}
    return render("decisions.html", 400 if problem else 200, title="Decision log", args=args, problem=problem,
                  page=page, kept=kept, sizes=PAGE_SIZES, size=size, system_of=system_of,
                  matched=lambda facts: matched_fact(facts, (args.get("text") or "").strip()),
                  logged=call(store().decision_count), **_choices())


def _replay(decision_id: str, target: str) -> dict[str, t.Any] | None:
    if not target:
        return None
    return t.cast(dict[str, t.Any], call(evidence.replay, store(), decision_id, resolve(target)))


def _rule_links(record: dict[str, t.Any]) -> dict[str, dict[str, t.Any]]:
    """For each rule the decision cites: its sentence and the line of its file in its version."""
    version = record.get("policy_version")
    if not version:
        return {}
    policy_set = call(store().policy_set, version)
    cited = set(record["result"].get("rules") or [])
    return {r.id: {"says": r.says, "url": url_for("workbench.version_file", ref=version, path=r.file) + f"#L{r.line}"}
            for r in policy_set.rules if r.id in cited}


@bp.get("/decisions/<decision_id>")
@requires_role("audit")
def decision(decision_id: str) -> t.Any:
    record = call(store().get_decision, decision_id)
    if record is None:
        raise PageError(404, "No such decision", f"No logged decision has the id `{decision_id}`.")
    explained = None
    if record["policy_version"] is not None:
        explained = call(evidence.explain, store(), decision_id)
    chain_report = None
    if request.args.get("verify") == "chain":
        with whole_log_read("verifying the chain"):
            chain_report = call(store().verify_chain)
    return render("decision.html", title=f"Decision {decision_id}", record=record, system=system_of(record["input"]),
                  input_json=json.dumps(record["input"], indent=2, ensure_ascii=False, sort_keys=True),
                  explained=explained, rules=_rule_links(record), versions=call(store().list_versions),
                  replay=_replay(decision_id, request.args.get("replay") or ""),
                  replay_target=request.args.get("replay") or "",
                  entry=call(check_entry, store(), record["seq"]), chain_report=chain_report)


section("workbench.decisions", "workbench.decision")
