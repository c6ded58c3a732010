"""Bearer tokens and the three roles: decide, audit, admin.

Tokens come from configuration (``ORDERGATE_TOKENS_DECIDE``, ``ORDERGATE_TOKENS_AUDIT``,
``ORDERGATE_TOKENS_ADMIN``: comma-separated). A token may carry a name, ``alice=s3cret``; the name
is what the version history records as author or actor. ``admin`` implies ``audit`` and
``decide``. Every configured token is compared with ``hmac.compare_digest`` (all of them, so the
time taken does not depend on which one matched).

With no token configured at all, authentication is off: ``ordergate serve`` then binds to
127.0.0.1 only and says so, and every local caller acts as ``local``.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import typing as t
from dataclasses import dataclass

from api.errors import ApiError

ROLES = ("decide", "audit", "admin")

#: the roles a token of a given role holds
_IMPLIES = {"decide": {"decide"}, "audit": {"audit"}, "admin": {"admin", "audit", "decide"}}


@dataclass(frozen=True)
class Principal:
    name: str
    roles: frozenset[str]


@dataclass(frozen=True)
class _Token:
    secret: bytes
    principal: Principal


def tokens_from_env(environ: t.Mapping[str, str] | None = None) -> dict[str, list[str]]:
    """``{role: [token, ...]}`` from ``ORDERGATE_TOKENS_<ROLE>``."""
    environ = os.environ if environ is None else environ
    out: dict[str, list[str]] = {}
    for role in ROLES:
        raw = environ.get(f"ORDERGATE_TOKENS_{role.upper()}", "")
        out[role] = [item.strip() for item in raw.split(",") if item.strip()]
    return out


class Authenticator:
    """Maps an ``Authorization`` header to a ``Principal``, or raises 401/403."""

    def __init__(self, tokens: t.Mapping[str, t.Iterable[str]] | None) -> None:
        entries: list[_Token] = []
        for role, values in (tokens or {}).items():
            if role not in _IMPLIES:
                raise ValueError(f"unknown role `{role}` in tokens; expected one of {', '.join(ROLES)}")
            for value in values:
                name, sep, secret = value.partition("=")
                if not sep:
                    secret = value
                    # an anonymous token is named by a short hash of itself, never by the token
                    name = f"{role}-{hashlib.sha256(value.encode()).hexdigest()[:8]}"
                if not secret:
                    raise ValueError(f"empty token for role `{role}`")
                entries.append(_Token(secret.encode(), Principal(name, frozenset(_IMPLIES[role]))))
        self._tokens = tuple(entries)

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def authenticate(self, header: str | None) -> Principal:
        if not self._tokens:
            return Principal("local", frozenset(ROLES))
        if not header:
            raise ApiError("unauthorized", "send `Authorization: Bearer <token>`")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise ApiError("unauthorized", "send `Authorization: Bearer <token>`")
        candidate = presented.strip().encode()
        found: Principal | None = None
        for token in self._tokens:
            # no early exit: every configured token is compared
            if hmac.compare_digest(candidate, token.secret) and found is None:
                found = token.principal
        if found is None:
            raise ApiError("unauthorized", "the bearer token is not valid")
        return found

    def require(self, header: str | None, role: str) -> Principal:
        principal = self.authenticate(header)
        if role not in principal.roles:
            raise ApiError("forbidden", f"this endpoint needs the `{role}` role")
        return principal
