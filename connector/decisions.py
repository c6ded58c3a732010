"""How the connector obtains a decision: in process (a compiled PolicySet) or from the service.

Both clients return a :class:`DecisionResult`. Whatever goes wrong on the way to a decision
(engine exception, unreachable service, 5xx after the retries, a malformed body) is raised as
:class:`DecisionUnavailable`; the gate then writes nothing. A decision that carries an ``error``
is a denial (fail closed).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests
from ulid import ULID

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Obligation:
    name: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": dict(self.params)}


@dataclass(frozen=True)
class DecisionResult:
    """A decision as the connector sees it, from either client."""

    decision_id: str
    allow: bool
    obligations: tuple[Obligation, ...]
    rules: tuple[str, ...]
    error: dict[str, Any] | None
    policy_version: str | None

    @property
    def permits(self) -> bool:
        """Only an allow without error lets a mutation through."""
        return bool(self.allow) and self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "policy_version": self.policy_version,
            "allow": self.allow,
            "obligations": [o.to_dict() for o in self.obligations],
            "rules": list(self.rules),
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, body: Mapping[str, Any], decision_id: str | None = None) -> DecisionResult:
        """Read a decision body; ``decision_id`` is used only when the body has none (in process)."""
        if not isinstance(body, Mapping) or not isinstance(body.get("allow"), bool):
            raise DecisionUnavailable(f"malformed decision: {body!r}")
        if not (isinstance(body.get("decision_id"), str) and body["decision_id"]) and decision_id is None:
            raise DecisionUnavailable(f"malformed decision: no decision_id in {body!r}")
        obligations = []
        for item in body.get("obligations") or []:
            if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
                raise DecisionUnavailable(f"malformed obligation in decision: {item!r}")
            obligations.append(Obligation(item["name"], dict(item.get("params") or {})))
        error = body.get("error")
        return cls(
            decision_id=str(body.get("decision_id") or decision_id),
            allow=body["allow"],
            obligations=tuple(obligations),
            rules=tuple(body.get("rules") or ()),
            error=dict(error) if error else None,
            policy_version=body.get("policy_version"),
        )


class ConnectorError(Exception):
    """Base of the connector's errors."""


class PolicyDenied(ConnectorError):
    """The policy said no (or answered with an error): nothing was written."""

    def __init__(self, action: str, decision: DecisionResult) -> None:
        self.action = action
        self.decision = decision
        if decision.error:
            why = f"error {decision.error.get('code')} (field {decision.error.get('field')})"
        else:
            why = "denied by " + (", ".join(decision.rules) or "no rule")
        super().__init__(f"{action}: {why} [decision {decision.decision_id}]")


class UnsupportedObligation(ConnectorError):
    """The decision asks for an obligation the connector cannot honour: nothing was written."""

    def __init__(self, action: str, names: list[str], decision: DecisionResult) -> None:
        self.action, self.names, self.decision = action, names, decision
        super().__init__(f"{action}: no handler for obligation(s) {', '.join(names)} "
                         f"[decision {decision.decision_id}]; mutation refused")


class DecisionUnavailable(ConnectorError):
    """No decision could be obtained: the mutation fails closed."""


class FactsChanged(ConnectorError):
    """The facts changed while every decision for them was made: nothing was written (try again)."""


class DecisionClient(Protocol):
    def decide(self, action: str, input: Mapping[str, Any]) -> DecisionResult: ...


class InProcessClient:
    """Decides with a compiled ``engine.PolicySet`` in this process."""

    def __init__(self, policy_set: Any) -> None:
        self.policy_set = policy_set

    def decide(self, action: str, input: Mapping[str, Any]) -> DecisionResult:
        try:
            decision = self.policy_set.decide(action, dict(input))
            body = decision.to_dict()
        except Exception as exc:  # the engine promises never to raise; fail closed if it does
            raise DecisionUnavailable(f"{action}: engine failed: {exc!r}") from exc
        return DecisionResult.from_dict(body, decision_id=str(ULID()))


class RemoteClient:
    """Asks the decision service (``POST /v1/decisions``, docs/api.md).

    Connection errors, timeouts and 5xx are retried ``retries`` times with exponential backoff
    (``backoff * 2**attempt`` seconds); a 4xx other than 422 is not retried. 200 and 422 carry a
    decision (422 = decision error, a denial). Anything else ends in :class:`DecisionUnavailable`.
    """

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float | tuple[Any, ...] = (2.0, 5.0),
                 retries: int = 3, backoff: float = 0.1, session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.url = base_url.rstrip("/") + "/v1/decisions"
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        self.session = session or requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.attempts = 0  # total HTTP attempts made (observability, tests)

    def close(self) -> None:
        self.session.close()

    def decide(self, action: str, input: Mapping[str, Any]) -> DecisionResult:
        last: str = "no attempt"
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(self.backoff * (2 ** (attempt - 1)))
            self.attempts += 1
            try:
                resp = self.session.post(self.url, json={"action": action, "input": dict(input)},
                                         timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = f"{type(exc).__name__}: {exc}"
                log.warning("decision service unreachable (attempt %d): %s", attempt + 1, last)
                continue
            if resp.status_code >= 500:
                last = f"HTTP {resp.status_code}"
                resp.close()
                continue
            if resp.status_code in (200, 422):
                try:
                    body = resp.json()
                except ValueError as exc:
                    raise DecisionUnavailable(f"{action}: decision service sent no JSON ({exc})") from exc
                return DecisionResult.from_dict(body)
            # 4xx: our request is wrong or we are not authorised; retrying will not help.
            raise DecisionUnavailable(f"{action}: decision service refused the request: "
                                      f"HTTP {resp.status_code} {resp.text[:200]}")
        raise DecisionUnavailable(f"{action}: no decision from {self.url} after "
                                  f"{self.retries + 1} attempt(s): {last}")
