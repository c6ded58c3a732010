"""Deciding (docs/api.md, "Deciding"): check the envelope, decide, log, answer.

No rule logic here: the engine's PolicySet decides; this module only checks the envelope, asks
it, records the decision and maps the outcome to an HTTP status. The HTTP handling of
``POST /v1/decisions`` and ``POST /v1/decisions/batch`` is ``api.decide_http`` (no framework);
``register`` routes Flask to it.
"""
from __future__ import annotations

import datetime as dt
import functools
import json
import re
import typing as t
from dataclasses import dataclass

import orjson
from flask import Flask, Response, request

from api.body import read_body
from api.errors import bad_request, decision_status
from api.ids import new_ids
from engine import whatif
from store.chain import PreparedRecord, format_time, prepare_decision

_JSON = "application/json"
MAX_ACTION = 200


def _dumps(body: t.Any) -> str:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def encode_json(body: t.Any) -> bytes:
    """The response body: orjson (same compact UTF-8 JSON, several times faster), or the standard
    library for what orjson does not take (integers beyond 64 bits, non-string keys)."""
    try:
        return orjson.dumps(body)
    except TypeError:
        return _dumps(body).encode("utf-8")


def json_response(body: t.Any, status: int = 200) -> Response:
    return Response(encode_json(body), status=status, mimetype=_JSON)


def now_text() -> str:
    """The log's text of the current time (UTC, microseconds)."""
    return format_time(dt.datetime.now(dt.UTC))


def refused_body(version: str | None, code: str, message: str, *, decision_id: str | None) -> dict[str, t.Any]:
    """A fail-closed decision body: allow false, nothing to do, no rule cited."""
    return {
        "decision_id": decision_id,
        "policy_version": version,
        "allow": False,
        "obligations": [],
        "rules": [],
        "error": {"code": code, "field": None, "message": message},
    }


#: ``explain`` values: no trace, the trace, the trace and the smallest fact changes that flip it
EXPLAIN_VALUES = (False, True, WHY_NOT := "why_not")


def check_envelope(item: t.Any, *, where: str = "the body", index: int | None = None) -> tuple[str, dict, bool | str]:
    """``(action, input, explain)`` of a request object, or ``ApiError(bad_request)``; ``index``: the
    item of a batch it is (its errors say ``requests[index]``)."""
    if type(item) is dict:
        action, facts, explain = item.get("action"), item.get("input"), item.get("explain", False)
        if (type(action) is str and 0 < len(action) <= MAX_ACTION and type(facts) is dict
                and (explain is False or explain is True)):
            return action, facts, explain  # the common request, checked in one step
    if index is not None:
        where = f"requests[{index}]"
    if not isinstance(item, dict):
        raise bad_request(f"{where} must be a JSON object with `action` and `input`", "not_object")
    action = item.get("action")
    if not isinstance(action, str):
        raise bad_request(f"`action` in {where} must be a string", "action_not_string")
    if not action or len(action) > MAX_ACTION:
        # the decision log keeps actions of 1 to 200 characters; no catalogue action is longer
        raise bad_request(f"`action` in {where} must have 1 to {MAX_ACTION} characters", "action_invalid")
    facts = item.get("input")
    if not isinstance(facts, dict):
        raise bad_request(f"`input` in {where} must be an object", "input_not_object")
    explain = item.get("explain", False)
    if not isinstance(explain, bool) and explain != WHY_NOT:
        raise bad_request(f"`explain` in {where} must be true, false or `why_not`", "explain_not_bool")
    return action, facts, explain


#: what ``X-Request-Id`` may hold: 1 to 128 characters of this set (a UUID, a ULID, a trace id, ...)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")


@dataclass(frozen=True)
class Who:
    """Who asked: the caller's name (an access token's name, never its secret) and the request id
    it sent, both recorded with the decision and covered by the log's hash chain."""

    caller: str
    request_id: str | None


def who_asked(caller: str, request_id: str | None) -> Who:
    """The ``Who`` of a request by ``caller`` whose ``X-Request-Id`` header is ``request_id``;
    ApiError for a request id out of bounds."""
    if request_id is not None and not _REQUEST_ID.fullmatch(request_id):
        raise bad_request("`X-Request-Id` must be 1 to 128 characters of letters, digits and `._:/+=@-`",
                          "invalid_request_id")
    return Who(caller, request_id)


@dataclass(slots=True)
class Decided:
    """One decision before it is answered: its log record is prepared, not yet recorded."""

    decision_id: str
    result: dict[str, t.Any]
    trace: t.Any
    explain: bool | str
    record: PreparedRecord
    why_not: t.Any = None


