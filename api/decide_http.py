"""``POST /v1/decisions`` and ``POST /v1/decisions/batch`` over HTTP with no web framework.

``DecisionEndpoint`` takes a request as plain values (method, path, headers, body bytes, client
address, ``Host``) and returns ``(status, headers, body bytes)``; it does everything the service
does for these two routes after routing: the JSON content-type rule, authentication (and the
loopback-only rule when it is off), ``X-Request-Id``, the body's size, depth and text limits, the
envelope, the decision, its durable log record, the metrics and every error body. The Flask views
of the two routes call it (``api.decisions.register``, for gunicorn, ``--dev`` and the test
client): it waits for the log's commit on the calling thread. ``cli.front.BufferedFront`` runs
its ``steps`` on granian's event loop instead, with no WSGI environ, werkzeug request, Flask
context or thread in between, and awaits the commit there: one implementation, two doors.
"""
from __future__ import annotations

import logging
import time
import typing as t

from werkzeug.http import parse_options_header

from api.auth import Authenticator
from api.body import check_parsed, parse_body, within_depth
from api.decisions import WHY_NOT, Decided, Decider, check_envelope, encode_json, now_text, refused_body, who_asked
from api.errors import ApiError, bad_request
from api.ids import new_ids
from api.metrics import Metrics
from store.chain import PreparedRecord

log = logging.getLogger("ordergate.api")

_JSON = "application/json"
#: ``(status, headers, body)`` of an answer
Answer = tuple[int, list[tuple[str, str]], bytes]


class Headers(t.Protocol):
    """What the endpoint reads of a request's headers: ``get(name)`` with a lowercase ``name``, all
    values of a repeated header joined by ``,`` (as a WSGI environ has them), None when absent."""

    def get(self, name: str, /) -> str | None: ...


def media_type(content_type: str | None) -> str:
    """The media type of a ``Content-Type`` value, lowercase and without parameters (werkzeug's
    ``Request.mimetype``)."""
    if content_type == _JSON:
        return _JSON
    return parse_options_header(content_type or "")[0].lower()


def require_json(method: str, media: str) -> None:
    """A POST must say it is JSON (415 otherwise).

    A browser sends a cross-site POST without asking first only when its type is text/plain or a
    form: requiring JSON makes every such request either a 415 here or a preflight never granted.
    """
    if method == "POST" and media != _JSON:
        raise ApiError("unsupported_media_type",
                       "send the request with `Content-Type: application/json` (also when it has no body)")


def error_answer(exc: ApiError, metrics: Metrics) -> tuple[int, bytes]:
    """``(status, body)`` of an error answer; a malformed request is counted by its reason."""
    if exc.code == "bad_request":
        metrics.bad_request(str(exc.extra.get("reason", "bad_request")))
    return exc.status, encode_json(exc.to_dict())


def defect_answer(exc: BaseException, method: str, path: str) -> tuple[int, bytes]:
    """``(status, body)`` of a defect (an exception no handler expected): logged, 500, nothing allowed."""
    log.error("ordergate: unhandled error on %s %s", method, path, exc_info=exc)
    error = ApiError("internal_error", f"internal error ({type(exc).__name__}); nothing was allowed")
    return 500, encode_json(error.to_dict())


#: a request's answer in two steps around the log commit of its decisions (``DecisionEndpoint.steps``)
Steps = t.Generator[list[PreparedRecord], set[str], Answer]


def start(steps: Steps) -> list[PreparedRecord] | Answer:
    """Run ``steps`` up to its decisions: their log records (a list), or the answer (a tuple) when
    there is nothing to record (an error answered before any decision)."""
    try:
        return next(steps)
    except StopIteration as stop:
        return t.cast(Answer, stop.value)


def finish(steps: Steps, unrecorded: set[str] | None = None, *, error: Exception | None = None) -> Answer:
    """The answer of ``steps`` once its records' fate is known: ``unrecorded``, the ids the log did
    NOT record, or ``error``, what recording raised (answered as the defect it is)."""
    try:
        if error is not None:
            steps.throw(error)
        else:
            assert unrecorded is not None, "finish() needs the ids not recorded, or the error"
            steps.send(unrecorded)
    except StopIteration as stop:
        return t.cast(Answer, stop.value)
    raise RuntimeError("a request's decisions are recorded in one step")


def _answer(status: int, body: bytes) -> Answer:
    return status, [("Content-Type", _JSON), ("Content-Length", str(len(body)))], body


