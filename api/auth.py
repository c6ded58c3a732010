"""Bearer tokens and the three roles: decide, audit, admin.

Every token has a NAME and a SECRET. The name is what the version history records as author or
actor and the decision log as caller; the secret is what a caller sends
(``Authorization: Bearer <secret>``) and is never shown anywhere. Tokens come from either or both:

- ``ORDERGATE_TOKENS_FILE``: a file with one token a line, ``<role> <name> <secret>`` separated by
  spaces; blank lines and lines starting with ``#`` are skipped.
- ``ORDERGATE_TOKENS_DECIDE``, ``ORDERGATE_TOKENS_AUDIT``, ``ORDERGATE_TOKENS_ADMIN``:
  comma-separated ``name:secret`` entries.

The name ends at the first ``:`` and may hold only letters, digits, ``.``, ``_``, ``-`` and ``@``;
no base64, base64url or hex secret contains ``:``, ``,`` or a space, so no secret can be split
or mistaken for a name. Weak secrets (fewer than 16 characters, or fewer than 5 different ones)
and empty ones are refused when the service starts, with a message that names the token, never
its secret. ``admin`` implies ``audit`` and ``decide``. Every configured secret is compared with
``hmac.compare_digest`` (all of them, so the time taken does not depend on which one matched).

With no token configured at all, authentication is off: the service then serves callers on this
machine only (``ordergate serve`` binds to 127.0.0.1), each acting as ``loopback``.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import ipaddress
import os
import re
import typing as t
from dataclasses import dataclass
from pathlib import Path

from api.errors import ApiError

ROLES = ("decide", "audit", "admin")
#: the caller name of every request when authentication is off
LOOPBACK = "loopback"
MIN_SECRET_LENGTH = 16
MIN_SECRET_DISTINCT = 5

#: the roles a token of a given role holds
_IMPLIES = {"decide": {"decide"}, "audit": {"audit"}, "admin": {"admin", "audit", "decide"}}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
# visible ASCII: what an HTTP header carries unchanged
_SECRET = re.compile(r"[\x21-\x7e]+")
_FILE_ENV = "ORDERGATE_TOKENS_FILE"


@functools.lru_cache(maxsize=256)  # asked twice per request with authentication off, mostly the same host
def is_loopback(host: str) -> bool:
    """``host`` (a name or an address, IPv6 possibly in brackets) is this machine's loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def from_this_machine(remote_addr: str | None, host: str) -> bool:
    """A request from this machine that addresses it by a loopback name (what is served with
    authentication off): the client address ``remote_addr`` and the ``host`` of its ``Host`` header
    (``name[:port]``, empty when it has none) are both loopback.

    The address check holds however the server was started; the ``Host`` check stops a web page
    whose own name resolves to 127.0.0.1 (DNS rebinding) from calling the service as its origin.
    """
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return is_loopback(remote_addr or "") and (not host or is_loopback(name))


class TokenConfigError(ValueError):
    """The token configuration cannot be used; the message never contains a secret."""


@dataclass(frozen=True)
class Token:
    """One configured token. ``where`` says where it was written (for messages)."""

    role: str
    name: str
    secret: str
    where: str

    def __repr__(self) -> str:  # a token printed by mistake must not show its secret
        return f"Token(role={self.role!r}, name={self.name!r}, where={self.where!r})"


@dataclass(frozen=True)
class Principal:
    name: str
    roles: frozenset[str]


def _entry(role: str, text: str, where: str) -> Token:
    """A ``name:secret`` entry of ``role``."""
    name, sep, secret = text.partition(":")
    if not sep:
        raise TokenConfigError(f"{where}: a token needs a name: write `name:secret` "
                               "(e.g. `crm-adapter:$(openssl rand -hex 24)`)")
    return Token(role, name.strip(), secret.strip(), where)


def parse_tokens(tokens: t.Mapping[str, t.Iterable[str]], source: str = "tokens") -> list[Token]:
    """``{role: ["name:secret", ...]}`` (the form of the environment variables) to tokens."""
    out: list[Token] = []
    for role, entries in tokens.items():
        if role not in _IMPLIES:
            raise TokenConfigError(f"unknown role `{role}` in {source}; expected one of {', '.join(ROLES)}")
        for number, text in enumerate(entries, 1):
            out.append(_entry(role, text, f"{source} of role {role}, entry {number}"))
    return out