class Decider:
    """Decides well-formed requests, prepares their log records and builds the answers.

    A decision is answered as made only once the log has recorded it (``answer`` is given, after
    the commit, the ids the log did not record); one that the log did not record is answered fail
    closed (503 ``decision_log_unavailable``, ``decision_id`` null: no logged decision to look up).
    """

    def __init__(self, runtime: t.Any) -> None:
        self.rt = runtime

    def evaluate(self, action: str, facts: dict, explain: bool | str, who: Who, decision_id: str | None = None,
                 asked_at: str | None = None, *, parsed: bool = False) -> Decided:
        """Decide, and prepare the log record (ApiError ``not_recordable`` when it cannot be logged).

        ``decision_id``: a new id (``api.ids``; one is made when None); ``asked_at``: the log's
        text of the time of the request (``now_text``; now when None); ``parsed``: ``facts`` is
        what orjson parsed from the body (``api.body.parse_body``'s ``by_orjson``), unchanged.
        """
        decision_id = new_ids()[0] if decision_id is None else decision_id
        asked_at = now_text() if asked_at is None else asked_at
        loaded = self.rt.holder.current
        trace = None
        if loaded is None:
            body = refused_body(None, "no_policy_loaded", "no policy version is loaded; nothing is allowed",
                                decision_id=decision_id)
            # a refusal is a decision too: logged with policy_version null
            result = {k: body[k] for k in ("allow", "obligations", "rules", "error", "policy_version")}
        else:
            result = self._decide(loaded, action, facts, explain)
            trace = result.pop("trace", None)
        why_not = None
        if explain == WHY_NOT and loaded is not None:
            found = whatif.why_not(loaded.policy_set, action, facts)
            why_not = None if found is None else found.to_dict()
        return Decided(decision_id, result, trace, explain if loaded is not None else False,
                       self._prepare(decision_id, asked_at, action, facts, result,
                                     None if loaded is None else loaded.version_id, who, parsed), why_not)

    @staticmethod
    def _decide(loaded: t.Any, action: str, facts: dict, explain: bool | str) -> dict[str, t.Any]:
        try:
            result = loaded.policy_set.decide(action, facts, explain=explain is not False).to_dict()
        except Exception as exc:  # the engine promises never to raise; if it does, fail closed
            result = {
                "allow": False, "obligations": [], "rules": [], "policy_version": loaded.version_id,
                "error": {"code": "evaluation_error", "field": None,
                          "message": f"evaluation failed: {type(exc).__name__}"},
            }
        error = result.get("error")
        if error is not None:
            # fail closed whatever the engine said alongside an error
            result["allow"] = False
            result["obligations"] = []
            result["rules"] = []
            error.setdefault("field", None)
            error.setdefault("message", error.get("code", "error"))
        result.setdefault("policy_version", loaded.version_id)
        return result

    def answer(self, decided: Decided, unrecorded: t.Container[str],
               counted: list[tuple[bool, str | None]] | None = None) -> tuple[dict[str, t.Any], int]:
        """The answer of a decision, given the ids the log did not record; counted in the metrics,
        or appended to ``counted`` as ``(allow, error code)`` for the caller to count (a batch)."""
        result = decided.result
        logged = decided.decision_id not in unrecorded
        if not logged and (result.get("error") or {}).get("code") != "no_policy_loaded":
            body = refused_body(result.get("policy_version"), "decision_log_unavailable",
                                "the decision could not be recorded in the decision log; failing closed",
                                decision_id=None)
            outcome: tuple[bool, str | None] = (False, "decision_log_unavailable")
        else:
            error = result.get("error")
            body = {
                # null when not recorded: there is no logged decision to look up
                "decision_id": decided.decision_id if logged else None,
                "policy_version": result.get("policy_version"),
                "allow": bool(result["allow"]),
                "obligations": result["obligations"],
                "rules": result["rules"],
                "error": error,
            }
            if decided.explain is not False:
                body["trace"] = decided.trace
            if decided.explain == WHY_NOT:
                body["why_not"] = decided.why_not
            outcome = (body["allow"], error["code"] if error is not None else None)
        if counted is None:
            self.rt.metrics.decision(*outcome)
        else:
            counted.append(outcome)
        return body, decision_status(outcome[1])

    @staticmethod
    def _prepare(decision_id: str, asked_at: str, action: str, facts: dict, result: dict, version: str | None,
                 who: Who, parsed: bool) -> PreparedRecord:
        """The log record, validated and serialised before the answer exists, so a decision that
        cannot be recorded is a visible 400 and never an unlogged answer. ``facts`` was parsed
        from the JSON body, so its keys are text (prepare_decision skips that walk); by orjson
        (``parsed``), so its values are plain JSON too.
        """
        try:
            return prepare_decision(decision_id, asked_at, action, facts, result, version, who.caller, who.request_id,
                                    input_has_text_keys=True, input_parsed=parsed)
        except ValueError as exc:  # store.InvalidInput: the record cannot be logged as it is
            raise bad_request(f"the request cannot be recorded in the decision log: {exc}", "not_recordable") from None


def register(app: Flask, endpoint: t.Any) -> None:
    """Route ``POST /v1/decisions`` and ``POST /v1/decisions/batch`` of ``app`` to ``endpoint`` (an
    ``api.decide_http.DecisionEndpoint``: everything after Flask's routing happens there)."""
    max_bytes = endpoint.max_bytes

    def view() -> Response:
        status, headers, payload = endpoint(
            request.method, request.path, request.headers, functools.partial(read_body, request, max_bytes),
            request.remote_addr, request.host)
        return Response(payload, status=status, headers=headers)

    for path in endpoint.paths:
        app.add_url_rule(path, endpoint=f"decide:{path}", view_func=view, methods=["POST"])