class DecisionEndpoint:
    """The two decision routes of one app (``runtime``: its ``api.runtime.Runtime``).

    Call it with ``(method, path, headers, body, remote_addr, host)``: ``path`` one of ``paths``,
    ``body`` the whole body (bytes) or a callable that reads it (``api.body.read_body``, called once
    the caller is known to be allowed), ``remote_addr`` the client's address, ``host`` the request's
    host as werkzeug's ``Request.host`` gives it. Only POST is routed here.
    """

    paths = ("/v1/decisions", "/v1/decisions/batch")

    def __init__(self, runtime: t.Any, authenticator: Authenticator) -> None:
        config = runtime.config
        self.max_bytes = int(config["max_body_bytes"])
        self.max_depth = int(config["max_depth"])
        self.max_batch = int(config["max_batch"])
        self.runtime = runtime
        self.metrics: Metrics = runtime.metrics
        self.decider = Decider(runtime)
        self.authenticator = authenticator
        self._views = {self.paths[0]: self._single, self.paths[1]: self._batch}

    @property
    def writer(self) -> t.Any:
        """The decision log writer the decisions are recorded by (``DecisionLogWriter``)."""
        return self.runtime.writer

    def __call__(self, method: str, path: str, headers: Headers, body: bytes | t.Callable[[], bytes],
                 remote_addr: str | None, host: str) -> Answer:
        """Answer a request, waiting here for its decisions' log commit (``DecisionLogWriter.record``)."""
        steps = self.steps(method, path, headers, body, remote_addr, host)
        records = start(steps)
        if isinstance(records, tuple):  # answered before any decision
            return records
        try:
            unrecorded = self.writer.record(records)
        except Exception as exc:
            return finish(steps, error=exc)
        return finish(steps, unrecorded)

    def steps(self, method: str, path: str, headers: Headers, body: bytes | t.Callable[[], bytes],
              remote_addr: str | None, host: str) -> Steps:
        """The answer to a request, in two steps around its log commit, for a caller that records
        the decisions itself (``__call__`` waits on a thread; ``cli.front`` awaits it on the event
        loop): ``start`` runs up to the decisions and gives their prepared log records (or the
        answer, when there is nothing to record); ``finish`` takes the ids the log did NOT record
        (or the exception the log raised) and gives the answer."""
        try:
            require_json(method, media_type(headers.get("content-type")))
            principal = self.authenticator.require_request("decide", headers.get("authorization"), remote_addr,
                                                           host)
            who = who_asked(principal.name, headers.get("x-request-id"))
            started = time.perf_counter()
            status, payload = yield from self._views[path](body if isinstance(body, bytes) else body(), who)
            self.metrics.latency(time.perf_counter() - started)
            return _answer(status, payload)
        except ApiError as exc:
            return _answer(*error_answer(exc, self.metrics))
        except Exception as exc:
            return _answer(*defect_answer(exc, method, path))

    def _single(self, data: bytes, who: t.Any) -> t.Generator[list[PreparedRecord], set[str], tuple[int, bytes]]:
        body, by_orjson = parse_body(data, max_bytes=self.max_bytes, max_depth=self.max_depth)
        check_parsed(body, self.max_depth, by_orjson)
        action, facts, explain = check_envelope(body)
        decided = self.decider.evaluate(action, facts, explain, who, parsed=by_orjson)
        unrecorded = yield [decided.record]
        answer, status = self.decider.answer(decided, unrecorded)
        return status, encode_json(answer)

    def _batch(self, data: bytes, who: t.Any) -> t.Generator[list[PreparedRecord], set[str], tuple[int, bytes]]:
        max_depth, metrics, runtime, decider = self.max_depth, self.metrics, self.runtime, self.decider
        # each item is checked on its own below (depth, text), so one bad item never spoils the batch
        body, by_orjson = parse_body(data, max_bytes=self.max_bytes, max_depth=max_depth + 2)
        if not isinstance(body, dict):
            raise bad_request("the body must be a JSON object `{\"requests\": [...]}`", "not_object")
        check_parsed({k: v for k, v in body.items() if k != "requests"}, max_depth, by_orjson)
        items = body.get("requests")
        if not isinstance(items, list):
            raise bad_request("`requests` must be a list of decision requests", "requests_not_list")
        if len(items) > self.max_batch:
            raise bad_request(
                f"the batch has {len(items)} requests; at most {self.max_batch} are accepted", "batch_too_large",
                limit=self.max_batch,
            )
        default_explain = body.get("explain", False)
        if not isinstance(default_explain, bool) and default_explain != WHY_NOT:
            raise bad_request("`explain` must be true, false or `why_not`", "explain_not_bool")
        decided: list[Decided | dict[str, t.Any]] = []
        counted: list[tuple[bool, str | None]] = []  # the metrics of the batch, counted at once
        ids, asked_at = new_ids(len(items)), now_text()  # one time for the batch: its decisions were asked together
        # orjson's values hold UTF-8 text only: when the list is within the depth, so is every item
        checked = by_orjson and within_depth(items, max_depth + 1)
        for index, item in enumerate(items):
            if isinstance(item, dict) and "explain" not in item and default_explain:
                item = {**item, "explain": default_explain}
            try:
                if not checked:
                    check_parsed(item, max_depth, by_orjson)
                action, facts, explain = check_envelope(item, index=index)
                decided.append(decider.evaluate(action, facts, explain, who, ids[index], asked_at, parsed=by_orjson))
            except ApiError as exc:
                # one bad item never spoils the others: it gets its own error result, unrecorded
                metrics.bad_request(exc.extra.get("reason", "bad_request"))
                counted.append((False, "bad_request"))
                refused = refused_body(getattr(runtime.holder.current, "version_id", None), "bad_request",
                                       exc.message, decision_id=None)
                refused["error"]["reason"] = exc.extra.get("reason")
                decided.append(refused)
        # one call for the whole batch: its decisions share the log's transactions
        unrecorded = yield [d.record for d in decided if isinstance(d, Decided)]
        results = [decider.answer(d, unrecorded, counted)[0] if isinstance(d, Decided) else d for d in decided]
        metrics.decisions(counted)
        return 200, encode_json({"results": results})