def tokens_from_file(path: str | Path) -> list[Token]:
    """The tokens of a tokens file: ``<role> <name> <secret>`` a line."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenConfigError(f"cannot read the tokens file `{path}`: "
                               f"{exc.strerror if isinstance(exc, OSError) else 'not UTF-8 text'}") from None
    out: list[Token] = []
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        where = f"{path}:{number}"
        if len(fields) != 3:
            raise TokenConfigError(f"{where}: a line has three fields, `<role> <name> <secret>`, "
                                   f"separated by spaces; this one has {len(fields)}")
        role, name, secret = fields
        if role not in _IMPLIES:
            raise TokenConfigError(f"{where}: unknown role `{role[:20]}`; expected one of {', '.join(ROLES)}")
        out.append(Token(role, name, secret, where))
    return out


def tokens_from_env(environ: t.Mapping[str, str] | None = None) -> list[Token]:
    """Every token of ``ORDERGATE_TOKENS_FILE`` and ``ORDERGATE_TOKENS_<ROLE>``."""
    environ = os.environ if environ is None else environ
    out: list[Token] = []
    if environ.get(_FILE_ENV, "").strip():
        out.extend(tokens_from_file(environ[_FILE_ENV].strip()))
    for role in ROLES:
        variable = f"ORDERGATE_TOKENS_{role.upper()}"
        items = [item.strip() for item in environ.get(variable, "").split(",")]
        for number, text in enumerate((i for i in items if i), 1):
            out.append(_entry(role, text, f"{variable}, entry {number}"))
    return out


def check_tokens(tokens: t.Sequence[Token]) -> None:
    """Refuse names that are not plain names and secrets that are empty, weak or repeated."""
    secrets: dict[str, Token] = {}
    for token in tokens:
        if not _NAME.fullmatch(token.name):
            raise TokenConfigError(
                f"{token.where}: a token name has 1 to 64 letters, digits, `.`, `_`, `-` or `@`, "
                "starting with a letter or digit")
        if token.name == LOOPBACK:
            raise TokenConfigError(f"{token.where}: the name `{LOOPBACK}` is reserved for callers when "
                                   "authentication is off; choose another")
        label = f"{token.where}: the secret of token `{token.name}`"
        if not token.secret:
            raise TokenConfigError(f"{label} is empty")
        if not _SECRET.fullmatch(token.secret):
            raise TokenConfigError(f"{label} has a character that is not visible ASCII "
                                   "(a space, a control character or a non-ASCII letter)")
        if len(token.secret) < MIN_SECRET_LENGTH or len(set(token.secret)) < MIN_SECRET_DISTINCT:
            raise TokenConfigError(
                f"{label} is too weak: use a random secret of at least {MIN_SECRET_LENGTH} characters, "
                "e.g. `openssl rand -hex 24`")
        first = secrets.setdefault(token.secret, token)
        if first is not token:
            raise TokenConfigError(f"{label} is also the secret of token `{first.name}` ({first.where}); "
                                   "give every token its own secret")
    for token in tokens:
        if token.name in secrets:
            raise TokenConfigError(f"{token.where}: the name of a token is the secret of another; "
                                   "names are recorded in the history and the log, secrets never")


def token_mark(secret: bytes, key: bytes) -> str:
    """A mark that tells one token from another without revealing it: an HMAC of its secret under
    ``key`` (a workbench session carries it to end when its token is rotated or removed)."""
    digest = hmac.new(key, b"token mark\0" + secret, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


class Authenticator:
    """Maps an ``Authorization`` header to a ``Principal``, or raises 401/403.

    :param tokens: the configured tokens (checked here: ``TokenConfigError`` when unusable), or a
        mapping ``{role: ["name:secret", ...]}``.
    """

    def __init__(self, tokens: t.Sequence[Token] | t.Mapping[str, t.Iterable[str]] | None) -> None:
        if isinstance(tokens, t.Mapping):
            tokens = parse_tokens(tokens)
        tokens = list(tokens or ())
        check_tokens(tokens)
        self._tokens = tuple(
            (token.secret.encode("ascii"), Principal(token.name, frozenset(_IMPLIES[token.role])))
            for token in tokens
        )

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def principal_named(self, name: str, role: str, mark: str | None = None, key: bytes = b"") -> Principal | None:
        """The principal of a configured token called ``name`` with role ``role``, if there still is one
        (a workbench session remembers a name and a role, never a secret). With ``mark``, only the
        token whose ``token_mark(secret, key)`` it is: a rotated token (same name, new secret) is another."""
        roles = frozenset(_IMPLIES.get(role, ()))
        for secret, principal in self._tokens:
            if principal.name == name and principal.roles == roles and (
                    mark is None or hmac.compare_digest(token_mark(secret, key), mark)):
                return principal
        return None

    def derive_key(self, purpose: bytes) -> bytes | None:
        """A key derived by HMAC from every configured secret (the same in every process that has the
        same tokens; another when a token changes), or None when no token is configured."""
        if not self._tokens:
            return None
        material = b"\n".join(sorted(secret for secret, _ in self._tokens))
        return hmac.new(purpose, material, hashlib.sha256).digest()

    def authenticate(self, header: str | None) -> Principal:
        if not self._tokens:
            return Principal(LOOPBACK, frozenset(ROLES))
        if not header:
            raise ApiError("unauthorized", "send `Authorization: Bearer <token>`")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise ApiError("unauthorized", "send `Authorization: Bearer <token>`")
        candidate = presented.strip().encode("utf-8", "surrogatepass")
        found: Principal | None = None
        for secret, principal in self._tokens:
            # no early exit: every configured token is compared
            if hmac.compare_digest(candidate, secret) and found is None:
                found = principal
        if found is None:
            raise ApiError("unauthorized", "the bearer token is not valid")
        return found

    def require(self, header: str | None, role: str) -> Principal:
        principal = self.authenticate(header)
        if role not in principal.roles:
            raise ApiError("forbidden", f"this endpoint needs the `{role}` role")
        return principal

    def require_request(self, role: str, header: str | None, remote_addr: str | None, host: str) -> Principal:
        """``require`` for an API request: with authentication off, a caller on this machine only
        (``from_this_machine``; 403 otherwise)."""
        if not self._tokens and not from_this_machine(remote_addr, host):
            raise ApiError("forbidden", "authentication is off: only callers on this machine, addressing it as "
                                        "`127.0.0.1` or `localhost`, are served")
        return self.require(header, role)
