"""The diff between two versions: the grids with changed cells highlighted (old -> new), rules and
declarations added, removed and changed (the engine's semantic diff, so a reorder is "no change in
behaviour"), the requests whose decision changes, and, on request, which logged decisions the newer
version would decide differently (the impact replay of api/evidence.py)."""
from __future__ import annotations

import threading
import typing as t
from collections import OrderedDict

from flask import request, url_for

from api import evidence
from api.workbench import griddiff
from api.workbench.core import PageError, bp, call, render, requires_role, resolve, section, store, whole_log_read
from api.workbench.page_policies import view

_SEMANTIC: OrderedDict[tuple[str, str], dict[str, t.Any]] = OrderedDict()
_LOCK = threading.Lock()
#: at most this many example decisions are linked per group of the impact replay
EXAMPLES = 5


def semantic(a: str, b: str) -> dict[str, t.Any]:
    """The semantic diff of two stored versions (cached: stored versions never change)."""
    with _LOCK:
        found = _SEMANTIC.get((a, b))
        if found is not None:
            return found
    a_view, b_view = view(a), view(b)
    made = evidence.diff(a_view.files, call(store().policy_set, a), b_view.files, call(store().policy_set, b))
    with _LOCK:
        _SEMANTIC[(a, b)] = made
        while len(_SEMANTIC) > 32:
            _SEMANTIC.popitem(last=False)
    return made


def _pair() -> tuple[str | None, str | None]:
    """The two versions compared: ``from`` and ``to`` of the query, by default the active version
    and the one it was published on."""
    to_ref, from_ref = request.args.get("to"), request.args.get("from")
    to_id = resolve(to_ref) if to_ref else call(store().active_version_id)
    if from_ref:
        return resolve(from_ref), to_id
    if to_id is None:
        return None, None
    parent = call(store().get_version, to_id, with_files=False).parent
    return parent, to_id


def decision_url(decision_id: str) -> str | None:
    try:
        return url_for("workbench.decision", decision_id=decision_id)
    except Exception:   # the decision page is not there
        return None


@bp.get("/diff")
@requires_role("audit")
def diff() -> t.Any:
    a, b = _pair()
    versions = call(store().list_versions)
    if a is None or b is None:
        return render("diff.html", title="Diff", versions=versions, a=a, b=b, body=None)
    body = semantic(a, b)
    tables = griddiff.diff(view(a).sections, view(b).sections)
    rules = {kind: [r for r in body[f"rules_{kind}"] if r.get("kind") != "table row"]
             for kind in ("added", "removed", "changed")}
    return render("diff.html", title="Diff", versions=versions, a=a, b=b, body=body, tables=tables, rules=rules,
                  active=call(store().active_version_id))


def _filters() -> dict[str, t.Any]:
    from store.chain import normalize_time

    out: dict[str, t.Any] = {}
    for name in ("action", "system", "rule"):
        value = request.args.get(name, "").strip()
        out[name] = value or None
    for name in ("since", "until"):
        value = request.args.get(name, "").strip()
        try:
            out[name] = normalize_time(value, name) if value else None
        except Exception as exc:
            raise PageError(400, "Not a time", f"`{name}` must be an ISO-8601 time such as 2026-01-31T12:00:00Z "
                                               f"({exc})") from None
    return out


@bp.get("/diff/impact")
@requires_role("audit")
def diff_impact() -> t.Any:
    """Replay the logged decisions that match the filters against the newer version (a read)."""
    a, b = _pair()
    if a is None or b is None:
        raise PageError(400, "Two versions are needed", "Choose the versions to compare on the diff page.")
    filters = _filters()
    report = None
    if request.args.get("replay"):
        with whole_log_read("the replay"):
            report = call(evidence.impact, store(), call(store().policy_set, b), examples=EXAMPLES, **filters)
    return render("diff_impact.html", title="Impact", a=a, b=b, filters=filters, report=report,
                  decision_url=decision_url)


section("workbench.diff", "workbench.diff_impact")
