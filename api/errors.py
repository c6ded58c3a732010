"""The one error table of the HTTP API.

Every error the service answers with is listed in ``ERRORS`` with its HTTP status and what it
means; ``ApiError`` carries a code from that table and renders the error body of docs/api.md
("Errors")::

    {"error": {"code": "bad_request", "message": "...", "errors": [...]}}

Decision errors (a request the engine answered with an error) are *not* error bodies: they keep
the decision shape (``allow: false`` and an ``error`` object) and take their status from
``DECISION_STATUS``.
"""
from __future__ import annotations

import typing as t

#: code -> (HTTP status, what it means). The OpenAPI document and docs/api.md list the same codes.
ERRORS: dict[str, tuple[int, str]] = {
    "bad_request": (400, "malformed request: not JSON, wrong types, too deep, too large, batch too big"),
    "unauthorized": (401, "no bearer token, or a token that is not configured"),
    "forbidden": (403, "the token's role may not call this endpoint"),
    "not_found": (404, "no such route, version or decision"),
    "method_not_allowed": (405, "the route exists but not with this method"),
    "unsupported_media_type": (415, "a POST whose `Content-Type` is not `application/json`"),
    "publish_rejected": (422, "the candidate rules do not compile or their tests fail; nothing changed"),
    "impact_refused": (409, "the candidate would turn more logged denials into allows than `max_risky_flips`; "
                            "nothing changed"),
    "busy": (429, "another read of the whole decision log (an impact replay, a chain verify) is running in this "
                  "server process; `Retry-After` says when to try again; nothing was started"),
    "store_unavailable": (503, "the version store or decision log database does not answer"),
    "not_ready": (503, "no policy version is loaded yet"),
    "timeout": (503, "the request took longer than the server's timeout; nothing was allowed"),
    "internal_error": (500, "a defect in the service; nothing was allowed"),
}

#: Status of a decision-shaped answer by its error code (None = no error).
DECISION_STATUS: dict[str | None, int] = {
    None: 200,
    "unknown_system": 422,
    "unknown_action": 422,
    "missing_fact": 422,
    "invalid_fact": 422,
    # a defect in the engine: never the caller's fault, never an allow
    "evaluation_error": 500,
    # the decision could not be recorded and the service is configured to fail closed
    "decision_log_unavailable": 503,
    # no policy version is loaded (store empty or unreachable at start-up)
    "no_policy_loaded": 503,
    # one item of a batch was malformed (batch answers are 200 as a whole)
    "bad_request": 400,
}


def decision_status(code: str | None) -> int:
    """HTTP status of a decision whose error code is ``code``; unknown codes fail as 500."""
    return DECISION_STATUS.get(code, 500)


class ApiError(Exception):
    """An error the API shows to the caller as ``{"error": {...}}`` with the table's status.

    :param code: a key of ``ERRORS``.
    :param message: one line, lowercase, caller values in backticks.
    :param errors: optional list of detail objects (e.g. every publish error with its location).
    :param status: override the table's status (only 413 for ``bad_request`` on size).
    :param extra: further fields of the error object (adding fields is allowed by the contract).
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        errors: list[dict[str, t.Any]] | None = None,
        status: int | None = None,
        **extra: t.Any,
    ) -> None:
        if code not in ERRORS:
            raise KeyError(f"error code `{code}` is not in api.errors.ERRORS")
        super().__init__(message)
        self.code = code
        self.message = message
        self.errors = errors
        self.status = status if status is not None else ERRORS[code][0]
        self.extra = extra

    def to_dict(self) -> dict[str, t.Any]:
        body: dict[str, t.Any] = {"code": self.code, "message": self.message}
        if self.errors is not None:
            body["errors"] = self.errors
        body.update(self.extra)
        return {"error": body}


def bad_request(message: str, reason: str, *, status: int = 400, **extra: t.Any) -> ApiError:
    """A malformed request. ``reason`` is a stable machine-readable sub-code (see docs/api.md)."""
    return ApiError("bad_request", message, status=status, reason=reason, **extra)
