"""POST /v1/decisions and POST /v1/decisions/batch (spec/http.md): parse, decide, log, answer.

No rule logic here: the engine's PolicySet decides; this module only checks the envelope, asks
it, records the decision and maps the outcome to an HTTP status.
"""
from __future__ import annotations

import datetime as dt
import json
import time
import typing as t

import orjson
from flask import Flask, Response, request
from ulid import ULID

from engine import whatif

from api.body import check_parsed, parse_json, read_json
from api.errors import ApiError, bad_request, decision_status
from store.chain import prepare_record

_JSON = "application/json"
MAX_ACTION = 200


def _dumps(body: t.Any) -> str:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def _encode(body: t.Any) -> bytes | str:
    """The response body: orjson (same compact UTF-8 JSON, several times faster), or the standard
    library for what orjson does not take (integers beyond 64 bits, non-string keys)."""
    try:
        return orjson.dumps(body)
    except TypeError:
        return _dumps(body)


def json_response(body: t.Any, status: int = 200) -> Response:
    return Response(_encode(body), status=status, mimetype=_JSON)


def _refused(version: str | None, code: str, message: str, *, decision_id: str | None) -> dict[str, t.Any]:
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


def check_envelope(item: t.Any, *, where: str = "the body") -> tuple[str, dict, bool | str]:
    """``(action, input, explain)`` of a request object, or ``ApiError(bad_request)``."""
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


class Decider:
    """Decides one well-formed request and records it; shared by the single and batch routes."""

    def __init__(self, runtime: t.Any) -> None:
        self.rt = runtime

    def decide(self, action: str, facts: dict, explain: bool | str) -> tuple[dict[str, t.Any], int]:
        rt = self.rt
        loaded = rt.holder.current
        decision_id = str(ULID())
        if loaded is None:
            body = _refused(None, "no_policy_loaded", "no policy version is loaded; nothing is allowed",
                            decision_id=decision_id)
            # a refusal is a decision too: log it (policy_version null) when the log takes it
            result = {k: body[k] for k in ("allow", "obligations", "rules", "error", "policy_version")}
            self._submit(decision_id, action, facts, result, None)
            rt.metrics.decision(False, "no_policy_loaded")
            return body, decision_status("no_policy_loaded")
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
        trace = result.pop("trace", None)
        if not self._submit(decision_id, action, facts, result, loaded.version_id):
            body = _refused(result.get("policy_version", loaded.version_id), "decision_log_unavailable",
                            "the decision could not be recorded in the decision log; failing closed",
                            decision_id=decision_id)
            rt.metrics.decision(False, "decision_log_unavailable")
            return body, decision_status("decision_log_unavailable")
        body = {
            "decision_id": decision_id,
            "policy_version": result.get("policy_version", loaded.version_id),
            "allow": bool(result["allow"]),
            "obligations": result["obligations"],
            "rules": result["rules"],
            "error": error,
        }
        if explain is not False:
            body["trace"] = trace
        if explain == WHY_NOT:
            found = whatif.why_not(loaded.policy_set, action, facts)
            body["why_not"] = None if found is None else found.to_dict()
        code = error["code"] if error is not None else None
        rt.metrics.decision(body["allow"], code)
        return body, decision_status(code)


    def _submit(self, decision_id: str, action: str, facts: dict, result: dict, version: str | None) -> bool:
        """Queue the decision for the log; False when the log refused it (answer fail closed).

        The record is validated and serialised here, before the answer exists, so a decision that
        cannot be recorded is a visible 400 and never an unlogged answer. ``facts`` was parsed
        from the JSON body, so its keys are text (prepare_record skips that walk).
        """
        record = {
            "decision_id": decision_id,
            "time": dt.datetime.now(dt.timezone.utc),
            "action": action,
            "input": facts,
            "result": result,
            "policy_version": version,
        }
        try:
            prepared = prepare_record(record, input_has_text_keys=True)
            return bool(self.rt.writer.submit(prepared))
        except ValueError as exc:  # store.InvalidInput: the record cannot be logged as it is
            raise bad_request(f"the request cannot be recorded in the decision log: {exc}", "not_recordable")


def register(app: Flask, runtime: t.Any, requires: t.Callable[[str], t.Any]) -> None:
    config = runtime.config
    max_bytes = int(config["max_body_bytes"])
    max_depth = int(config["max_depth"])
    max_batch = int(config["max_batch"])
    decider = Decider(runtime)
    metrics = runtime.metrics

    @app.post("/v1/decisions")
    def post_decision() -> Response:
        requires("decide")
        started = time.perf_counter()
        body = read_json(request, max_bytes=max_bytes, max_depth=max_depth)
        action, facts, explain = check_envelope(body)
        answer, status = decider.decide(action, facts, explain)
        response = json_response(answer, status)
        metrics.latency(time.perf_counter() - started)
        return response

    @app.post("/v1/decisions/batch")
    def post_decision_batch() -> Response:
        requires("decide")
        started = time.perf_counter()
        # each item is checked on its own below (depth, text), so one bad item never spoils the batch
        body, by_orjson = parse_json(request, max_bytes=max_bytes, max_depth=max_depth + 2)
        if not isinstance(body, dict):
            raise bad_request("the body must be a JSON object `{\"requests\": [...]}`", "not_object")
        check_parsed({k: v for k, v in body.items() if k != "requests"}, max_depth, by_orjson)
        items = body.get("requests")
        if not isinstance(items, list):
            raise bad_request("`requests` must be a list of decision requests", "requests_not_list")
        if len(items) > max_batch:
            raise bad_request(
                f"the batch has {len(items)} requests; at most {max_batch} are accepted", "batch_too_large",
                limit=max_batch,
            )
        default_explain = body.get("explain", False)
        if not isinstance(default_explain, bool) and default_explain != WHY_NOT:
            raise bad_request("`explain` must be true, false or `why_not`", "explain_not_bool")
        results = []
        for index, item in enumerate(items):
            if isinstance(item, dict) and "explain" not in item and default_explain:
                item = {**item, "explain": default_explain}
            try:
                check_parsed(item, max_depth, by_orjson)
                action, facts, explain = check_envelope(item, where=f"requests[{index}]")
                answer, _status = decider.decide(action, facts, explain)
            except ApiError as exc:
                # one bad item never spoils the others: it gets its own error result, unrecorded
                metrics.bad_request(exc.extra.get("reason", "bad_request"))
                metrics.decision(False, "bad_request")
                refused = _refused(getattr(runtime.holder.current, "version_id", None), "bad_request",
                                   exc.message, decision_id=None)
                refused["error"]["reason"] = exc.extra.get("reason")
                results.append(refused)
                continue
            results.append(answer)
        response = json_response({"results": results}, 200)
        metrics.latency(time.perf_counter() - started)
        return response
