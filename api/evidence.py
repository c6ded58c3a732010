"""The auditor's evidence over a store: explain and replay a logged decision.

No HTTP here: the admin routes and the ``ordergate`` command (with ``--database``) call these
functions with a store, so both give the same answer. The comparison and the counterfactual
search are the engine's (:mod:`engine.compare`, :mod:`engine.whatif`).
"""
from __future__ import annotations

import typing as t

from engine import compare, whatif


class NotFound(LookupError):
    """A logged decision or version the caller named does not exist."""


def logged_view(record: dict[str, t.Any]) -> dict[str, t.Any]:
    """A decision-log entry as the API and ``ordergate log`` show it."""
    return {
        "seq": record.get("seq"),
        "decision_id": record["decision_id"],
        "time": record["time"],
        "action": record["action"],
        "allow": record["result"].get("allow"),
        "policy_version": record["policy_version"],
        "input": record["input"],
        "result": record["result"],
        "caller": record.get("caller"),
        "request_id": record.get("request_id"),
        "hash": record.get("hash"),
        "prev_hash": record.get("prev_hash"),
    }


def logged_decision(store: t.Any, decision_id: str) -> dict[str, t.Any]:
    record = store.get_decision(decision_id)
    if record is None:
        raise NotFound(f"no logged decision `{decision_id}`")
    return record


def _logged_version(record: dict[str, t.Any]) -> str:
    if record["policy_version"] is None:
        raise NotFound("the decision was made with no policy version loaded")
    return record["policy_version"]


def explain(store: t.Any, decision_id: str) -> dict[str, t.Any]:
    """The decision rebuilt with its trace from the logged input on the logged version.

    ``explanation`` is what ``ordergate decide --explain`` prints for that input and version;
    ``matches_log`` says whether it equals the logged answer; ``why_not`` the smallest sets of
    fact changes that would have flipped it.
    """
    record = logged_decision(store, decision_id)
    version_id = _logged_version(record)
    policy_set = store.policy_set(version_id)
    decision = policy_set.decide(record["action"], record["input"], explain=True).to_dict()
    replayed = {k: v for k, v in decision.items() if k != "trace"}
    found = whatif.why_not(policy_set, record["action"], record["input"])
    return {
        "decision_id": decision_id,
        "time": record["time"],
        "action": record["action"],
        "policy_version": version_id,
        "input": record["input"],
        "logged": record["result"],
        "matches_log": not compare.differences(record["result"], replayed, same_version=True),
        "explanation": decision,
        "why_not": None if found is None else found.to_dict(),
    }


def diff(a_files: t.Mapping[str, str], a_ps: t.Any, b_files: t.Mapping[str, str], b_ps: t.Any) -> dict[str, t.Any]:
    """The semantic diff from version a to b (:func:`engine.semdiff.semantic_diff`) and which
    files changed."""
    from engine.semdiff import semantic_diff

    body = semantic_diff(a_files, a_ps, b_files, b_ps)
    a_names, b_names = set(a_files), set(b_files)
    body["files"] = {"added": sorted(b_names - a_names), "removed": sorted(a_names - b_names),
                     "changed": sorted(p for p in a_names & b_names if a_files[p] != b_files[p])}
    return body


def replay(store: t.Any, decision_id: str, version_id: str | None) -> dict[str, t.Any]:
    """The logged decision decided again on its own version (``version_id`` None) or another."""
    record = logged_decision(store, decision_id)
    logged_version = record["policy_version"]
    target = version_id or _logged_version(record)
    replayed = store.policy_set(target).decide(record["action"], record["input"]).to_dict()
    differences = compare.differences(record["result"], replayed, same_version=target == logged_version)
    return {
        "decision_id": decision_id,
        "logged_version": logged_version,
        "replayed_version": target,
        "same_version": target == logged_version,
        "match": not differences,
        "differences": differences,
        "logged": record["result"],
        "replayed": replayed,
    }


#: distinct (action, input, logged result) replays kept for the requests that repeat them
REPLAY_MEMO = 20_000


def impact(store: t.Any, candidate: t.Any, *, examples: int = 5, exhaustive: bool = False,
           progress: t.Callable[[int], None] | None = None, system: str | None = None,
           **filters: t.Any) -> dict[str, t.Any]:
    """Replay every logged decision matching the filters against ``candidate`` (a PolicySet).

    The log is streamed (one batch in memory); ``progress`` is called with how many log entries
    were passed since its last call. With ``exhaustive`` the candidate is also compared with the
    active version over every combination of declared fact values of each finite-domain action.
    """
    from engine.impact import ImpactReport, report_hash
    from engine.semdiff import compare_requests
    from store.log_stream import decode, stream_entries

    report = ImpactReport(candidate, examples=examples)
    last = 0
    # equal requests logged with equal results (the same stored texts) are replayed once: their
    # change, and whether the system filter takes them, is kept for the next ones (bounded)
    known: dict[tuple[str, str, str], tuple[bool, t.Any]] = {}
    for seq, decision_id, action, text, outcome in stream_entries(store, **filters):
        if progress is not None and seq - last >= 1000:
            progress(seq - last)
            last = seq
        found = known.get((action, text, outcome))
        if found is None:
            data = decode(text)
            context = data.get("context") if isinstance(data, dict) else None
            taken = system is None or (isinstance(context, dict) and context.get("system") == system)
            found = (taken, report.change(action, data, decode(outcome)) if taken else None)
            if len(known) >= REPLAY_MEMO:
                known.clear()
            known[(action, text, outcome)] = found
        if found[0]:
            report.count(decision_id, found[1])
    body = report.to_dict()
    body["filters"] = {k: v for k, v in dict(filters, system=system).items() if v is not None}
    if exhaustive:
        active = store.active_version_id()
        if active is None:
            raise NotFound("no version is active to compare the candidate with")
        body["exhaustive"] = dict(compare_requests(store.policy_set(active), candidate), against=active)
    body["hash"] = report_hash(body)
    return body
